/**
 * Signatures that name what they sign (issue 22, finding 10). A bare Ed25519 signature over a list's
 * bytes says nothing about which list or which version they are, so whoever controls a mirror could
 * serve one signed list in place of another, or an old signed version in place of the current one.
 * The signed form here is a short statement:
 *
 *     safespot-signed-list v1
 *     name: hotline-urls
 *     version: 1796640000000
 *     sha256: <64 hex digits of the body>
 *     signature: <base64 of the Ed25519 signature over the four lines above, each ending in \n>
 *
 * The appliance checks the signature over the statement, that `sha256` is the body's, that `name`
 * is the one configured for the list (lists[].signedName, default its id; `bundle` for a bundle),
 * and that `version` (an integer, milliseconds since the epoch when `safespot sign` picks it) is not
 * below the last one accepted, and not equal to it with other bytes: no swap, no rollback.
 * `safespot sign` writes this form; docs/lists-fleet.md describes it for list providers.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';

export const SIGNED_LIST_HEADER = 'safespot-signed-list v1';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/;
const MAX_VERSION = Number.MAX_SAFE_INTEGER;

export interface SignedStatement {
  readonly name: string;
  readonly version: number;
  /** SHA-256 of the body, lower-case hex. */
  readonly sha256: string;
}

export interface ParsedSignature extends SignedStatement {
  /** The exact bytes the signature covers. */
  readonly statement: Buffer;
  readonly signature: Buffer;
}

/** The signed lines for a statement (what the signature covers, byte for byte). */
export function statementText(s: SignedStatement): string {
  return `${SIGNED_LIST_HEADER}\nname: ${s.name}\nversion: ${s.version}\nsha256: ${s.sha256}\n`;
}

/** Check a name and version for signing; a list of problems, empty when fine. */
export function statementProblems(name: string, version: number): string[] {
  const problems: string[] = [];
  if (!NAME.test(name)) problems.push(`the name "${name}" is not 1-128 of letters, digits and . _ : / - (starting with a letter or digit)`);
  if (!Number.isSafeInteger(version) || version < 0) problems.push(`the version ${version} is not a non-negative integer`);
  return problems;
}

/** The signature file for `body`: the statement and its Ed25519 signature. */
export function signList(body: Uint8Array, name: string, version: number, privateKey: KeyObject): string {
  const problems = statementProblems(name, version);
  if (problems.length) throw new Error(problems.join('; '));
  const statement = statementText({ name, version, sha256: createHash('sha256').update(body).digest('hex') });
  const signature = sign(null, Buffer.from(statement, 'utf8'), privateKey);
  return `${statement}signature: ${signature.toString('base64')}\n`;
}

/** Whether these signature-file bytes are the statement form (rather than a bare signature). */
export function isStatement(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, SIGNED_LIST_HEADER.length)).toString('latin1') === SIGNED_LIST_HEADER;
}

/**
 * Parse the statement form strictly: the five lines in order, LF endings, nothing else. Returns
 * the parsed statement, or a reason it is not one.
 */
export function parseSignature(bytes: Uint8Array): ParsedSignature | string {
  const text = Buffer.from(bytes).toString('latin1');
  const m = /^safespot-signed-list v1\nname: ([^\n]*)\nversion: ([^\n]*)\nsha256: ([^\n]*)\n(?=signature: )/.exec(text);
  if (!m) return 'not a safespot-signed-list v1 statement (the header, name, version and sha256 lines, in that order)';
  const [, name, versionText, sha] = m as unknown as [string, string, string, string];
  if (!NAME.test(name)) return 'its name line is not a valid name';
  if (!/^(0|[1-9][0-9]{0,15})$/.test(versionText) || Number(versionText) > MAX_VERSION) return 'its version line is not a non-negative integer';
  if (!/^[0-9a-f]{64}$/.test(sha)) return 'its sha256 line is not 64 lower-case hex digits';
  const rest = text.slice(m[0].length);
  const s = /^signature: ([A-Za-z0-9+/]{86}==)\n?$/.exec(rest);
  if (!s) return 'its signature line is not the base64 of 64 bytes';
  return { name, version: Number(versionText), sha256: sha, statement: Buffer.from(m[0], 'latin1'), signature: Buffer.from(s[1]!, 'base64') };
}

/** What the last accepted signed version was: a new one must not go below it. */
export interface SignedBefore {
  readonly version: number;
  readonly sha256: string;
}

/**
 * Verify a statement-form signature for `body`, for the list called `name`. Returns the accepted
 * version, or throws an Error whose message says what failed (the caller wraps it).
 */
export function verifyStatement(bytes: Uint8Array, body: Uint8Array, publicKey: KeyObject, name: string, before: SignedBefore | undefined): number {
  const p = parseSignature(bytes);
  if (typeof p === 'string') throw new Error(`the signature is ${p}`);
  let ok = false;
  try {
    ok = verify(null, p.statement, publicKey, p.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('the Ed25519 signature over the statement does not verify against the configured publicKey');
  const sha = createHash('sha256').update(body).digest('hex');
  if (p.sha256 !== sha) throw new Error(`the statement signs a body with SHA-256 ${p.sha256}, this body's is ${sha}`);
  if (p.name !== name) throw new Error(`the statement is for the list "${p.name}", this list is "${name}" (signedName)`);
  if (before !== undefined) {
    if (p.version < before.version) throw new Error(`the statement is version ${p.version}, older than version ${before.version} already accepted (a rollback)`);
    if (p.version === before.version && sha !== before.sha256) throw new Error(`the statement is version ${p.version}, already accepted with other bytes`);
  }
  return p.version;
}
