/**
 * certs/: the CA's and leaves' fields read back from DER by a reader written here (independent of
 * the forge encoder under test), files and modes on disk, every refused CA, and the minter's cache:
 * one key, one mint in flight per host, LRU bound, renewal near expiry.
 */
import t, { type Test } from 'tap';
import { X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as certs from '../../certs/index.js';
import { LeafMinter, caInstallInfo, generateCa, initCa, loadCa, normalizeHost } from '../../certs/index.js';
import { SafespotError } from '../../policy/errors.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// --- a minimal DER reader (X.690), enough to list a certificate's extensions ---------------------
interface Node {
  tag: number;
  body: Buffer;
}
function readTlv(buf: Buffer, off: number): { node: Node; next: number } {
  const tag = buf[off]!;
  let len = buf[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  return { node: { tag, body: buf.subarray(p, p + len) }, next: p + len };
}
function kids(n: Node): Node[] {
  const out: Node[] = [];
  for (let off = 0; off < n.body.length; ) {
    const { node, next } = readTlv(n.body, off);
    out.push(node);
    off = next;
  }
  return out;
}
function oidText(b: Buffer): string {
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (const byte of b.subarray(1)) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}
interface Ext {
  critical: boolean;
  value: Buffer;
}
function tbsOf(der: Buffer): Node[] {
  return kids(kids(readTlv(der, 0).node)[0]!);
}
function extensionsOf(der: Buffer): Map<string, Ext> {
  const tbs = tbsOf(der);
  const wrapper = tbs.find((n) => n.tag === 0xa3)!;
  const map = new Map<string, Ext>();
  for (const ext of kids(kids(wrapper)[0]!)) {
    const parts = kids(ext);
    const critical = parts.length === 3 && parts[1]!.tag === 0x01 && parts[1]!.body[0] === 0xff;
    map.set(oidText(parts[0]!.body), { critical, value: parts[parts.length - 1]!.body });
  }
  return map;
}
const BASIC_CONSTRAINTS = '2.5.29.19';
const KEY_USAGE = '2.5.29.15';
const EXT_KEY_USAGE = '2.5.29.37';
const SAN = '2.5.29.17';

/** A SafespotError with `code` (and a message matching `message`), as tap's pattern object. */
const errCode = (code: string, message?: RegExp) => (message ? { name: 'SafespotError', code, message } : { name: 'SafespotError', code });

const tmp = async (t: Test): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'safespot-certs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

t.test('a CA has the fields devices and verifiers require', async (t) => {
  const now = new Date('2030-03-01T12:00:00Z');
  const ca = await generateCa({ now });
  const der = ca.cert.raw;
  t.equal(ca.cert.ca, true);
  t.match(ca.cert.subject, /^O=safespot\nCN=safespot local interception CA [0-9a-f]{8}$/);
  t.equal(ca.cert.issuer, ca.cert.subject, 'self-signed');
  t.ok(ca.cert.verify(ca.cert.publicKey), 'self-signature verifies');
  const exts = extensionsOf(der);
  const bc = exts.get(BASIC_CONSTRAINTS)!;
  t.equal(bc.critical, true, 'basicConstraints critical');
  // SEQUENCE { BOOLEAN TRUE, INTEGER 0 }
  t.same([...bc.value], [0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00], 'CA:TRUE, pathLen 0');
  const ku = exts.get(KEY_USAGE)!;
  t.equal(ku.critical, true, 'keyUsage critical');
  t.same([...ku.value], [0x03, 0x02, 0x01, 0x06], 'keyCertSign + cRLSign only');
  t.equal(exts.has(EXT_KEY_USAGE), false);
  t.equal(new Date(ca.cert.validFrom).getTime(), now.getTime() - HOUR, 'notBefore backdated one hour');
  t.equal(new Date(ca.cert.validTo).getTime(), now.getTime() + 3650 * DAY, 'about ten years');
  const serial = Buffer.from(ca.cert.serialNumber, 'hex');
  t.equal(serial.length, 16, '16-byte serial');
  t.ok(serial[0]! > 0 && serial[0]! < 0x80, 'positive, minimally encoded');
  const other = await generateCa({ now });
  t.not(other.cert.subject, ca.cert.subject, 'per-install random suffix');
  t.not(other.cert.serialNumber, ca.cert.serialNumber);
});

t.test('an RSA CA and RSA leaves verify too', async (t) => {
  const ca = await generateCa({ keyKind: 'rsa-2048' });
  t.equal(ca.cert.publicKey.asymmetricKeyType, 'rsa');
  const leaf = new X509Certificate((await new LeafMinter(ca, { keyKind: 'rsa-2048' }).mint('rsa.test')).certPem);
  t.ok(leaf.verify(ca.cert.publicKey));
  t.same([...extensionsOf(leaf.raw).get(KEY_USAGE)!.value], [0x03, 0x02, 0x05, 0xa0], 'digitalSignature + keyEncipherment');
});

t.test('initCa writes the key 0600 and the certificate 0644, atomically, and refuses to overwrite', async (t) => {
  const dir = join(await tmp(t), 'nested', 'ca');
  const old = process.umask(0); // a permissive umask must not widen the key's mode
  t.teardown(() => void process.umask(old));
  const ca = await initCa(dir);
  t.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600);
  t.equal((await stat(join(dir, 'ca.crt'))).mode & 0o777, 0o644);
  t.same((await readdir(dir)).sort(), ['ca.crt', 'ca.key'], 'no temporary files left');
  t.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), ca.certPem);
  t.match(await readFile(join(dir, 'ca.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
  await t.rejects(initCa(dir), errCode('ERR_CERT', /already exists.*--force/));
  t.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), ca.certPem, 'refusal leaves the old CA');
  const replaced = await initCa(dir, { force: true });
  t.not(replaced.cert.fingerprint256, ca.cert.fingerprint256);
  const loaded = await loadCa(dir);
  t.equal(loaded.cert.fingerprint256, replaced.cert.fingerprint256);
  t.same(loaded.warnings, []);
  t.equal(loaded.dir, dir);
});

