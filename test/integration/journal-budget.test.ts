/**
 * The journal's budget (issue 22, finding 8): a storm of blocks from one guest becomes a few rows
 * with counts, the figures stay exact, URLs are bounded per client and minute, the file has a size
 * budget with a warning and metrics, and what cannot be kept is counted and reported.
 *
 * Real journals in temp dirs, a second read-only connection that sees only what was committed, and
 * at the end `safespot serve` as a real process with a keep-alive client on port 0.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ProxyAgent, request } from 'undici';
import { openJournal, type Journal, type JournalOptions, type JournalRow } from '../../audit/journal.js';
import { computeReport, loadReportInput, reportCsv, reportHtml } from '../../audit/report.js';
import { createMetrics } from '../../audit/metrics.js';
import { validateConfig } from '../../appliance/config.js';
import { SafespotError } from '../../policy/errors.js';
import { CLI_DEMO_DIR as DEMO, runCli, serve, tempConfig } from '../helpers/appliance.js';

const MIN = 60_000;
/** 5 s into a UTC minute. */
const T0 = Date.UTC(2026, 5, 1, 10, 0, 5);

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-journal-budget-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function setup(t: Test, opts: Partial<JournalOptions> = {}) {
  const clock = { ms: T0 };
  const warnings: string[] = [];
  const path = join(tempDir(t), 'journal.db');
  const j = openJournal({ path, retentionDays: 4000, recordUrls: false, recordClients: false, warn: (m) => warnings.push(m), now: () => clock.ms, ...opts });
  const reader = openJournal({ path, retentionDays: 4000, recordUrls: false, recordClients: false, readOnly: true });
  t.teardown(() => {
    reader.close();
    j.close();
  });
  const rows = (): JournalRow[] => reader.query(0, Number.MAX_SAFE_INTEGER, ['verdict', 'image']);
  return { clock, warnings, path, j, reader, rows };
}

const block = (j: Journal, n: number, e: { category: string; list: string; client?: string; url?: (i: number) => string }): void => {
  for (let i = 0; i < n; i++) {
    j.record({ kind: 'verdict', listener: 'forward', protocol: 'http', action: 'block', category: e.category, list: e.list, client: e.client ?? null, url: e.url?.(i) ?? null });
  }
};

const report = (j: Journal, from = 0, to = T0 + 10 * MIN) =>
  computeReport(loadReportInput(j, { from, to, now: () => to, categories: ['csam', 'adult'], lists: ['hotline', 'adult'] }));

