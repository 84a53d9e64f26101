/**
 * Signed reports with a real `safespot serve` (issue 21, points 2, 3 and 4), through the binary:
 * - a report made while serve runs signs a `report` checkpoint (the journal still verifies, the
 *   serve keeps writing), carries fingerprint, venue, period, policy versions and its checkpoint;
 * - its last seconds are not counted as down (the journal's heartbeat lags the report);
 * - json, csv and html verify against the key, and with --journal every figure is checked;
 * - a figure edited after signing (json, csv, html), another key, a missing .sig: exit 1 and why;
 * - a journal edited with the sqlite3 shell against a report: exit 1 and the figure;
 * - two consecutive periods: LATER extends EARLIER (exit 0); a journal rolled back to an older copy
 *   against the later report, and the reports given in the wrong order: exit 1; bad usage: exit 2.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('signed reports of a running appliance, verified and tampered with', async (t) => {
  const { dir, config } = tempConfig(t, 'audit-report-sign', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'site: { id: venue-test, name: "Kafe Ërë" }',
    `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }]`,
  ]);
  const journal = join(dir, 'journal.db');
  const keyFile = join(dir, 'venue-test.pub');
  const out = (name: string) => join(dir, name);

  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const key = await runCli(['audit', 'key', '--config', config]);
  t.equal(key.code, 0, key.stderr);
  writeFileSync(keyFile, key.stdout);
  const fingerprint = /fingerprint (sha256:[0-9a-f]{64})/.exec(key.stderr)![1]!;

  // Period 1: from before the start to a moment after 7 blocks.
  const t0 = new Date(Date.now() - 60_000).toISOString();
  t.same([...new Set(await blocked(app.forward, 7))], [403]);
  await sleep(600); // flushed
  const t1 = new Date().toISOString();
  await sleep(50);
  // Blocks go on while the report signs its checkpoint from another process.
  const during = (async () => {
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) {
      codes.push(...(await blocked(app.forward, 1)));
      await sleep(40);
    }
    return codes;
  })();
  const r1 = await runCli(['audit', 'report', '--config', config, '--from', t0, '--to', t1, '--format', 'json', '--out', out('q1.json')]);
  t.same([...new Set(await during)], [403], 'traffic went on while the report was made');
  t.equal(r1.code, 0, r1.stderr);
  t.same([...new Set(await blocked(app.forward, 2))], [403], 'and after it');
  await sleep(600);
  // Some seconds with nothing written: the journal's last sign of life now lags the clock.
  await sleep(3_000);
  const t2 = new Date(Date.now() + 3_600_000).toISOString(); // the period ends in the future: "now"
  t.match(r1.stderr, /wrote .*q1\.json \(signed by safespot\/venue-test, sha256:/);
  const q1 = JSON.parse(readFileSync(out('q1.json'), 'utf8'));
  t.equal(q1.blockedRequests.total, 7, 'period 1: the 7 blocks before t1');
  t.same(q1.appliance, { site: { id: 'venue-test', name: 'Kafe Ërë' }, key: key.stdout.trim(), fingerprint }, 'fingerprint and venue');
  t.equal(q1.checkpoint.reason, 'report', 'a checkpoint was signed for the report');
  t.match(q1.checkpoint.note, /^safespot\/venue-test\n\d+\n/);
  t.ok(q1.policies.length >= 1 && /^[0-9a-f]+/.test(q1.policies[0].version), `policy versions in force: ${JSON.stringify(q1.policies)}`);
  t.match(q1.signature, /^safespot-report\/1\nkey safespot\/venue-test\nformat json\n/);

  // Period 2, ending in the future while the appliance runs: measured until its last sign of life,
  // never "down" for the heartbeat's lag (issue 21: the report understated its own uptime).
  const r2 = await runCli(['audit', 'report', '--config', config, '--from', t1, '--to', t2, '--format', 'json', '--out', out('q2.json')]);
  t.equal(r2.code, 0, r2.stderr);
  const q2 = JSON.parse(readFileSync(out('q2.json'), 'utf8'));
  t.equal(q2.blockedRequests.total, 6, 'period 2: the blocks during and after the first report');
  t.equal(q2.filtering.downSeconds, 0, `no down seconds at the end: ${JSON.stringify(q2.filtering.gaps)}`);
  t.equal(q2.filtering.activeFraction, 1);
  t.ok(Date.parse(q2.period.measuredUntil) <= Date.parse(q2.generatedAt), 'measured until at most the report time');
  t.ok(q2.checkpoint.size > q1.checkpoint.size, 'the second checkpoint covers more rows');

  for (const format of ['csv', 'html'] as const) {
    const r = await runCli(['audit', 'report', '--config', config, '--from', t0, '--to', t1, '--format', format, '--out', out(`q1.${format}`)]);
    t.equal(r.code, 0, r.stderr);
    t.ok(existsSync(out(`q1.${format}.sig`)), `${format}: a detached .sig beside it`);
    const noOut = await runCli(['audit', 'report', '--config', config, '--from', t0, '--to', t1, '--format', format]);
    t.equal(noOut.code, 2, `${format} signed to stdout: usage, the signature needs --out`);
    t.match(noOut.stderr, /--out FILE/);
  }
  const html = readFileSync(out('q1.html'), 'utf8');
  t.match(html, new RegExp(fingerprint), 'the html shows the fingerprint');
  t.match(html, /safespot audit verify --key venue-test\.pub q1\.html/, 'and the exact verify command');
  const sq = await runCli(['audit', 'report', '--config', config, '--from', t0, '--to', t1, '--format', 'html', '--lang', 'sq', '--out', out('q1-sq.html')]);
  t.equal(sq.code, 0, sq.stderr);
  t.match(readFileSync(out('q1-sq.html'), 'utf8'), /<html lang="sq"[\s\S]*Kërkesa të bllokuara: 7/, 'Albanian');

  // The serve kept writing through all of it; stop it: the journal verifies, with the report checkpoints.
  app.child.kill('SIGTERM');
  await app.exited;
  let v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', journal]);
  t.equal(v.code, 0, `the journal verifies after reports signed checkpoints into it:\n${v.stdout}`);

  for (const f of ['q1.json', 'q1.csv', 'q1.html', 'q1-sq.html', 'q2.json']) {
    v = await runCli(['audit', 'verify', '--key', keyFile, out(f)]);
    t.equal(v.code, 0, `${f}: signature\n${v.stdout}`);
    v = await runCli(['audit', 'verify', '--key', keyFile, out(f), '--journal', journal]);
    t.equal(v.code, 0, `${f}: every figure against the journal\n${v.stdout}`);
    t.match(v.stdout, /checked every figure equals/);
  }

  // Edited after signing: a figure changed in each form.
  const edits: Array<[string, (s: string) => string]> = [
    ['q1.json', (s) => s.replace('"total": 7', '"total": 70')],
    ['q1.csv', (s) => s.replace('blocked_requests,adult,,7', 'blocked_requests,adult,,70')],
    ['q1.html', (s) => s.replace('Blocked requests: 7', 'Blocked requests: 70')],
  ];
  for (const [f, edit] of edits) {
    const text = readFileSync(out(f), 'utf8');
    const edited = edit(text);
    t.not(edited, text, `${f}: the edit applies`);
    const target = out(`edited-${f}`);
    writeFileSync(target, edited);
    if (existsSync(out(`${f}.sig`))) copyFileSync(out(`${f}.sig`), `${target}.sig`);
    v = await runCli(['audit', 'verify', '--key', keyFile, target]);
    t.equal(v.code, 1, `${f} edited: exit 1`);
    t.match(v.stdout, /result NOT INTACT: the content is not what was signed .* changed after signing/);
  }
  writeFileSync(out('nosig.csv'), readFileSync(out('q1.csv')));
  v = await runCli(['audit', 'verify', '--key', keyFile, out('nosig.csv')]);
  t.equal(v.code, 1, 'a csv without its .sig');
  t.match(v.stdout, /detached \.sig/);

  const otherKey = out('other.pub');
  writeFileSync(otherKey, `${generateIdentity('safespot/venue-test').verifierKey}\n`);
  v = await runCli(['audit', 'verify', '--key', otherKey, out('q1.json')]);
  t.equal(v.code, 1, 'signed by another key');
  t.match(v.stdout, /no signature by safespot\/venue-test/);

  // The journal edited with sqlite3 against the report: a covered block deleted.
  const edited = out('edited.db');
  copyFileSync(journal, edited);
  const del = await runCmd('sqlite3', [edited, "DELETE FROM events WHERE id = (SELECT MIN(id) FROM events WHERE kind = 'verdict')"]);
  t.equal(del.code, 0, del.stderr);
  v = await runCli(['audit', 'verify', '--key', keyFile, out('q1.json'), '--journal', edited]);
  t.equal(v.code, 1, 'a deleted row: exit 1');
  t.match(v.stdout, /the journal: checkpoint #\d+/);

  // Two consecutive periods: q2's checkpoint extends q1's.
  v = await runCli(['audit', 'verify', '--key', keyFile, out('q1.json'), out('q2.json'), '--journal', journal]);
  t.equal(v.code, 0, `EARLIER LATER:\n${v.stdout}`);
  t.match(v.stdout, /consistency proof from \d+ to \d+ rows \(\d+ hashes\) verifies/);
  v = await runCli(['audit', 'verify', '--key', keyFile, out('q1.csv'), out('q2.json'), '--journal', journal]);
  t.equal(v.code, 0, `a csv EARLIER and a json LATER:\n${v.stdout}`);
  v = await runCli(['audit', 'verify', '--key', keyFile, out('q2.json'), out('q1.json'), '--journal', journal]);
  t.equal(v.code, 1, 'in the wrong order: LATER covers fewer rows');
  t.match(v.stdout, /fewer than EARLIER's/);
  t.equal((await runCli(['audit', 'verify', '--key', keyFile, out('q1.json'), out('q2.json')])).code, 2, 'EARLIER LATER without a journal: usage');

  // A journal rolled back to an older copy: the copy taken before period 2's report was made.
  const old = out('old.db');
  const copy = await runCmd('sqlite3', [journal, `.backup ${old}`]);
  t.equal(copy.code, 0, copy.stderr);
  const cut = await runCmd('sqlite3', [old, `DELETE FROM checkpoints WHERE size > ${q1.checkpoint.size}; DELETE FROM events WHERE id > (SELECT last_id FROM checkpoints ORDER BY id DESC LIMIT 1);`]);
  t.equal(cut.code, 0, cut.stderr);
  v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', old]);
  t.equal(v.code, 0, `on its own the older copy is a valid shorter journal:\n${v.stdout}`);
  v = await runCli(['audit', 'verify', '--key', keyFile, out('q2.json'), '--journal', old]);
  t.equal(v.code, 1, 'the rolled-back journal against the later report');
  t.match(v.stdout, /older copy of the journal \(rolled back\)/);
  v = await runCli(['audit', 'verify', '--key', keyFile, out('q1.json'), out('q2.json'), '--journal', old]);
  t.equal(v.code, 1, 'and against the two reports');
});
