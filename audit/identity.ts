/**
 * The appliance's identity: one Ed25519 key pair, created on first start in the state folder
 * (`identity.json`, mode 0600, never sent anywhere), that signs the journal's checkpoints and the
 * period reports. An auditor holds only the public half, as a note verifier key (the form of
 * golang.org/x/mod/sumdb/note and c2sp.org/signed-note):
 *
 *     <key name>+<key ID, 8 hex>+<base64(0x01 || 32-byte Ed25519 public key)>
 *
 * key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note, Ed25519).
 * The fingerprint shown in metrics, journal and reports is `sha256:` + hex SHA-256 of the 32-byte
 * public key: what an auditor compares with the key file they were given.
 *
 * Signed notes (c2sp.org/signed-note): a text ending in a newline, a blank line, then signature
 * lines `— <key name> base64(key ID || signature)`; the signature covers the text only.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { SafespotError } from '../policy/errors.js';

export const IDENTITY_FILE = 'identity.json';
const ED25519 = 0x01;
/** U+2014 EM DASH, then a space: how every signature line of a note starts. */
const SIG_PREFIX = '\u2014 ';
/** Notes are small; a bound keeps a hostile file from costing much (c2sp asks to accept 16 signatures). */
export const MAX_NOTE_BYTES = 64 * 1024;
const MAX_SIGNATURES = 16;

/** The public half, enough to verify. */
export interface PublicIdentity {
  /** The note key name (no spaces, no '+'). */
  readonly name: string;
  /** 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** 4-byte key ID (c2sp.org/signed-note). */
  readonly keyId: Buffer;
  /** `sha256:` + 64 hex. */
  readonly fingerprint: string;
  /** The verifier key line (what `safespot audit key` prints and `audit verify --key` reads). */
  readonly verifierKey: string;
}

export interface Identity extends PublicIdentity {
  /** Ed25519 signature of `data`. */
  sign(data: Uint8Array): Buffer;
}

/** A note key name: printable, no spaces, no '+' (c2sp.org/signed-note). */
export function validKeyName(name: string): boolean {
  return name.length > 0 && name.length <= 200 && /^[\x21-\x7e]+$/.test(name) && !name.includes('+');
}

function keyIdOf(name: string, pub: Buffer): Buffer {
  return createHash('sha256').update(name).update(Buffer.from([0x0a, ED25519])).update(pub).digest().subarray(0, 4);
}

export function fingerprintOf(pub: Uint8Array): string {
  return `sha256:${createHash('sha256').update(pub).digest('hex')}`;
}

function publicIdentity(name: string, pub: Buffer): PublicIdentity {
  const keyId = keyIdOf(name, pub);
  const verifierKey = `${name}+${keyId.toString('hex')}+${Buffer.concat([Buffer.from([ED25519]), pub]).toString('base64')}`;
  return { name, publicKey: pub, keyId, fingerprint: fingerprintOf(pub), verifierKey };
}

function rawPublic(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url');
}

function publicKeyObject(pub: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub).toString('base64url') }, format: 'jwk' });
}

function fromPrivate(name: string, priv: KeyObject): Identity {
  const pub = rawPublic(createPublicKey(priv));
  return { ...publicIdentity(name, pub), sign: (data) => sign(null, data, priv) };
}

/** A fresh identity in memory (tests; `loadOrCreateIdentity` for the appliance's own). */
export function generateIdentity(name: string): Identity {
  if (!validKeyName(name)) throw new SafespotError('ERR_CONFIG_INVALID', `"${name}" cannot be a key name (no spaces or "+")`);
  return fromPrivate(name, generateKeyPairSync('ed25519').privateKey);
}

interface IdentityFile {
  version: 1;
  name: string;
  /** PKCS#8 PEM of the Ed25519 private key. */
  privateKey: string;
  created: string;
}

/**
 * The appliance's identity from `dir/identity.json`, created there (0600, exclusively: two starts
 * at once cannot make two keys) when missing. The name is fixed at creation, so renaming the site
 * later does not change the key every old checkpoint was signed with.
 */