t.test('a storm from one client: rows up to the rate, then one aggregate row a minute; every figure exact', async (t) => {
  const { clock, j, reader, rows } = setup(t, { eventsPerMinute: 100, recordUrls: true });
  block(j, 5000, { category: 'csam', list: 'hotline', client: '10.0.0.7', url: (i) => `http://storm.test/page/${i}` });
  // Another guest in the same minute keeps its own budget (the client keys it, though not stored).
  block(j, 30, { category: 'adult', list: 'adult', client: '10.0.0.8', url: (i) => `http://other.test/${i}` });
  j.flush();

  let all = rows();
  t.equal(all.length, 100 + 1 + 30, '100 rows of their own, one aggregate, the other guest’s 30 (not 5,030 rows)');
  const agg = all.filter((r) => r.count > 1);
  t.equal(agg.length, 1, 'one aggregate row');
  t.equal(agg[0]?.count, 4900, 'it counts the other 4,900');
  t.equal(agg[0]?.time, Math.floor(T0 / MIN) * MIN, 'stamped with the start of its minute');
  t.equal(agg[0]?.url, null, 'an aggregate has no URL');
  t.equal(agg[0]?.client, null, 'nor a client (recordClients is off)');
  t.equal(agg[0]?.category, 'csam');
  t.equal(agg[0]?.list, 'hotline');
  t.equal(agg[0]?.listener, 'forward');
  t.match(agg[0]?.detail, /^aggregate: /);
  t.equal(all.filter((r) => r.url !== null).length, 130, 'URLs recorded: 100 for the storm, 30 for the other guest');
  t.equal(all.filter((r) => r.client !== null).length, 0, 'no client stored anywhere');

  // The same minute goes on: the aggregate row grows in place.
  block(j, 1000, { category: 'csam', list: 'hotline', client: '10.0.0.7' });
  j.flush();
  all = rows();
  t.equal(all.filter((r) => r.count > 1).length, 1, 'still one aggregate row for the minute');
  t.equal(all.find((r) => r.count > 1)?.count, 5900);

  // The next minute: a fresh budget.
  clock.ms += MIN;
  block(j, 150, { category: 'csam', list: 'hotline', client: '10.0.0.7' });
  j.flush();
  all = rows();
  t.equal(all.length, 131 + 100 + 1, 'the next minute: 100 more rows and a second aggregate of 50');

  const byCategory = Object.fromEntries(reader.count({ from: 0, to: Number.MAX_SAFE_INTEGER, kind: 'verdict', by: ['category'] }).map((r) => [r.key.category, r.n]));
  t.same(byCategory, { adult: 30, csam: 6150 }, 'count() sums the rows’ counts');
  const r = report(reader);
  t.same(r.blockedRequests.byCategory, { csam: 6150, adult: 30 }, 'the report’s figures are every event');
  t.equal(r.blockedRequests.total, 6180);
  t.equal(r.blocksPerDay.reduce((a, d) => a + d.requests, 0), 6180, 'per day too');
  t.equal(r.journalKeeping.aggregatedEvents, 5900 + 50, 'the report says how many are counts only');
  t.same(r.journalKeeping.aggregatedByReason, { rate: 5950 });
  t.equal(r.journalKeeping.aggregateRows, 2);
  t.equal(r.journalKeeping.lostEvents, 0);
  t.match(r.journalKeeping.note, /No event was lost/);
  t.match(reportCsv(r), /journal,aggregated_events,rate,5950/);
  t.match(reportHtml(r), /How the journal kept these events[\s\S]*5,950/, 'the printable report says so too');
  t.same(j.stats().aggregated, { rate: 5950, budget: 0, queue: 0 });
});

t.test('with recordClients, the aggregate keeps its client; per-client budgets stay apart', async (t) => {
  const { j, rows } = setup(t, { eventsPerMinute: 10, recordUrls: true, recordClients: true });
  block(j, 25, { category: 'adult', list: 'adult', client: '10.0.0.7', url: () => 'http://a.test/' });
  block(j, 12, { category: 'adult', list: 'adult', client: '10.0.0.9', url: () => 'http://b.test/' });
  j.flush();
  const agg = rows().filter((r) => r.count > 1 || (r.detail ?? '').startsWith('aggregate:'));
  t.same(
    agg.map((r) => [r.client, r.count, r.url]).sort(),
    [
      ['10.0.0.7', 15, null],
      ['10.0.0.9', 2, null],
    ],
    'one aggregate per client, no URL',
  );
  t.equal(rows().filter((r) => r.url !== null).length, 20, '10 URLs per client and minute');
});

t.test('the timer writes aggregates within the loss window, without an explicit flush', async (t) => {
  // The real clock: the timer-driven flush must carry the aggregate like any queued row.
  const { j, reader } = setup(t, { eventsPerMinute: 5, now: Date.now });
  const before = j.stats().flushes;
  block(j, 700, { category: 'csam', list: 'hotline' });
  t.equal(reader.count({ from: 0, to: Number.MAX_SAFE_INTEGER, kind: 'verdict', by: [] })[0]?.n ?? 0, 0, 'nothing committed yet');
  while (j.stats().flushes === before || j.stats().pending > 0) await new Promise((r) => setTimeout(r, 20));
  t.equal(reader.count({ from: 0, to: Number.MAX_SAFE_INTEGER, kind: 'verdict', by: [] })[0]?.n, 700, 'all 700 committed by the timer');
});

