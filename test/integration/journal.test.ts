import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { journalObserver, openJournal, type JournalOptions } from '../../audit/journal.js';

const journalModule = pathToFileURL(new URL('../../audit/journal.js', import.meta.url).pathname).href;

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// These tests are about the queue and its promises, one row per event: the per-minute budget that
// aggregates a storm (journal-budget.test.ts) is set out of their way.
const base = (path: string): JournalOptions => ({ path, retentionDays: 400, recordUrls: false, recordClients: false, warn: () => {}, eventsPerMinute: 1_000_000 });

t.test('writes are queued and committed in one transaction per flush', async (t) => {
  const path = join(tempDir(t), 'journal.db');
  const j = openJournal(base(path));
  t.teardown(() => j.close());
  const reader = openJournal({ ...base(path), readOnly: true });
  t.teardown(() => reader.close());
  const flushesBefore = j.stats().flushes;
  for (let i = 0; i < 500; i++) j.record({ kind: 'verdict', action: 'block', category: 'adult', list: 'demo' });
  t.equal(reader.query(0, Date.now() + 1000, ['verdict']).length, 0, 'nothing written by record() itself');
  t.equal(j.stats().pending, 500);
  j.flush();
  t.equal(j.stats().flushes - flushesBefore, 1, 'one flush');
  t.equal(reader.query(0, Date.now() + 1000, ['verdict']).length, 500, 'all 500 visible after the flush');
  // The timer flushes on its own: wait for it without a deadline of our own.
  j.record({ kind: 'verdict', action: 'monitor', category: 'adult', list: 'demo' });
  while (reader.query(0, Date.now() + 1000, ['verdict']).length < 501) await new Promise((r) => setTimeout(r, 20));
  t.equal(j.stats().pending, 0, 'the timer flushed the queue');
});

t.test('a clean close loses nothing and records start and stop', async (t) => {
  const path = join(tempDir(t), 'journal.db');
  const j = openJournal(base(path));
  j.record({ kind: 'start', detail: 'a caller’s own start' });
  for (let i = 0; i < 1234; i++) j.record({ kind: 'verdict', action: 'block', category: 'csam', list: 'hotline', listener: 'forward', protocol: 'connect' });
  j.record({ kind: 'stop', detail: 'a caller’s own stop' });
  j.close();
  j.close(); // idempotent
  const r = openJournal({ ...base(path), readOnly: true });
  t.teardown(() => r.close());
  const all = r.query(0, Date.now() + 1000);
  t.equal(all.filter((e) => e.kind === 'verdict').length, 1234);
  t.same(all.filter((e) => e.kind === 'start' || e.kind === 'stop').map((e) => e.kind), ['start', 'stop'], 'one start, one stop: the journal owns them');
  t.equal(all.at(-1)?.detail, 'clean shutdown');
  t.same(r.session().open, false);
});