t.test('loadCa refuses missing, corrupt, mismatched, non-CA, expired and not-yet-valid CAs', async (t) => {
  const base = await tmp(t);
  const good = join(base, 'good');
  const ca = await initCa(good);
  const other = await initCa(join(base, 'other'));
  const goodKey = await readFile(join(good, 'ca.key'), 'utf8');
  const otherKey = await readFile(join(base, 'other', 'ca.key'), 'utf8');
  const leaf = await new LeafMinter(ca).mint('leaf.test');
  const cases: Array<{ name: string; crt?: string; key?: string; now?: Date; message: RegExp }> = [
    { name: 'missing folder', message: /cannot read the CA certificate.*ENOENT.*certs init/ },
    { name: 'missing key', crt: ca.certPem, message: /cannot read the CA key.*ENOENT/ },
    { name: 'corrupt certificate', crt: 'not a certificate\n', key: goodKey, message: /not a PEM certificate/ },
    { name: 'truncated certificate', crt: ca.certPem.slice(0, 200), key: goodKey, message: /not a PEM certificate/ },
    { name: 'corrupt key', crt: ca.certPem, key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', message: /not an unencrypted PEM private key/ },
    { name: 'mismatched key', crt: ca.certPem, key: otherKey, message: /does not belong/ },
    { name: 'a leaf, not a CA', crt: leaf.certPem, key: leaf.keyPem, message: /not a CA certificate/ },
    { name: 'expired', crt: ca.certPem, key: goodKey, now: new Date(Date.now() + 3651 * DAY), message: /expired/ },
    { name: 'not yet valid', crt: ca.certPem, key: goodKey, now: new Date(Date.now() - 2 * DAY), message: /not valid before/ },
  ];
  for (const c of cases) {
    const dir = join(base, c.name.replace(/\W+/g, '-'));
    if (c.crt !== undefined || c.key !== undefined) {
      await initCa(dir); // creates the folder; then overwrite the files with the case's content
      await rm(join(dir, 'ca.key'));
      await rm(join(dir, 'ca.crt'));
      if (c.crt !== undefined) await writeFile(join(dir, 'ca.crt'), c.crt);
      if (c.key !== undefined) await writeFile(join(dir, 'ca.key'), c.key, { mode: 0o600 });
    }
    await t.rejects(loadCa(dir, c.now ? { now: c.now } : {}), errCode('ERR_CERT', c.message), c.name);
  }
  t.ok(other.cert.fingerprint256);
});

t.test('loadCa warns about a key readable by others and a CA near its end', async (t) => {
  const dir = await tmp(t);
  await initCa(dir, { validityDays: 10 });
  await chmod(join(dir, 'ca.key'), 0o644);
  const ca = await loadCa(dir);
  t.equal(ca.warnings.length, 2);
  t.match(ca.warnings[0], /readable by others.*chmod 600/);
  t.match(ca.warnings[1], /expires on/);
});

t.test('the CA key is not reachable through the public interface', async (t) => {
  const ca = await generateCa();
  t.equal('caSigner' in certs, false, 'index.ts does not export caSigner');
  t.same(Object.keys(ca).sort(), ['cert', 'certPem', 'dir', 'warnings']);
  t.notMatch(JSON.stringify({ ...ca, cert: ca.cert.toString() }), /PRIVATE KEY/);
  t.ok(Object.isFrozen(ca));
  t.throws(() => new LeafMinter({ ...ca }), errCode('ERR_CERT', /not a CA created or loaded/), 'a copy carries no key');
});

t.test('caInstallInfo describes the public certificate', async (t) => {
  const ca = await generateCa();
  const info = caInstallInfo(ca);
  t.same(Buffer.from(info.der), ca.cert.raw);
  t.equal(info.pem, ca.certPem);
  const hex = createHash('sha256').update(info.der).digest('hex').toUpperCase();
  t.equal(info.sha256Fingerprint, hex.match(/../g)!.join(':'));
  t.match(info.subject, /^O=safespot, CN=safespot local interception CA [0-9a-f]{8}$/);
  t.equal(info.notAfter.getTime(), Date.parse(ca.cert.validTo));
});

t.test('normalizeHost', async (t) => {
  const ok: Array<[string, string, 'dns' | 'ip']> = [
    ['X.Test', 'x.test', 'dns'],
    ['x.test.', 'x.test', 'dns'],
    ['_dmarc.a-b.test', '_dmarc.a-b.test', 'dns'],
    ['localhost', 'localhost', 'dns'],
    ['127.0.0.1', '127.0.0.1', 'ip'],
    ['192.0.2.1.', '192.0.2.1', 'ip'],
    ['[::1]', '::1', 'ip'],
    ['2001:DB8::1', '2001:db8::1', 'ip'],
    ['::ffff:192.0.2.1', '::ffff:c000:201', 'ip'],
    [`${'a'.repeat(63)}.test`, `${'a'.repeat(63)}.test`, 'dns'],
  ];
  for (const [input, name, kind] of ok) {
    const n = normalizeHost(input);
    t.equal(n.name, name, input);
    t.equal(n.kind, kind, input);
  }
  t.same([...(normalizeHost('::1') as { bytes: Uint8Array }).bytes], [...Array(15).fill(0), 1]);
  t.same([...(normalizeHost('::ffff:192.0.2.1') as { bytes: Uint8Array }).bytes], [...Array(10).fill(0), 255, 255, 192, 0, 2, 1]);
  t.same([...(normalizeHost('10.1.2.3') as { bytes: Uint8Array }).bytes], [10, 1, 2, 3]);
  const bad = ['', '.', 'a..b', '*.x.test', 'x test', 'x/y', '-a.test', 'a-.test', `${'a'.repeat(64)}.test`, `${'a.'.repeat(127)}ab`, 'ü.test', 'x.test:443', '[x.test]'];
  for (const input of bad) t.throws(() => normalizeHost(input), errCode('ERR_CERT', /not a host name/), JSON.stringify(input));
});

t.test('a leaf has SAN, serverAuth, a short backdated validity, and the CA as issuer', async (t) => {
  const start = Date.parse('2030-03-01T12:00:00Z');
  const ca = await generateCa({ now: new Date(start - DAY) });
  const minter = new LeafMinter(ca, { now: () => start });
  const cases: Array<[string, string]> = [
    ['www.Example.test', 'DNS:www.example.test'],
    ['192.0.2.7', 'IP Address:192.0.2.7'],
    ['2001:db8::7', 'IP Address:2001:DB8:0:0:0:0:0:7'],
  ];
  for (const [host, san] of cases) {
    const minted = await minter.mint(host);
    const leaf = new X509Certificate(minted.certPem);
    t.equal(leaf.subjectAltName, san, host);
    t.equal(leaf.issuer, ca.cert.subject, 'issuer is the CA subject');
    t.ok(leaf.checkIssued(ca.cert), 'issued by the CA');
    t.ok(leaf.verify(ca.cert.publicKey), 'signed by the CA');
    t.equal(leaf.ca, false);
    t.same(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extendedKeyUsage serverAuth');
    t.equal(Date.parse(leaf.validFrom), start - HOUR, 'notBefore one hour back');
    t.equal(Date.parse(leaf.validTo), start + 7 * DAY, 'seven days');
    t.equal(minted.notAfter.getTime(), start + 7 * DAY);
    const exts = extensionsOf(leaf.raw);
    t.same([...exts.get(BASIC_CONSTRAINTS)!.value], [0x30, 0x00], 'CA:FALSE');
    t.equal(exts.get(KEY_USAGE)!.critical, true);
    t.equal(exts.get(SAN)!.critical, false, 'subject is never empty, SAN need not be critical');
    if (san.startsWith('DNS')) t.equal(leaf.checkHost('www.example.test'), 'www.example.test');
    else t.ok(leaf.checkIP(host), 'IP SAN matches');
    t.equal(Buffer.from(minted.serialNumber, 'hex').length, 16);
  }
  const long = await minter.mint(`${'a'.repeat(60)}.example.test`);
  t.equal(new X509Certificate(long.certPem).subject, 'O=safespot interception', 'no CN past 64 characters');
});

t.test('a leaf never outlives its CA', async (t) => {
  const now = Date.now();
  const ca = await generateCa({ validityDays: 2 });
  const leaf = await new LeafMinter(ca).mint('short.test');
  t.equal(leaf.notAfter.getTime(), Date.parse(ca.cert.validTo));
  t.ok(leaf.notAfter.getTime() < now + 7 * DAY);
  const later = new LeafMinter(ca, { now: () => now + 3 * DAY });
  await t.rejects(later.mint('late.test'), errCode('ERR_CERT', /CA expired/));
});

t.test('one leaf key pair is reused for every host', async (t) => {
  const ca = await generateCa();
  const minter = new LeafMinter(ca);
  const [a, b] = await Promise.all([minter.mint('a.test'), minter.mint('b.test')]);
  t.equal(a.keyPem, b.keyPem);
  const spki = (pem: string) => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  t.same(spki(a.certPem), spki(b.certPem));
  t.not(a.serialNumber, b.serialNumber);
  const other = await new LeafMinter(ca).mint('a.test');
  t.not(other.keyPem, a.keyPem, 'a second minter has its own key');
  t.notSame(spki(a.certPem), ca.cert.publicKey.export({ type: 'spki', format: 'der' }), 'never the CA key');
});

t.test('N concurrent requests for one host share one mint', async (t) => {
  const minter = new LeafMinter(await generateCa());
  const contexts = await Promise.all(Array.from({ length: 25 }, () => minter.getSecureContext('same.test')));
  t.equal(minter.stats.mints, 1);
  t.equal(minter.stats.joins, 24);
  t.ok(contexts.every((c) => c === contexts[0]), 'the same context for all');
  await minter.getSecureContext('SAME.test.');
  t.equal(minter.stats.hits, 1, 'a normalised name hits the cache');
  t.equal(minter.stats.mints, 1);
});

t.test('the LRU bound is respected and keeps the most recently used', async (t) => {
  const minter = new LeafMinter(await generateCa(), { cacheSize: 5 });
  for (let i = 0; i < 5; i++) await minter.getSecureContext(`h${i}.test`);
  await minter.getSecureContext('h0.test'); // h0 becomes the most recent
  for (let i = 5; i < 30; i++) {
    await minter.getSecureContext(`h${i}.test`);
    t.ok(minter.stats.size <= 5, `size after ${i + 1} hosts`);
  }
  t.equal(minter.stats.size, 5);
  t.equal(minter.stats.evictions, 25);
  t.equal(minter.stats.mints, 30);
  const before = minter.stats.mints;
  await minter.getSecureContext('h29.test');
  t.equal(minter.stats.mints, before, 'recent host still cached');
  await minter.getSecureContext('h1.test');
  t.equal(minter.stats.mints, before + 1, 'evicted host minted again');
  // a burst of distinct hosts in flight at once stays bounded too
  await Promise.all(Array.from({ length: 50 }, (_, i) => minter.getSecureContext(`burst${i}.test`)));
  t.equal(minter.stats.size, 5);
});

t.test('a context is re-minted when less than a day of its leaf is left', async (t) => {
  let now = Date.now();
  const minter = new LeafMinter(await generateCa(), { now: () => now });
  const first = await minter.getSecureContext('renew.test');
  now += 5 * DAY;
  t.equal(await minter.getSecureContext('renew.test'), first, 'five days in: cached');
  now += 1.5 * DAY;
  const second = await minter.getSecureContext('renew.test');
  t.not(second, first, 'six and a half days in: new leaf');
  t.equal(minter.stats.mints, 2);
  t.equal(minter.stats.renewals, 1);
});

t.test('bad names and failed mints are refused and not cached', async (t) => {
  const minter = new LeafMinter(await generateCa());
  await t.rejects(minter.getSecureContext('bad host'), errCode('ERR_CERT'));
  t.equal(minter.stats.size, 0);
  const calls: Array<Error | null> = [];
  await new Promise<void>((resolve) =>
    minter.sniCallback('*.test', (err) => {
      calls.push(err);
      resolve();
    }),
  );
  t.ok(calls[0] instanceof SafespotError, 'SNICallback gets the error');
  // an expired CA makes the mint fail after the name check: the failure is counted, the entry dropped
  let now = Date.now();
  const shortCa = await generateCa({ validityDays: 1 });
  const late = new LeafMinter(shortCa, { now: () => now });
  now += 2 * DAY;
  await t.rejects(late.getSecureContext('x.test'), errCode('ERR_CERT', /CA expired/));
  t.equal(late.stats.failures, 1);
  t.equal(late.stats.size, 0);
});

t.test('bad minter options are refused', async (t) => {
  const ca = await generateCa();
  const bad = [{ cacheSize: 0 }, { cacheSize: 1.5 }, { validityMs: 398 * DAY }, { validityMs: 60_000 }, { renewBeforeMs: 7 * DAY }, { backdateMs: -1 }];
  for (const opts of bad) t.throws(() => new LeafMinter(ca, opts), errCode('ERR_CERT'), JSON.stringify(opts));
});

t.test('a CA key of an unsupported type is refused at load', async (t) => {
  const dir = await tmp(t);
  await initCa(dir);
  const { privateKey } = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'ca.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  await t.rejects(loadCa(dir), errCode('ERR_CERT', /unsupported CA key/));
});
