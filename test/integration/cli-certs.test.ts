/**
 * `safespot certs init|export|show` through the built binary: files and modes, refusal to replace
 * a CA without --force, PEM and DER export, usage errors (exit 2) and certificate errors (exit 1).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'appliance', 'cli.js');

function safespot(args: string[], cwd?: string): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout: Buffer.concat(out), stderr }));
  });
}

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'safespot-cli-certs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('init creates the CA files with their modes and refuses to replace them without --force', async (t) => {
  const dir = join(await tmp(t), 'ca');
  const first = await safespot(['certs', 'init', '--dir', dir]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout.toString(), /created a CA in .*\nsubject\s+O=safespot, CN=safespot local interception CA [0-9a-f]{8}\nsha256\s+([0-9A-F]{2}:){31}[0-9A-F]{2}\n/);
  t.same((await readdir(dir)).sort(), ['ca.crt', 'ca.key']);
  t.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600);
  t.equal((await stat(join(dir, 'ca.crt'))).mode & 0o777, 0o644);
  const cert = await readFile(join(dir, 'ca.crt'), 'utf8');

  const again = await safespot(['certs', 'init', '--dir', dir]);
  t.equal(again.code, 1);
  t.match(again.stderr, /ERR_CERT: a CA already exists in .*--force/);
  t.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), cert, 'the old CA is untouched');

  const forced = await safespot(['certs', 'init', '--dir', dir, '--force', '--key-type', 'rsa-2048']);
  t.equal(forced.code, 0, forced.stderr);
  const replaced = new X509Certificate(await readFile(join(dir, 'ca.crt')));
  t.not(replaced.fingerprint256, new X509Certificate(cert).fingerprint256);
  t.equal(replaced.publicKey.asymmetricKeyType, 'rsa');
});

t.test('export prints PEM, writes DER, and never the key', async (t) => {
  const base = await tmp(t);
  const dir = join(base, 'ca');
  t.equal((await safespot(['certs', 'init', '--dir', dir])).code, 0);
  const onDisk = new X509Certificate(await readFile(join(dir, 'ca.crt')));

  const pem = await safespot(['certs', 'export', '--dir', dir]);
  t.equal(pem.code, 0, pem.stderr);
  const text = pem.stdout.toString();
  t.match(text, /^-----BEGIN CERTIFICATE-----\n/);
  t.notMatch(text, /PRIVATE KEY/);
  t.equal(new X509Certificate(text).fingerprint256, onDisk.fingerprint256);

  const derOut = join(base, 'ca.der');
  const der = await safespot(['certs', 'export', '--dir', dir, '--der', '--out', derOut]);
  t.equal(der.code, 0, der.stderr);
  const bytes = await readFile(derOut);
  t.equal(bytes[0], 0x30, 'DER SEQUENCE');
  t.same(bytes, onDisk.raw);

  const derStdout = await safespot(['certs', 'export', '--dir', dir, '--der']);
  t.equal(derStdout.code, 0, 'DER to a pipe');
  t.same(derStdout.stdout, onDisk.raw);
});

t.test('show describes the CA; --json for scripts', async (t) => {
  const dir = join(await tmp(t), 'ca');
  t.equal((await safespot(['certs', 'init', '--dir', dir])).code, 0);
  const crt = new X509Certificate(await readFile(join(dir, 'ca.crt')));
  const shown = await safespot(['certs', 'show', '--dir', dir]);
  t.equal(shown.code, 0);
  t.match(shown.stdout.toString(), new RegExp(`sha256\\s+${crt.fingerprint256}\\n`));
  t.match(shown.stdout.toString(), /notAfter\s+\d{4}-\d\d-\d\dT/);
  const json = await safespot(['certs', 'show', '--dir', dir, '--json']);
  const parsed = JSON.parse(json.stdout.toString()) as Record<string, unknown>;
  t.equal(parsed.sha256, crt.fingerprint256);
  t.equal(parsed.key, 'ec prime256v1');
  t.same(parsed.warnings, []);
});

t.test('the folder comes from --config when --dir is absent', async (t) => {
  const base = await tmp(t);
  await writeFile(join(base, 'safespot.yaml'), 'ca: { dir: my-ca }\n');
  const r = await safespot(['certs', 'init', '--config', join(base, 'safespot.yaml')]);
  t.equal(r.code, 0, r.stderr);
  t.same((await readdir(join(base, 'my-ca'))).sort(), ['ca.crt', 'ca.key'], 'relative to the config file');
  const bad = join(base, 'bad.yaml');
  await writeFile(bad, 'ca: { folder: x }\n');
  const invalid = await safespot(['certs', 'show', '--config', bad]);
  t.equal(invalid.code, 2, 'a bad config is a usage/config error');
});

t.test('usage errors exit 2, certificate errors exit 1', async (t) => {
  const base = await tmp(t);
  const cases: Array<{ args: string[]; code: number; stderr: RegExp }> = [
    { args: ['certs'], code: 2, stderr: /ERR_USAGE: missing subcommand/ },
    { args: ['certs', 'mint'], code: 2, stderr: /ERR_USAGE: unknown subcommand "mint"/ },
    { args: ['certs', 'init', '--dir', join(base, 'x'), '--bogus'], code: 2, stderr: /ERR_USAGE/ },
    { args: ['certs', 'init', '--dir', join(base, 'x'), '--key-type', 'dsa'], code: 2, stderr: /--key-type must be/ },
    { args: ['certs', 'show', '--dir', join(base, 'none')], code: 1, stderr: /ERR_CERT: cannot read the CA certificate .*ENOENT.*certs init/ },
    { args: ['certs', 'export', '--dir', join(base, 'none')], code: 1, stderr: /ERR_CERT/ },
  ];
  for (const c of cases) {
    const r = await safespot(c.args);
    t.equal(r.code, c.code, c.args.join(' '));
    t.match(r.stderr, c.stderr, c.args.join(' '));
  }
  const corrupt = join(base, 'corrupt');
  t.equal((await safespot(['certs', 'init', '--dir', corrupt])).code, 0);
  await writeFile(join(corrupt, 'ca.crt'), 'garbage\n');
  const r = await safespot(['certs', 'export', '--dir', corrupt]);
  t.equal(r.code, 1);
  t.match(r.stderr, /ERR_CERT: .*ca\.crt is not a PEM certificate/);
  t.equal(r.stdout.length, 0, 'nothing exported');
});