t.test('kill -9 loses at most the last second, and the next open records the unclean stop', async (t) => {
  const path = join(tempDir(t), 'journal.db');
  const script = `
    import { openJournal } from ${JSON.stringify(journalModule)};
    const j = openJournal({ path: ${JSON.stringify(path)}, retentionDays: 400, recordUrls: false, recordClients: false, eventsPerMinute: 1_000_000 });
    let seq = 0;
    setInterval(() => {
      const time = Date.now();
      j.record({ kind: 'verdict', action: 'block', category: 'adult', list: 'demo', detail: String(seq), time });
      process.stdout.write(seq + ' ' + time + '\\n');
      seq++;
    }, 5);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  let buffered = '';
  let last: { seq: number; time: number } | null = null;
  let first: number | null = null;
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [s, tm] = line.split(' ').map(Number);
        last = { seq: s!, time: tm! };
        first ??= tm!;
      }
      // Let it run for well over a flush interval and a second of events, then kill it mid-stream.
      if (last && first !== null && last.time - first > 1500 && last.seq > 100) resolve();
    });
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const reported = last as unknown as { seq: number; time: number };

  const j = openJournal(base(path));
  t.teardown(() => j.close());
  const verdicts = j.query(0, Date.now() + 1000, ['verdict']);
  const seqs = verdicts.map((v) => Number(v.detail));
  t.ok(seqs.length > 0, `${seqs.length} events survived`);
  t.same(seqs, seqs.map((_, i) => i), 'the survivors are exactly the first k events, in order, without holes');
  const lastKept = verdicts.at(-1)!;
  const lostMs = reported.time - lastKept.time;
  t.comment(`child reported ${reported.seq + 1} events; ${seqs.length} kept; lost window ${lostMs} ms`);
  t.ok(lostMs <= 1000, `lost at most the last second (lost ${lostMs} ms of events)`);
  const lifecycle = j.query(0, Date.now() + 1000, ['start', 'stop']);
  t.same(lifecycle.map((e) => e.kind), ['start', 'stop', 'start'], 'the missing stop was written at reopen');
  const stop = lifecycle[1]!;
  t.match(stop.detail, /unclean/);
  t.ok(stop.time >= lastKept.time, 'the stop is at or after the last kept event (the last sign of life)');
  t.ok(stop.time <= lifecycle[2]!.time, 'and before the new start');
});

t.test('a corrupt journal is set aside, never truncated, and a fresh one started', async (t) => {
  const dir = tempDir(t);
  const cases: Array<{ name: string; damage: (path: string) => void }> = [
    { name: 'not a database at all', damage: (p) => writeFileSync(p, 'this is not SQLite '.repeat(500)) },
    {
      name: 'a real journal with damaged pages',
      damage: (p) => {
        const j = openJournal(base(p));
        for (let i = 0; i < 5000; i++) j.record({ kind: 'verdict', action: 'block', category: 'adult', detail: `row ${i}` });
        j.close();
        const size = statSync(p).size;
        const fd = openSync(p, 'r+');
        // Keep the header page, scribble over the pages of the table and its index.
        const junk = Buffer.alloc(size - 8192, 0xa5);
        writeSync(fd, junk, 0, junk.length, 4096);
        closeSync(fd);
      },
    },
  ];
  for (const c of cases) {
    const path = join(dir, `${c.name.replace(/\W+/g, '-')}.db`);
    c.damage(path);
    const before = readFileSync(path);
    const warnings: string[] = [];
    const j = openJournal({ ...base(path), warn: (m) => warnings.push(m) });
    t.ok(j.setAside, `${c.name}: set aside`);
    t.match(j.setAside ?? '', /\.db\.corrupt-\d{8}T\d{6}Z/, 'named journal.db.corrupt-<timestamp>');
    t.ok(existsSync(j.setAside!), 'the old file is still there');
    t.same(readFileSync(j.setAside!), before, 'byte for byte');
    t.equal(warnings.length, 1);
    t.match(warnings[0], /corrupt.*moved to.*new journal/s, 'a clear message');
    j.record({ kind: 'verdict', action: 'block', category: 'adult' });
    j.close();
    const r = openJournal({ ...base(path), readOnly: true });
    t.equal(r.query(0, Date.now() + 1000, ['verdict']).length, 1, 'the fresh journal works');
    r.close();
  }
});

t.test('read-only open fails clearly on a missing or corrupt file', async (t) => {
  const dir = tempDir(t);
  t.throws(() => openJournal({ ...base(join(dir, 'missing.db')), readOnly: true }), { code: 'ERR_JOURNAL' });
  const bad = join(dir, 'bad.db');
  writeFileSync(bad, 'garbage'.repeat(1000));
  t.throws(() => openJournal({ ...base(bad), readOnly: true }), { code: 'ERR_JOURNAL', message: /corrupt|not a database/ });
  t.ok(existsSync(bad), 'a reader never moves files');
});

t.test('retention deletes events older than retentionDays at open', async (t) => {
  const path = join(tempDir(t), 'journal.db');
  const day = 86_400_000;
  const t0 = Date.UTC(2025, 5, 30);
  const j = openJournal({ ...base(path), now: () => t0, lifecycle: false });
  for (const age of [40, 31, 29, 1]) j.record({ kind: 'verdict', action: 'block', category: 'adult', time: t0 - age * day, detail: `${age}` });
  j.close();
  const again = openJournal({ ...base(path), retentionDays: 30, now: () => t0, lifecycle: false });
  t.teardown(() => again.close());
  t.same(
    again.query(0, t0 + 1, ['verdict']).map((e) => e.detail),
    ['29', '1'],
    'the 40- and 31-day-old events are gone, the others kept',
  );
});

t.test('privacy: url and client are stored only when enabled; allows are never journaled', async (t) => {
  const dir = tempDir(t);
  const verdict = {
    listener: 'forward',
    protocol: 'http',
    category: 'adult',
    list: 'demo',
    durationSeconds: 1e-5,
    url: 'http://blocked.test/page',
    client: '192.0.2.7',
  } as const;
  const cases = [
    { recordUrls: false, recordClients: false, url: null, client: null },
    { recordUrls: true, recordClients: false, url: verdict.url, client: null },
    { recordUrls: false, recordClients: true, url: null, client: verdict.client },
    { recordUrls: true, recordClients: true, url: verdict.url, client: verdict.client },
  ];
  for (const [i, c] of cases.entries()) {
    const path = join(dir, `p${i}.db`);
    const j = openJournal({ ...base(path), recordUrls: c.recordUrls, recordClients: c.recordClients });
    const o = journalObserver(j);
    o.verdict({ ...verdict, action: 'allow', category: null, list: null });
    o.verdict({ ...verdict, action: 'error', category: null, list: null });
    o.verdict({ ...verdict, action: 'block' });
    o.verdict({ ...verdict, action: 'monitor' });
    o.imageBlocked({ category: 'csam', match: 'pdq', list: 'img', action: 'block' });
    // Direct records are filtered the same way.
    j.record({ kind: 'verdict', action: 'block', category: 'adult', url: verdict.url, client: verdict.client });
    j.close();
    const r = openJournal({ ...base(path), readOnly: true });
    const rows = r.query(0, Date.now() + 1000, ['verdict', 'image']);
    r.close();
    t.same(rows.map((e) => `${e.kind}:${e.action}`), ['verdict:block', 'verdict:monitor', 'image:block', 'verdict:block'], `case ${i}: no allows, no errors`);
    const verdicts = rows.filter((e) => e.kind === 'verdict');
    t.ok(verdicts.every((e) => e.url === c.url && e.client === c.client), `case ${i}: url ${String(c.url)}, client ${String(c.client)}`);
    t.same(rows.find((e) => e.kind === 'image')?.match, 'pdq');
    const raw = readFileSync(path).toString('latin1') + (existsSync(`${path}-wal`) ? readFileSync(`${path}-wal`).toString('latin1') : '');
    t.equal(raw.includes('blocked.test'), c.recordUrls, `case ${i}: URL bytes on disk only when enabled`);
    t.equal(raw.includes('192.0.2.7'), c.recordClients, `case ${i}: client bytes on disk only when enabled`);
  }
});

t.test('grouped counts equal the rows', async (t) => {
  const path = join(tempDir(t), 'journal.db');
  const j = openJournal({ ...base(path), lifecycle: false });
  t.teardown(() => j.close());
  const day = 86_400_000;
  const t0 = Date.UTC(2025, 0, 1);
  const plan = [
    { category: 'adult', action: 'block', listener: 'forward', days: [0, 0, 1, 2] },
    { category: 'csam', action: 'block', listener: 'tls', days: [1, 1] },
    { category: 'adult', action: 'monitor', listener: 'http', days: [2] },
    { category: 'adult', action: 'block', listener: 'selftest', days: [0] },
  ];
  for (const p of plan) for (const d of p.days) j.record({ kind: 'verdict', action: p.action, category: p.category, listener: p.listener, time: t0 + d * day + 1000 });
  j.flush();
  const counts = j.count({ from: t0, to: t0 + 3 * day, kind: 'verdict', actions: ['block'], excludeListener: 'selftest', by: ['category', 'day'] });
  t.same(counts, [
    { key: { category: 'adult', day: '2025-01-01' }, n: 2 },
    { key: { category: 'adult', day: '2025-01-02' }, n: 1 },
    { key: { category: 'adult', day: '2025-01-03' }, n: 1 },
    { key: { category: 'csam', day: '2025-01-02' }, n: 2 },
  ]);
  const rows = j.query(t0, t0 + 3 * day, ['verdict']).filter((r) => r.action === 'block' && r.listener !== 'selftest');
  t.equal(counts.reduce((s, c) => s + c.n, 0), rows.length);
});