t.test('size budget: a warning at alertPercent, then only counts past maxBytes; metrics show both', async (t) => {
  const { j, warnings, rows } = setup(t, { eventsPerMinute: 1_000_000, recordUrls: true, maxBytes: 1_000_000, alertPercent: 20 });
  const metrics = createMetrics({ defaultMetrics: false, categories: ['csam', 'adult'], lists: ['hotline', 'adult'] });
  metrics.watchJournal(() => j.stats());
  const long = (i: number) => `http://big.test/${'x'.repeat(1900)}/${i}`;
  t.equal(warnings.length, 0, 'no warning for an empty journal');
  block(j, 150, { category: 'adult', list: 'adult', url: long });
  j.flush();
  t.ok(j.stats().sizeBytes >= 200_000, `the journal measured itself: ${j.stats().sizeBytes} bytes`);
  t.equal(warnings.length, 1, 'one warning when it crossed 20 %');
  t.match(warnings[0], /% of journal\.maxBytes/);
  t.equal(j.stats().aggregated.budget, 0, 'below the budget: rows of their own');
  block(j, 400, { category: 'adult', list: 'adult', url: long });
  j.flush();
  t.ok(j.stats().sizeBytes >= 1_000_000, 'past the budget');
  t.equal(warnings.length, 2, 'a second warning at the budget');
  t.match(warnings[1], /per-minute counts/);
  const rowsAtBudget = rows().length;
  block(j, 5000, { category: 'adult', list: 'adult', url: long });
  j.flush();
  t.equal(rows().length, rowsAtBudget + 1, 'past the budget: 5,000 more blocks are one aggregate row');
  t.equal(j.stats().aggregated.budget, 5000);
  t.equal(report(j).blockedRequests.byCategory.adult, 5550, 'and still in the figures');
  t.same(report(j).journalKeeping.aggregatedByReason, { budget: 5000 });
  t.equal(warnings.length, 2, 'no warning per event: one per crossing');

  const text = await metrics.text();
  const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  t.equal(value(/^safespot_journal_budget_bytes (\d+)$/m), 1_000_000);
  t.equal(value(/^safespot_journal_alert_bytes (\d+)$/m), 200_000);
  t.equal(value(/^safespot_journal_size_bytes (\d+)$/m), j.stats().sizeBytes);
  t.equal(value(/^safespot_journal_events_aggregated_total\{reason="budget"\} (\d+)$/m), 5000);
  t.equal(value(/^safespot_journal_events_aggregated_total\{reason="rate"\} (\d+)$/m), 0);
  const again = await metrics.text();
  t.match(again, /^safespot_journal_events_aggregated_total\{reason="budget"\} 5000$/m, 'a second scrape does not count twice');
  t.notMatch(text, /big\.test|10\.0\.0/, 'no URL or client in the metrics');
});

t.test('a full write queue folds into counts instead of dropping; what cannot be kept is a journal_loss row', async (t) => {
  const { j, reader } = setup(t, { eventsPerMinute: 1_000_000 });
  const metrics = createMetrics({ defaultMetrics: false });
  metrics.watchJournal(() => j.stats());
  // Synchronously, so no flush runs in between: 100,000 queue, the rest must not be lost.
  block(j, 100_010, { category: 'csam', list: 'hotline' });
  t.equal(j.stats().pending, 100_000);
  t.equal(j.stats().dropped, 0, 'nothing dropped');
  t.equal(j.stats().aggregated.queue, 10);
  j.noteLost(7, 'worker_queue');
  j.flush();
  const r = report(reader);
  t.equal(r.blockedRequests.byCategory.csam, 100_010, 'every event in the figures');
  t.equal(r.journalKeeping.lostEvents, 7, 'the report shows the lost events');
  t.same(r.journalKeeping.lostByReason, { worker_queue: 7 });
  t.match(r.journalKeeping.note, /7 event\(s\) could not be written/);
  t.match(reportCsv(r), /journal,lost_events,worker_queue,7/);
  t.equal(j.stats().dropped, 7);
  t.match(await metrics.text(), /^safespot_journal_events_lost_total\{reason="worker_queue"\} 7$/m);
  t.throws(() => j.record({ kind: 'journal_loss' }), /noteLost/, 'only the journal writes loss rows');
});

