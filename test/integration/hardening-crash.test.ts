/**
 * Crash safety through the real binary (issue 9, item 5). test/integration/appliance-evidence.test.ts
 * already shows that a `kill -9` under traffic loses at most the last second of journal events; this
 * file goes on from there:
 * - after the crash, `serve` starts again on the same journal, serves, and the journal records the
 *   crash gap (an unclean `stop` at the last sign of life, then a new `start`), which the period
 *   report counts as down time;
 * - a corrupt journal at start (garbage bytes over a real journal, a truncated file, a file that is
 *   not SQLite) is detected, set aside byte for byte with a clear message, never truncated or
 *   repaired in place, and `serve` still starts with a fresh journal.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJournal } from '../../audit/journal.js';
import { CLI_DEMO_DIR as DEMO, runCli, serve } from '../helpers/appliance.js';
import { exchange } from '../helpers/sockets.js';

function setup(t: { teardown(fn: () => unknown): void }, name: string): { dir: string; config: string; journal: string } {
  const dir = mkdtempSync(join(tmpdir(), `safespot-${name}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  const journal = join(dir, 'journal.db');
  writeFileSync(config, [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    `journal: { path: ${journal} }`,
    `state: { dir: ${join(dir, 'state')} }`,
    '',
  ].join('\n'));
  return { dir, config, journal };
}

const BLOCKED = 'GET http://blocked.test/ HTTP/1.1\r\nHost: blocked.test\r\nConnection: close\r\n\r\n';
const status = (b: Buffer): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(b.toString('latin1'))?.[1] ?? 0);

t.test('kill -9 under load, restart on the same journal: it serves again and the journal records the crash gap', async (t) => {
  const { config, journal } = setup(t, 'crash');
  const from = new Date(Date.now() - 60_000).toISOString();
  const first = await serve(config);
  t.teardown(() => void first.child.kill('SIGKILL'));
  // Load: blocked requests from several connections at once, for about 1.5 s.
  let answered = 0;
  const until = Date.now() + 1500;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (Date.now() < until) if (status(await exchange(first.forward, BLOCKED)) === 403) answered++;
    }),
  );
  const crashedAt = Date.now();
  first.child.kill('SIGKILL');
  t.equal(await first.exited, null, 'killed by a signal, no clean exit');
  await new Promise((r) => setTimeout(r, 1500)); // the appliance is down for a while

  const second = await serve(config);
  t.teardown(() => void second.child.kill('SIGKILL'));
  t.equal(status(await exchange(second.forward, BLOCKED)), 403, 'the restarted serve filters');
  t.notMatch(second.log(), /corrupt/, 'a journal after kill -9 is not corrupt');
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);

  const j = openJournal({ path: journal, retentionDays: 400, recordUrls: false, recordClients: false, readOnly: true });
  t.teardown(() => j.close());
  const life = j.query(0, Date.now() + 1000, ['start', 'stop']);
  t.same(life.map((e) => e.kind), ['start', 'stop', 'start', 'stop'], 'start, unclean stop, start, clean stop');
  t.match(life[1]!.detail, /unclean shutdown/, 'the crash is recorded as an unclean stop');
  t.ok(life[1]!.time <= crashedAt && life[1]!.time >= crashedAt - 1000, 'at the last sign of life, within the loss window before the kill');
  t.ok(life[2]!.time - life[1]!.time >= 1500, 'the gap until the restart is at least the time it was down');
  t.match(life[3]!.detail, /clean shutdown/);
  const blocks = j.query(0, Date.now() + 1000, ['verdict']).length;
  t.ok(blocks >= 1 && blocks <= answered + 1, `journal kept ${blocks} of ${answered} + 1 blocks`);

  const to = new Date(Date.now() + 60_000).toISOString();
  const report = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'json']);
  t.equal(report.code, 0, report.stderr);
  const r = JSON.parse(report.stdout) as { filtering: { downSeconds: number; gaps: Array<{ from: string; to: string; state: string; seconds: number }> } };
  const crashGap = r.filtering.gaps.find((g) => g.state === 'down' && Date.parse(g.from) === life[1]!.time);
  t.ok(crashGap, 'the report shows the crash as a down stretch starting at the unclean stop');
  t.ok((crashGap?.seconds ?? 0) >= 1.5, `down for ${crashGap?.seconds} s`);
});

t.test('a corrupt journal at start is set aside with a clear message, never truncated, and serve still starts', async (t) => {
  const damages: Array<{ name: string; damage: (path: string) => void }> = [
    {
      name: 'garbage bytes over a real journal',
      damage: (p) => {
        const size = statSync(p).size;
        const fd = openSync(p, 'r+');
        const junk = Buffer.alloc(Math.max(0, size - 4096 - 100), 0x5a);
        writeSync(fd, junk, 0, junk.length, 4096);
        closeSync(fd);
      },
    },
    { name: 'a truncated journal', damage: (p) => truncateSync(p, Math.floor(statSync(p).size / 2)) },
    { name: 'not SQLite at all', damage: (p) => writeFileSync(p, Buffer.from('\x00\xffnot a journal'.repeat(300), 'latin1')) },
  ];
  for (const d of damages) {
    const { dir, config, journal } = setup(t, 'corrupt');
    // A real journal with many pages, closed cleanly (so everything is in the main file).
    const seed = openJournal({ path: journal, retentionDays: 400, recordUrls: false, recordClients: false });
    for (let i = 0; i < 20_000; i++) seed.record({ kind: 'verdict', action: 'block', category: 'adult', detail: `seed ${i}` });
    seed.close();
    t.notOk(existsSync(`${journal}-wal`) && statSync(`${journal}-wal`).size > 0, 'everything checkpointed into the main file');
    d.damage(journal);
    const damaged = readFileSync(journal);

    const app = await serve(config);
    t.teardown(() => void app.child.kill('SIGKILL'));
    t.match(app.log(), /^safespot: the audit journal \S*journal\.db is corrupt \([^\n]*\); it was moved to \S*journal\.db\.corrupt-\d{8}T\d{6}Z and a new journal was started\. Keep the old file: it is evidence\.$/m, `${d.name}: a clear message on one line`);
    const aside = readdirSync(dir).filter((f) => /^journal\.db\.corrupt-\d{8}T\d{6}Z$/.test(f));
    t.equal(aside.length, 1, `${d.name}: set aside once`);
    t.same(readFileSync(join(dir, aside[0]!)), damaged, `${d.name}: the damaged file is kept byte for byte`);
    t.equal(status(await exchange(app.forward, BLOCKED)), 403, `${d.name}: serve filters with a fresh journal`);
    app.child.kill('SIGTERM');
    t.equal(await app.exited, 0);
    const fresh = openJournal({ path: journal, retentionDays: 400, recordUrls: false, recordClients: false, readOnly: true });
    const starts = fresh.query(0, Date.now() + 1000, ['start']);
    t.match(starts[0]?.detail ?? '', /previous journal was corrupt/, `${d.name}: the new journal says so in its first start`);
    t.equal(fresh.query(0, Date.now() + 1000, ['verdict']).length, 1, `${d.name}: the new journal holds the new block`);
    fresh.close();
  }
});
