/**
 * The policy bundle: a versioned, checksummed container of typed sections, written by
 * `safespot compile` and loaded by `serve` and `check`. Layout (integers little-endian):
 *
 *   0   8  magic "SAFESPOT"
 *   8   2  format version (1)
 *  10   2  flags (0)
 *  12   4  section count N
 *  16   4  total length in bytes, checksum included
 *  20   4  reserved (0)
 *  24   8  policy version (content hash of the sections, first 8 bytes)
 *  32  16N section table: tag (4 ASCII bytes), offset, length, reserved (0)
 *  …       section bytes, each starting on an 8-byte boundary (zero padding between)
 *  end-32  SHA-256 of every byte before it
 *
 * The policy's sections are META (JSON), the typed arrays of the block and allow stores, and, when
 * the policy has image lists, the ImageMatcher's sections IMET, IMD5, ISH1, IS32, IPDQ (see
 * policySections in sections.ts); callers may add extra sections with their own tags, and
 * `readBundleSections` hands them over. Decoding checks magic, version, lengths, alignment and the
 * checksum before anything is used, and the store arrays are views onto the bundle bytes (no copy),
 * so a million entries load in milliseconds. Typed arrays are in the machine's byte order, which
 * is little-endian on every platform safespot runs on; a big-endian machine refuses the bundle.
 */
import { createHash } from 'node:crypto';
import { SafespotError } from './errors.js';
import { LITTLE_ENDIAN } from './hash-store.js';
import { partsFromSections, Policy, policySections, sectionsVersion, type PolicyParts, type Section } from './policy.js';

export const BUNDLE_MAGIC = 'SAFESPOT';
export const BUNDLE_FORMAT = 1;
const HEADER = 32;
const ENTRY = 16;
const CHECKSUM = 32;

function corrupt(why: string): never {
  throw new SafespotError('ERR_BUNDLE_CORRUPT', `policy bundle refused: ${why}`);
}

const align8 = (n: number): number => (n + 7) & ~7;

function isPolicy(x: Policy | PolicyParts): x is Policy {
  return x instanceof Policy;
}

/**
 * Encode a policy (or its parts) and any extra sections (for example image lists) into bundle
 * bytes. Deterministic: the same input gives the same bytes.
 */
export function encodeBundle(source: Policy | PolicyParts, extra: readonly Section[] = []): Uint8Array {
  const parts = isPolicy(source) ? source.parts : source;
  const own = policySections(parts);
  const version = isPolicy(source) ? source.version : sectionsVersion(own);
  const sections = [...own, ...extra];
  const tags = new Set<string>();
  for (const s of sections) {
    if (!/^[\x21-\x7e]{4}$/.test(s.tag)) throw new SafespotError('ERR_INTERNAL', `bundle section tag "${s.tag}" is not 4 printable ASCII characters`);
    if (tags.has(s.tag)) throw new SafespotError('ERR_INTERNAL', `bundle section tag "${s.tag}" appears twice`);
    tags.add(s.tag);
  }
  let offset = align8(HEADER + ENTRY * sections.length);
  const offsets: number[] = [];
  for (const s of sections) {
    offsets.push(offset);
    offset = align8(offset + s.bytes.byteLength);
  }
  const total = offset + CHECKSUM;
  if (total > 0xffffffff) throw new SafespotError('ERR_LIMIT', 'policy bundle would exceed 4 GiB');
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(BUNDLE_MAGIC), 0);
  dv.setUint16(8, BUNDLE_FORMAT, true);
  dv.setUint16(10, 0, true);
  dv.setUint32(12, sections.length, true);
  dv.setUint32(16, total, true);
  out.set(Buffer.from(version, 'hex').subarray(0, 8), 24);
  sections.forEach((s, i) => {
    const at = HEADER + ENTRY * i;
    for (let k = 0; k < 4; k++) out[at + k] = s.tag.charCodeAt(k);
    dv.setUint32(at + 4, offsets[i]!, true);
    dv.setUint32(at + 8, s.bytes.byteLength, true);
    out.set(s.bytes, offsets[i]!);
  });
  out.set(createHash('sha256').update(out.subarray(0, total - CHECKSUM)).digest(), total - CHECKSUM);
  return out;
}

/** A verified bundle: its policy version and its sections by tag (views onto the input). */
export interface BundleSections {
  readonly version: string;
  readonly sections: ReadonlyMap<string, Uint8Array>;
}

/** Verify a bundle and return its sections. Throws ERR_BUNDLE_CORRUPT with the reason. */
export function readBundleSections(input: Uint8Array): BundleSections {
  if (!(input instanceof Uint8Array)) corrupt('not bytes');
  if (!LITTLE_ENDIAN) corrupt('this machine is big-endian; bundles hold little-endian arrays');
  // Typed-array views need aligned offsets; a misaligned input is copied once.
  const bytes = input.byteOffset % 8 === 0 ? input : input.slice();
  if (bytes.length < HEADER + CHECKSUM) corrupt(`${bytes.length} bytes is shorter than the smallest bundle (truncated?)`);
  const magic = String.fromCharCode(...bytes.subarray(0, 8));
  if (magic !== BUNDLE_MAGIC) corrupt('this is not a safespot policy bundle (wrong magic)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = dv.getUint16(8, true);
  if (format !== BUNDLE_FORMAT) corrupt(`format version ${format} is not supported (this safespot reads ${BUNDLE_FORMAT})`);
  const total = dv.getUint32(16, true);
  if (total !== bytes.length) corrupt(`header says ${total} bytes, file has ${bytes.length} (truncated or extended)`);
  const expected = createHash('sha256').update(bytes.subarray(0, total - CHECKSUM)).digest();
  const actual = bytes.subarray(total - CHECKSUM);
  for (let i = 0; i < CHECKSUM; i++) if (expected[i] !== actual[i]) corrupt('checksum mismatch (the file is damaged)');
  if (dv.getUint16(10, true) !== 0 || dv.getUint32(20, true) !== 0) corrupt('unknown flags');
  const count = dv.getUint32(12, true);
  const tableEnd = HEADER + ENTRY * count;
  if (tableEnd > total - CHECKSUM) corrupt(`section table of ${count} entries does not fit`);
  const sections = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const at = HEADER + ENTRY * i;
    const tag = String.fromCharCode(...bytes.subarray(at, at + 4));
    const offset = dv.getUint32(at + 4, true);
    const length = dv.getUint32(at + 8, true);
    if (offset % 8 !== 0 || offset < tableEnd || offset + length > total - CHECKSUM) corrupt(`section ${i} lies outside the bundle`);
    if (sections.has(tag)) corrupt(`section tag appears twice`);
    sections.set(tag, bytes.subarray(offset, offset + length));
  }
  const version = Buffer.from(bytes.subarray(24, 32)).toString('hex');
  return { version, sections };
}

/** Verify and load a bundle into a Policy (store arrays are views onto `bytes`). */
export function decodeBundle(bytes: Uint8Array): Policy {
  return decodeBundleSections(bytes).policy;
}

/** decodeBundle, and the bundle's sections too (for the extra ones a caller added, such as SRCD). */
export function decodeBundleSections(bytes: Uint8Array): { readonly policy: Policy; readonly sections: ReadonlyMap<string, Uint8Array> } {
  const { version, sections } = readBundleSections(bytes);
  try {
    return { policy: new Policy(partsFromSections(sections), version), sections };
  } catch (err) {
    if (err instanceof SafespotError) throw err;
    return corrupt(`the policy sections are inconsistent (${(err as Error).message})`);
  }
}