export function loadOrCreateIdentity(dir: string, name: string, now: () => number = Date.now): { identity: Identity; created: boolean } {
  const path = join(dir, IDENTITY_FILE);
  try {
    return { identity: readIdentityFile(path), created: false };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  if (!validKeyName(name)) throw new SafespotError('ERR_CONFIG_INVALID', `"${name}" cannot be a key name (no spaces or "+")`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const file: IdentityFile = {
    version: 1,
    name,
    privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    created: new Date(now()).toISOString(),
  };
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    // Another process made it first: use theirs.
    if ((err as { code?: string }).code === 'EEXIST') return { identity: readIdentityFile(path), created: false };
    throw new SafespotError('ERR_JOURNAL', `cannot create the appliance identity ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    writeSync(fd, `${JSON.stringify(file, null, 2)}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o600); // whatever the umask did
  return { identity: fromPrivate(name, privateKey), created: true };
}

export function readIdentityFile(path: string): Identity {
  const text = readFileSync(path, 'utf8');
  let file: Partial<IdentityFile>;
  try {
    file = JSON.parse(text) as Partial<IdentityFile>;
  } catch {
    throw new SafespotError('ERR_JOURNAL', `the appliance identity ${path} is not JSON`);
  }
  if (file.version !== 1 || typeof file.name !== 'string' || !validKeyName(file.name) || typeof file.privateKey !== 'string') {
    throw new SafespotError('ERR_JOURNAL', `the appliance identity ${path} is not a version-1 identity file`);
  }
  let priv: KeyObject;
  try {
    priv = createPrivateKey(file.privateKey);
  } catch (err) {
    throw new SafespotError('ERR_JOURNAL', `the appliance identity ${path} holds no readable key`, { cause: err });
  }
  if (priv.asymmetricKeyType !== 'ed25519') throw new SafespotError('ERR_JOURNAL', `the appliance identity ${path} is not an Ed25519 key`);
  return fromPrivate(file.name, priv);
}

/** Parse a verifier key (one line; surrounding whitespace ignored). Throws ERR_USAGE with the reason. */
export function parseVerifierKey(text: string): PublicIdentity {
  const line = text.trim();
  // The name has no '+' and the ID is hex, so the first two '+' split it; base64 has '+' of its own.
  const m = /^([^+]*)\+([^+]*)\+(.*)$/s.exec(line);
  if (!m) throw new SafespotError('ERR_USAGE', 'a verifier key is "name+keyid+base64key" (what `safespot audit key` prints)');
  const [, name, idHex, b64] = m as unknown as [string, string, string, string];
  if (!validKeyName(name)) throw new SafespotError('ERR_USAGE', 'the verifier key has no valid name');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new SafespotError('ERR_USAGE', 'the verifier key ID is not 8 hex digits');
  const raw = Buffer.from(b64, 'base64');
  if (raw.toString('base64') !== b64 || raw.length !== 33 || raw[0] !== ED25519) {
    throw new SafespotError('ERR_USAGE', 'the verifier key is not a base64 Ed25519 key (type 0x01 and 32 bytes)');
  }
  const id = publicIdentity(name, raw.subarray(1));
  if (id.keyId.toString('hex') !== idHex) throw new SafespotError('ERR_USAGE', 'the verifier key ID does not match its name and key');
  return id;
}

/** `text` (ending in "\n") signed as a note. */
export function signNote(text: string, id: Identity): string {
  if (!text.endsWith('\n')) throw new RangeError('a note text ends with a newline');
  const sig = id.sign(Buffer.from(text, 'utf8'));
  return `${text}\n${SIG_PREFIX}${id.name} ${Buffer.concat([id.keyId, sig]).toString('base64')}\n`;
}

export type NoteCheck = { ok: true; text: string } | { ok: false; reason: string };

/**
 * Verify a signed note against one key: its text when a signature by that key (name and ID)
 * verifies, else why not. Signatures by other keys are ignored, as the spec says; a failing one by
 * this key rejects the note.
 */
export function verifyNote(note: string, key: PublicIdentity): NoteCheck {
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) return { ok: false, reason: `the note is larger than ${MAX_NOTE_BYTES} bytes` };
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x09\x0b-\x1f]/.test(note)) return { ok: false, reason: 'the note holds control characters' };
  if (!note.endsWith('\n')) return { ok: false, reason: 'the note does not end with a newline' };
  const split = note.lastIndexOf('\n\n');
  if (split < 0) return { ok: false, reason: 'the note has no blank line before its signatures' };
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) return { ok: false, reason: `the note has more than ${MAX_SIGNATURES} signatures` };
  const pub = publicKeyObject(key.publicKey);
  let verified = false;
  for (const line of lines) {
    if (!line.startsWith(SIG_PREFIX)) return { ok: false, reason: 'a signature line does not start with "— "' };
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(' ');
    if (space <= 0) return { ok: false, reason: 'a signature line has no key name' };
    const name = rest.slice(0, space);
    const b64 = rest.slice(space + 1);
    const raw = Buffer.from(b64, 'base64');
    if (raw.toString('base64') !== b64 || raw.length < 5) return { ok: false, reason: 'a signature is not base64' };
    if (name !== key.name || !raw.subarray(0, 4).equals(key.keyId)) continue; // another key's: ignored
    if (raw.length !== 4 + 64 || !verify(null, Buffer.from(text, 'utf8'), pub, raw.subarray(4))) {
      return { ok: false, reason: `the signature by ${key.name} does not verify` };
    }
    verified = true;
  }
  return verified ? { ok: true, text } : { ok: false, reason: `no signature by ${key.name}+${key.keyId.toString('hex')}` };
}
