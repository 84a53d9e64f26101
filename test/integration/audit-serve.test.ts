/**
 * The evidence chain with a real `safespot serve` (issue 21): the identity is made on first start
 * (0600), `audit key` prints a key `audit verify` accepts and its fingerprint is the one in
 * safespot_appliance_info; the journal written under real blocked traffic verifies; after kill -9 it
 * still verifies up to its last checkpoint and shows the uncovered rows; the next start signs them
 * (`recovery`) and says so; an edit with the sqlite3 shell gives exit 1 and the reason; bad usage 2.
 */
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { generateIdentity } from '../../audit/identity.js';
import { CLI_DEMO_DIR, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { runCmd } from '../helpers/commands.js';

function blocked(port: number, n: number): Promise<number[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<number>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, method: 'GET', path: 'http://blocked.test/', headers: { host: 'blocked.test', connection: 'close' } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
          req.end();
        }),
    ),
  );
}

t.test('identity, key, a journal under traffic, kill -9, recovery and tampering, through the binary', async (t) => {
  const { dir, config } = tempConfig(t, 'audit-serve', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'site: { id: venue-test, name: "Test venue" }',
    `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }]`,
  ]);
  // The journal section comes from tempConfig; the checkpoint interval is an option of it.
  writeFileSync(config, (await import('node:fs')).readFileSync(config, 'utf8').replace(/journal: \{ path: ([^ ]+) \}/, 'journal: { path: $1, checkpointInterval: 1h }'));
  const journal = join(dir, 'journal.db');
  const keyFile = join(dir, 'appliance.pub');

  let app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  t.equal(statSync(join(dir, 'state', 'identity.json')).mode & 0o777, 0o600, 'the private key is 0600 in the state folder');
  const key = await runCli(['audit', 'key', '--config', config]);
  t.equal(key.code, 0, key.stderr);
  t.match(key.stdout, /^safespot\/venue-test\+[0-9a-f]{8}\+\S+\n$/);
  const fingerprint = /fingerprint (sha256:[0-9a-f]{64})/.exec(key.stderr)?.[1];
  t.ok(fingerprint, 'the fingerprint on stderr');
  writeFileSync(keyFile, key.stdout);
  const metrics = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.match(metrics, new RegExp(`^safespot_appliance_info\\{site="venue-test",fingerprint="${fingerprint}"\\} 1$`, 'm'), 'the same fingerprint in the metrics');

  t.same([...new Set(await blocked(app.forward, 20))], [403], '20 blocked requests');
  // A stop checkpoint covers them; after the next start no interval checkpoint can fall (1 h), so the
  // rows written before the kill are certainly after the last checkpoint, whatever the machine's load.
  app.child.kill('SIGTERM');
  await app.exited;
  app = await serve(config);
  t.same([...new Set(await blocked(app.forward, 5))], [403]);
  await new Promise((r) => setTimeout(r, 400)); // flushed (at most 250 ms), not yet checkpointed
  app.child.kill('SIGKILL');
  await app.exited;

  let v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', journal]);
  t.equal(v.code, 0, `after kill -9 the journal verifies up to its last checkpoint:\n${v.stdout}`);
  t.match(v.stdout, /result INTACT/);
  t.match(v.stdout, /gap: \d+ row\(s\) after the last checkpoint .* are not covered by any signature/, 'the gap is shown');

  app = await serve(config);
  app.child.kill('SIGTERM');
  await app.exited;
  v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', journal]);
  t.equal(v.code, 0, v.stdout);
  t.match(v.stdout, /gap: \d+ row\(s\) written before a crash were first signed at the next start/, 'the recovery is shown');
  t.notMatch(v.stdout, /not covered by any signature/);
  t.match(v.stdout, /last checkpoint \d+ leaves, signed .* \(stop\)/);

  const copy = join(dir, 'edited.db');
  copyFileSync(journal, copy);
  const edit = await runCmd('sqlite3', [copy, "DELETE FROM events WHERE id = (SELECT MIN(id) FROM events WHERE kind = 'verdict')"]);
  t.equal(edit.code, 0, edit.stderr);
  v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', copy]);
  t.equal(v.code, 1, 'a deleted block: exit 1');
  t.match(v.stdout, /result NOT INTACT: checkpoint #\d+ .*row ids jump from/);

  const otherKey = join(dir, 'other.pub');
  writeFileSync(otherKey, `${generateIdentity('safespot/venue-test').verifierKey}\n`);
  v = await runCli(['audit', 'verify', '--key', otherKey, '--journal', journal]);
  t.equal(v.code, 1, 'another key: exit 1');
  t.match(v.stdout, /no signature by safespot\/venue-test/);

  t.equal((await runCli(['audit', 'verify', '--journal', journal])).code, 2, 'no key: usage');
  writeFileSync(join(dir, 'bad.pub'), 'not a key\n');
  t.equal((await runCli(['audit', 'verify', '--key', join(dir, 'bad.pub'), '--journal', journal])).code, 2, 'a bad key file: usage');
  t.equal((await runCli(['audit', 'verify', '--key', keyFile, '--journal', join(dir, 'missing.db')])).code, 1, 'a missing journal: exit 1');
});