t.test('a version-1 journal is migrated: its rows count one each', async (t) => {
  const path = join(tempDir(t), 'v1.db');
  const db = new Database(path);
  db.exec(`
    CREATE TABLE schema_version (version INTEGER NOT NULL, applied INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (1, 0);
    CREATE TABLE events (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, kind TEXT NOT NULL, listener TEXT, protocol TEXT,
      action TEXT, category TEXT, list TEXT, match TEXT, detail TEXT, url TEXT, client TEXT) STRICT;
    CREATE INDEX events_time ON events (time);
    CREATE INDEX events_kind_time ON events (kind, time);
    CREATE TABLE session (id INTEGER PRIMARY KEY CHECK (id = 1), open INTEGER NOT NULL, started INTEGER, last_alive INTEGER) STRICT;
    INSERT INTO session (id, open) VALUES (1, 0);
  `);
  const ins = db.prepare("INSERT INTO events (time, kind, action, category, list) VALUES (?, 'verdict', 'block', 'adult', 'adult')");
  for (let i = 0; i < 3; i++) ins.run(T0 + i);
  db.close();

  const old = openJournal({ path, retentionDays: 4000, recordUrls: false, recordClients: false, readOnly: true });
  t.equal(report(old).blockedRequests.byCategory.adult, 3, 'read-only, unmigrated: rows are counted');
  t.same(report(old).journalKeeping.aggregatedByReason, {});
  old.close();

  const j = openJournal({ path, retentionDays: 4000, recordUrls: false, recordClients: false, lifecycle: false, now: () => T0, eventsPerMinute: 1 });
  t.teardown(() => j.close());
  block(j, 4, { category: 'adult', list: 'adult' });
  j.flush();
  t.equal(report(j).blockedRequests.byCategory.adult, 7, '3 old rows, 1 new row and an aggregate of 3');
});

t.test('config: the budget keys have defaults, and every bad value is reported', async (t) => {
  const c = validateConfig({}, '/etc/safespot');
  t.equal(c.journal.eventsPerMinute, 600);
  t.equal(c.journal.maxBytes, 512 * 1024 * 1024);
  t.equal(c.journal.alertPercent, 80);
  let details: string[] = [];
  try {
    validateConfig({ journal: { eventsPerMinute: -1, maxBytes: 1000, alertPercent: 0 } }, '/etc/safespot');
  } catch (err) {
    if (!(err instanceof SafespotError)) throw err;
    t.equal(err.code, 'ERR_CONFIG_INVALID');
    details = [...err.details];
  }
  const text = details.join('\n');
  t.match(text, /journal\.eventsPerMinute/);
  t.match(text, /journal\.maxBytes/);
  t.match(text, /journal\.alertPercent/);
});

