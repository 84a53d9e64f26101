/**
 * The interception CA: create one (in memory, or on disk with `initCa`), load one (`loadCa`) with
 * every check that can fail made here, at start, with a clear ERR_CERT, and describe its public
 * certificate for installation on devices (`caInstallInfo`).
 *
 * The private key never leaves this folder: a `Ca` value carries only public material, and the key
 * sits in a module-private WeakMap that only the leaf minter (certs/leaf.ts) reads through
 * `caSigner`, which certs/index.ts does not re-export.
 *
 * On disk: `DIR/ca.key` (PKCS#8 PEM, mode 0600) and `DIR/ca.crt` (PEM, mode 0644), each written to
 * a temporary file, synced, then renamed into place, so a reader never sees half a file.
 */
import { X509Certificate, createPrivateKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SafespotError } from '../policy/errors.js';
import { buildCertificate, readIssuer, type Issuer } from './x509.js';

/** Key types we generate. ECDSA P-256 is the default: fast to sign, small, accepted by every current client. */
export type KeyKind = 'ecdsa-p256' | 'rsa-2048';

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
const CA_NAME = 'safespot local interception CA';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A loaded or freshly created CA: public material only. */
export interface Ca {
  /** The CA certificate, parsed by Node. */
  readonly cert: X509Certificate;
  /** PEM of the CA certificate (what devices install). */
  readonly certPem: string;
  /** The folder it was loaded from or written to; undefined for an in-memory CA. */
  readonly dir: string | undefined;
  /** Non-fatal problems found while loading (loose key file mode, expiry within 30 days). */
  readonly warnings: readonly string[];
}

/** What the admin listener needs to offer the CA certificate for installation. */
export interface CaInstallInfo {
  readonly pem: string;
  readonly der: Uint8Array;
  /** Upper-case hex pairs separated by colons, as browsers and `openssl x509 -fingerprint -sha256` show it. */
  readonly sha256Fingerprint: string;
  /** One line, for example `O=safespot, CN=safespot local interception CA 3f9a…`. */
  readonly subject: string;
  readonly notAfter: Date;
}

export interface CaOptions {
  /** Default ecdsa-p256. Use rsa-2048 only for devices that cannot validate ECDSA chains. */
  readonly keyKind?: KeyKind;
  /** Default 3650 (about ten years): devices install the CA once. */
  readonly validityDays?: number;
  /** Clock for tests. */
  readonly now?: Date;
}

export interface InitCaOptions extends CaOptions {
  /** Replace an existing CA. Devices that trusted the old one must install the new one. */
  readonly force?: boolean;
}

interface Signer {
  readonly key: KeyObject;
  readonly issuer: Issuer;
}

const signers = new WeakMap<Ca, Signer>();

/** The signing key and issuer fields of a CA, for certs/leaf.ts only. Not part of the public interface. */
export function caSigner(ca: Ca): Signer {
  const s = signers.get(ca);
  if (!s) throw new SafespotError('ERR_CERT', 'not a CA created or loaded by certs/');
  return s;
}

function makeCa(cert: X509Certificate, key: KeyObject, dir: string | undefined, warnings: string[]): Ca {
  const ca: Ca = Object.freeze({ cert, certPem: cert.toString(), dir, warnings: Object.freeze(warnings) });
  signers.set(ca, { key, issuer: readIssuer(cert.raw, cert.publicKey) });
  return ca;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** A fresh key pair, generated off the main thread. */
export async function generateKey(kind: KeyKind): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  switch (kind) {
    case 'ecdsa-p256':
      return generateKeyPairAsync('ec', { namedCurve: 'P-256' });
    case 'rsa-2048':
      return generateKeyPairAsync('rsa', { modulusLength: 2048 });
    default: {
      const never: never = kind;
      throw new SafespotError('ERR_CERT', `unknown key kind: ${String(never)}`);
    }
  }
}

/** 16 random bytes as a positive, minimally encoded DER INTEGER (RFC 5280 §4.1.2.2). */
export function randomSerial(): Uint8Array {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f || 0x01;
  return b;
}

/** Whole seconds: X.509 times have no fractions (RFC 5280 §4.1.2.5.1). */
export const toSeconds = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);

