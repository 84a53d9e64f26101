/**
 * `safespot sign` (issue 22, finding 10): the real binary writes FILE.sig, a statement naming the
 * list and a version, that a list source with that publicKey and name accepts and any other name
 * refuses; usage errors list every problem and exit 2, and nothing is written.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateConfig } from '../../appliance/config.js';
import { fetchSource, ListSourceError, prepareSource } from '../../appliance/lists/source.js';
import { runCli } from '../helpers/appliance.js';

const dir = mkdtempSync(join(tmpdir(), 'safespot-sign-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const keyFile = join(dir, 'key.pem');
const pubFile = join(dir, 'key.pub.pem');
writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }));
const list = join(dir, 'hotline.txt');
writeFileSync(list, 'a.blocked.test\nb.blocked.test\n');

const source = (more: Record<string, unknown> = {}) =>
  prepareSource(validateConfig({ lists: [{ id: 'hotline', category: 'csam', kind: 'domains', source: list, publicKey: pubFile, ...more }] }, dir).lists[0]!);

t.test('sign, then the list verifies under its name and version', async (t) => {
  const r = await runCli(['sign', '--key', keyFile, '--name', 'hotline', '--version', '42', list]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /names "hotline", version 42/);
  t.match(readFileSync(`${list}.sig`, 'utf8'), /^safespot-signed-list v1\nname: hotline\nversion: 42\n/);
  const ok = await fetchSource(source(), { timeoutMs: 2000, retries: 0 });
  t.equal(ok.status === 'updated' ? ok.signedVersion : null, 42, 'accepted, version 42');
  const err = await fetchSource(source({ signedName: 'adult' }), { timeoutMs: 2000, retries: 0 }).catch((e: unknown) => e);
  t.ok(err instanceof ListSourceError && err.reason === 'signature', 'another signedName refuses it');
  const byDefault = await runCli(['sign', '--key', keyFile, '--name', 'hotline', list]);
  t.equal(byDefault.code, 0);
  const v = Number(/version: (\d+)/.exec(readFileSync(`${list}.sig`, 'utf8'))?.[1]);
  t.ok(v > 42 && Math.abs(v - Date.now()) < 600_000, 'without --version: the time now, in milliseconds');
});

t.test('usage errors: every problem listed, exit 2, nothing written', async (t) => {
  rmSync(`${list}.sig`, { force: true });
  const none = await runCli(['sign']);
  t.equal(none.code, 2);
  for (const want of [/--key is required/, /--name is required/, /exactly one FILE/]) t.match(none.stderr, want);
  const bad = await runCli(['sign', '--key', keyFile, '--name', 'bad name!', '--version', '1.5', list]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--version 1.5 is not a non-negative integer/);
  const badName = await runCli(['sign', '--key', keyFile, '--name', 'bad name!', list]);
  t.equal(badName.code, 2);
  t.match(badName.stderr, /the name "bad name!" is not/);
  const notKey = await runCli(['sign', '--key', pubFile, '--name', 'x', list]);
  t.equal(notKey.code, 2, 'a public key is no signing key');
  const missing = await runCli(['sign', '--key', keyFile, '--name', 'x', join(dir, 'absent.txt')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /cannot read .*absent\.txt \(ENOENT\)/);
  t.notOk(existsSync(`${list}.sig`), 'no signature written by any of them');
});
