/**
 * The digest of a compile's input: SHA-256 over everything compileParts reads (each list's id,
 * category, kind, mode, overridable and the SHA-256 of its text; allow entries, profiles, options),
 * in a canonical JSON form, and a revision of the compiler itself. A policy is a pure function of
 * that input, so two inputs with the same digest give the same policy: serve keeps the digest in
 * its last good bundle (section SRCD) and does not compile again at start or reload when the lists
 * and options are those of the policy already in force (issue 23).
 */
import { createHash } from 'node:crypto';
import type { CompileInput } from './compile.js';
import type { Section } from './sections.js';

/**
 * Raise whenever the same input would compile to other bytes (a parser or canonicalisation fix,
 * a new section): a bundle saved by the previous revision is then compiled again, never trusted.
 */
export const COMPILE_REVISION = 1;

/** The bundle section that holds the digest of the input a policy was compiled from (32 bytes). */
export const DIGEST_SECTION = 'SRCD';

/** Object keys sorted, so the digest does not depend on the order a caller built its objects in. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = canonical((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

/** Lower-case hex SHA-256 digest of `input` (list texts hashed as their UTF-8 bytes, so a string and its bytes agree). */
export function compileInputDigest(input: CompileInput): string {
  const lists = input.lists.map((l) => ({
    ...l,
    text: l.text === undefined ? null : createHash('sha256').update(l.text).digest('hex'),
  }));
  const doc = canonical({ ...input, lists, revision: COMPILE_REVISION });
  return createHash('sha256').update(JSON.stringify(doc)).digest('hex');
}

/** The digest as a bundle section. */
export function digestSection(digest: string): Section {
  return { tag: DIGEST_SECTION, bytes: new Uint8Array(Buffer.from(digest, 'hex')) };
}

/** The digest kept in a bundle's sections, or null (a bundle from `safespot compile` or an older serve). */
export function digestOf(sections: ReadonlyMap<string, Uint8Array>): string | null {
  const s = sections.get(DIGEST_SECTION);
  return s && s.length === 32 ? Buffer.from(s).toString('hex') : null;
}