/** A new CA in memory (nothing written). */
export async function generateCa(opts: CaOptions = {}): Promise<Ca> {
  const validityDays = opts.validityDays ?? 3650;
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 36500) {
    throw new SafespotError('ERR_CERT', `CA validity must be 1..36500 days, got ${validityDays}`);
  }
  const now = (opts.now ?? new Date()).getTime();
  const { privateKey, publicKey } = await generateKey(opts.keyKind ?? 'ecdsa-p256');
  const der = await buildCertificate(
    {
      serial: randomSerial(),
      // The random suffix keeps two installs apart in a device's trust store.
      subject: [
        { type: 'O', value: 'safespot' },
        { type: 'CN', value: `${CA_NAME} ${randomBytes(4).toString('hex')}` },
      ],
      notBefore: toSeconds(now - HOUR), // clock skew between appliance and devices
      notAfter: toSeconds(now + validityDays * DAY),
      publicKey,
      ca: { pathLen: 0 },
      keyUsage: ['keyCertSign', 'cRLSign'],
    },
    privateKey,
  );
  return makeCa(new X509Certificate(der), privateKey, undefined, []);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new SafespotError('ERR_CERT', `cannot inspect ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Write `data` to `path` atomically with `mode`: temp file (exclusive), fsync, chmod, rename. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // the umask may have narrowed the mode; never widen beyond `mode`
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Create a CA and write it to `dir` (created with mode 0700 if missing). Refuses to replace an
 * existing `ca.key` or `ca.crt` unless `force`.
 */
export async function initCa(dir: string, opts: InitCaOptions = {}): Promise<Ca> {
  const keyPath = join(dir, CA_KEY_FILE);
  const certPath = join(dir, CA_CERT_FILE);
  if (!opts.force && ((await exists(keyPath)) || (await exists(certPath)))) {
    throw new SafespotError(
      'ERR_CERT',
      `a CA already exists in ${dir}; use --force to replace it (devices that trust the old CA must then install the new one)`,
    );
  }
  const ca = await generateCa(opts);
  const { key } = caSigner(ca);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Key first: a crash between the two renames leaves a mismatch that loadCa reports clearly.
    await writeAtomic(keyPath, key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    await writeAtomic(certPath, ca.certPem, 0o644);
    await syncDir(dir);
  } catch (err) {
    throw new SafespotError('ERR_CERT', `cannot write the CA to ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return makeCa(ca.cert, key, dir, []);
}

async function syncDir(dir: string): Promise<void> {
  // Make the renames durable; not every file system lets a directory be opened for fsync.
  try {
    const fh = await open(dir, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

async function readOrExplain(path: string, what: string, dir: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? ` (create a CA with: safespot certs init --dir ${dir})` : '';
    throw new SafespotError('ERR_CERT', `cannot read the ${what} ${path}: ${code ?? (err as Error).message}${hint}`, { cause: err });
  }
}

/** Key types a CA may have (what certs/x509.ts can sign with). */
function checkKeyType(key: KeyObject, path: string): void {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (type === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1')) return;
  if (type === 'rsa' && bits >= 2048) return;
  throw new SafespotError('ERR_CERT', `${path}: unsupported CA key (${type ?? '?'} ${curve ?? bits}); use EC P-256/P-384 or RSA ≥ 2048`);
}

/**
 * Load the CA of `dir` and check it: both files present and parseable, the certificate is a CA,
 * the key matches it, and it is valid now. Every failure is an ERR_CERT naming the file and the fix.
 */
export async function loadCa(dir: string, opts: { now?: Date } = {}): Promise<Ca> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  const certText = await readOrExplain(certPath, 'CA certificate', dir);
  const keyText = await readOrExplain(keyPath, 'CA key', dir);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certText);
  } catch (cause) {
    throw new SafespotError('ERR_CERT', `${certPath} is not a PEM certificate (corrupt?)`, { cause });
  }
  if (!cert.ca) throw new SafespotError('ERR_CERT', `${certPath} is not a CA certificate (basicConstraints CA:TRUE missing)`);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (cause) {
    throw new SafespotError('ERR_CERT', `${keyPath} is not an unencrypted PEM private key (corrupt?)`, { cause });
  }
  checkKeyType(key, keyPath);
  if (!cert.checkPrivateKey(key)) {
    throw new SafespotError('ERR_CERT', `${keyPath} does not belong to ${certPath} (mismatched key and certificate)`);
  }
  const now = (opts.now ?? new Date()).getTime();
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (now < notBefore) throw new SafespotError('ERR_CERT', `${certPath} is not valid before ${cert.validFrom} (check the clock)`);
  if (now > notAfter) throw new SafespotError('ERR_CERT', `${certPath} expired on ${cert.validTo}; create a new CA with --force`);
  const warnings: string[] = [];
  const mode = (await stat(keyPath)).mode & 0o777;
  if (mode & 0o077) warnings.push(`${keyPath} is readable by others (mode ${mode.toString(8)}); run chmod 600 on it`);
  if (notAfter - now < 30 * DAY) warnings.push(`${certPath} expires on ${cert.validTo}`);
  return makeCa(cert, key, dir, warnings);
}

/** `O=…, CN=…` from Node's one-attribute-per-line form. */
export function oneLineName(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

/** The public side of the CA, for `certs export`, `certs show` and the admin install page. */
export function caInstallInfo(ca: Ca): CaInstallInfo {
  return Object.freeze({
    pem: ca.certPem,
    der: new Uint8Array(ca.cert.raw),
    sha256Fingerprint: ca.cert.fingerprint256,
    subject: oneLineName(ca.cert.subject),
    notAfter: new Date(ca.cert.validTo),
  });
}