t.test('serve: 2,000 blocked requests over one keep-alive connection stay a few rows, and the report counts all', async (t) => {
  const { dir, config } = tempConfig(t, 'journal-budget', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
  ]);
  const journalPath = join(dir, 'journal.db');
  writeFileSync(config, readFileSync(config, 'utf8').replace(`journal: { path: ${journalPath} }`, `journal: { path: ${journalPath}, eventsPerMinute: 50, recordUrls: true }`));
  const from = new Date(Date.now() - 60_000).toISOString();
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false, connections: 1 });
  t.teardown(() => agent.close());
  const N = 2000;
  let blocked = 0;
  for (let i = 0; i < N; i++) {
    const res = await request(`http://blocked.test/p${i}`, { dispatcher: agent });
    await res.body.arrayBuffer();
    if (res.statusCode === 403) blocked++;
  }
  t.equal(blocked, N, 'every request blocked');
  const metricsText = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.match(metricsText, /^safespot_journal_budget_bytes 536870912$/m, 'the budget is exported');
  t.ok(Number(/^safespot_journal_size_bytes (\d+)$/m.exec(metricsText)?.[1]) > 0, 'and the size');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);

  const db = new Database(journalPath, { readonly: true });
  const rows = db.prepare("SELECT COUNT(*) AS rows, SUM(count) AS events, SUM(url IS NOT NULL) AS urls FROM events WHERE kind = 'verdict' AND (listener IS NULL OR listener <> 'selftest')").get() as {
    rows: number;
    events: number;
    urls: number;
  };
  db.close();
  t.equal(rows.events, N, 'the journal holds all 2,000');
  // The requests may straddle minutes: at most 50 rows and one aggregate per minute touched.
  const minutes = Math.ceil((Date.now() - Date.parse(from)) / MIN) + 1;
  t.ok(rows.rows <= minutes * 51, `${rows.rows} rows for ${N} blocks (at most 51 a minute)`);
  t.ok(rows.urls <= minutes * 50, `${rows.urls} URLs recorded (at most 50 a minute)`);
  const to = new Date(Date.now() + 60_000).toISOString();
  const rep = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'json']);
  t.equal(rep.code, 0, rep.stderr);
  const r = JSON.parse(rep.stdout) as { blockedRequests: { byCategory: Record<string, number> }; journalKeeping: { aggregatedEvents: number; lostEvents: number } };
  t.equal(r.blockedRequests.byCategory.adult, N, 'the report counts every block');
  t.equal(r.journalKeeping.aggregatedEvents, N - rows.urls, 'and says how many are counts only (every row of its own has its URL)');
  t.equal(r.journalKeeping.lostEvents, 0);
});

t.test('serve, recordClients off: one guest\'s storm does not use up another guest\'s recorded URLs', async (t) => {
  const { exchange } = await import('../helpers/sockets.js');
  const { dir, config } = tempConfig(t, 'journal-budget-clients', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
  ]);
  const journalPath = join(dir, 'journal.db');
  writeFileSync(config, readFileSync(config, 'utf8').replace(`journal: { path: ${journalPath} }`, `journal: { path: ${journalPath}, eventsPerMinute: 20, recordUrls: true, recordClients: false }`));
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const burst = (tag: string, n: number): string =>
    Array.from({ length: n }, (_, i) => `GET http://blocked.test/${tag}${i} HTTP/1.1\r\nHost: blocked.test\r\n${i === n - 1 ? 'Connection: close\r\n' : ''}\r\n`).join('');
  const a = await exchange(app.forward, burst('storm', 200), '127.0.0.1');
  t.equal(a.toString('latin1').match(/HTTP\/1\.1 403 /g)?.length, 200, 'guest A: 200 blocked');
  const b = await exchange(app.forward, burst('quiet', 10), '127.0.0.2');
  t.equal(b.toString('latin1').match(/HTTP\/1\.1 403 /g)?.length, 10, 'guest B: 10 blocked');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);
  const db = new Database(journalPath, { readonly: true });
  const q = (like: string) => db.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = 'verdict' AND url LIKE ?").get(like) as { n: number };
  const quiet = q('%/quiet%').n;
  const storm = q('%/storm%').n;
  const clients = (db.prepare("SELECT COUNT(*) AS n FROM events WHERE client IS NOT NULL").get() as { n: number }).n;
  const total = (db.prepare("SELECT SUM(count) AS n FROM events WHERE kind = 'verdict' AND (listener IS NULL OR listener <> 'selftest')").get() as { n: number }).n;
  db.close();
  t.equal(quiet, 10, 'guest B\'s 10 URLs are all recorded: its budget is its own');
  t.ok(storm <= 40, `guest A's storm recorded at most its own rate (${storm} URLs, ≤ 20 a minute)`);
  t.equal(clients, 0, 'and no client address is stored (recordClients is off)');
  t.equal(total, 210, 'every block counted');
});
