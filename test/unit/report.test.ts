import t from 'tap';
import { openJournal, type JournalKind, type JournalRow } from '../../audit/journal.js';
import { computeReport, csvCell, loadReportInput, reportCsv, reportHtml, reportJson, type ReportInput } from '../../audit/report.js';

const H = 3_600_000;
const DAY = 24 * H;
const T0 = Date.UTC(2025, 5, 1); // 2025-06-01T00:00:00Z

let nextId = 1;
function row(kind: JournalKind, time: number, extra: Partial<JournalRow> = {}): JournalRow {
  return { id: nextId++, time, kind, listener: null, protocol: null, action: null, category: null, list: null, match: null, detail: null, url: null, client: null, count: 1, ...extra };
}

function input(over: Partial<ReportInput>): ReportInput {
  return {
    from: T0,
    to: T0 + 10 * H,
    generatedAt: T0 + 100 * DAY,
    journalPath: ':memory:',
    categories: [],
    lists: [],
    verdictCounts: [],
    imageCounts: [],
    listEvents: [],
    lastSuccessBefore: new Map(),
    stateEvents: [],
    stateBefore: null,
    session: { open: false, lastAlive: null },
    selftests: [],
    keeping: { aggregateRows: 0, aggregatedEvents: {}, lostEvents: {} },
    ...over,
  };
}

t.test('fraction of the period with filtering active (hours of a 10 h period)', async (t) => {
  const cases: Array<{ name: string; in: Partial<ReportInput>; active: number; inactive: number; down: number }> = [
    { name: 'no evidence at all counts as down', in: {}, active: 0, inactive: 0, down: 10 },
    {
      name: 'active before the period, still running',
      in: { stateBefore: row('filtering_active', T0 - H), session: { open: true, lastAlive: T0 + 20 * H } },
      active: 10,
      inactive: 0,
      down: 0,
    },
    {
      name: 'start, 1 h without policy, active, clean stop at 8 h',
      in: { stateEvents: [row('start', T0), row('filtering_active', T0 + H), row('stop', T0 + 8 * H)] },
      active: 7,
      inactive: 1,
      down: 2,
    },
    {
      name: 'crash at 3 h (unclean stop written at the last sign of life), restart at 5 h, active at 6 h',
      in: {
        stateBefore: row('filtering_active', T0 - H),
        stateEvents: [row('stop', T0 + 3 * H, { detail: 'unclean shutdown' }), row('start', T0 + 5 * H), row('filtering_active', T0 + 6 * H)],
        session: { open: true, lastAlive: T0 + 11 * H },
      },
      active: 3 + 4,
      inactive: 1,
      down: 2,
    },
    {
      name: 'the open session’s last sign of life is at 4 h (it died and has not restarted)',
      in: { stateBefore: row('filtering_active', T0 - H), session: { open: true, lastAlive: T0 + 4 * H } },
      active: 4,
      inactive: 0,
      down: 6,
    },
    {
      name: 'policy lost for 2 h',
      in: {
        stateBefore: row('filtering_active', T0 - H),
        stateEvents: [row('filtering_inactive', T0 + 2 * H), row('filtering_active', T0 + 4 * H)],
      },
      active: 8,
      inactive: 2,
      down: 0,
    },
    {
      name: 'the period ends in the future: measured until generation (6 h)',
      in: { stateBefore: row('filtering_active', T0 - H), generatedAt: T0 + 6 * H },
      active: 6,
      inactive: 0,
      down: 0,
    },
    {
      name: 'events after the period end are ignored',
      in: { stateBefore: row('filtering_active', T0 - H), stateEvents: [row('stop', T0 + 12 * H)] },
      active: 10,
      inactive: 0,
      down: 0,
    },
  ];
  for (const c of cases) {
    const r = computeReport(input(c.in));
    const f = r.filtering;
    t.same(
      { active: f.activeSeconds / 3600, inactive: f.inactiveSeconds / 3600, down: f.downSeconds / 3600 },
      { active: c.active, inactive: c.inactive, down: c.down },
      c.name,
    );
    const measured = (r.period.seconds / 3600);
    t.equal(f.activeFraction, c.active / measured, `${c.name}: fraction`);
    t.equal(f.gaps.reduce((s, g) => s + g.seconds, 0), f.inactiveSeconds + f.downSeconds, `${c.name}: gaps add up`);
  }
  t.equal(computeReport(input({ generatedAt: T0 - H })).filtering.activeFraction, null, 'nothing elapsed: no fraction');
});

t.test('a report made while the appliance runs does not count the heartbeat lag as down (issue 21)', async (t) => {
  // Generated at 6 h, the session open, its last sign of life 8 s earlier (heartbeat every 10 s).
  const gen = T0 + 6 * H;
  const live = computeReport(input({ stateBefore: row('filtering_active', T0 - H), generatedAt: gen, session: { open: true, lastAlive: gen - 8_000 } }));
  t.equal(live.filtering.downSeconds, 0, 'no down seconds at the end');
  t.same(live.filtering.gaps, [], 'no gap');
  t.equal(live.filtering.activeFraction, 1);
  t.equal(live.period.measuredUntil, new Date(gen - 8_000).toISOString(), 'measured until the last sign of life, not claimed beyond it');
  // A last sign of life older than the live window: it died; the time after it is down.
  const dead = computeReport(input({ stateBefore: row('filtering_active', T0 - H), generatedAt: gen, session: { open: true, lastAlive: gen - 60_000 } }));
  t.equal(dead.filtering.downSeconds, 60, 'a session silent for a minute counts as down from its last sign of life');
  t.equal(dead.period.measuredUntil, new Date(gen).toISOString());
});

t.test('largest gap between successful list refreshes', async (t) => {
  const cases: Array<{ name: string; in: Partial<ReportInput>; gapHours: number; counts: [number, number, number] }> = [
    {
      name: 'refreshed every 2 h from the start, one failure',
      in: {
        listEvents: [0, 2, 4, 6, 8].map((h) => row(h === 0 ? 'list_load' : 'list_refresh', T0 + h * H, { list: 'l' })).concat(row('list_failure', T0 + 9 * H, { list: 'l', detail: 'ERR_LIST_READ' })),
      },
      gapHours: 2,
      counts: [1, 4, 1],
    },
    {
      name: 'last success 5 h before the period, first refresh at 3 h',
      in: { lastSuccessBefore: new Map([['l', T0 - 5 * H]]), listEvents: [row('list_refresh', T0 + 3 * H, { list: 'l' })] },
      gapHours: 8,
      counts: [0, 1, 0],
    },
    {
      name: 'refreshes stop at 1 h: the tail to the period end is the gap',
      in: { listEvents: [row('list_load', T0 + H, { list: 'l' })] },
      gapHours: 9,
      counts: [1, 0, 0],
    },
    { name: 'configured list never loaded', in: { lists: ['l'] }, gapHours: 10, counts: [0, 0, 0] },
  ];
  const unnamed = computeReport(input({ listEvents: [row('list_failure', T0 + H, { detail: 'ERR_LIST_INVALID' })] })).lists;
  t.same(
    unnamed.map((l) => [l.list, l.failures, l.largestGap]),
    [['(all lists)', 1, null]],
    'a failure that names no list is reported under "(all lists)", without a gap',
  );
  for (const c of cases) {
    const l = computeReport(input(c.in)).lists.find((x) => x.list === 'l');
    t.ok(l, c.name);
    t.equal(l!.largestGapSeconds / 3600, c.gapHours, `${c.name}: gap`);
    t.same([l!.loads, l!.refreshes, l!.failures], c.counts, `${c.name}: counts`);
  }
});

/** A seeded in-memory journal and the figures expected from its rows. */
function seeded() {
  const j = openJournal({ path: ':memory:', retentionDays: 4000, recordUrls: false, recordClients: false, lifecycle: false, now: () => T0 + 40 * DAY });
  const ev = (kind: JournalKind, time: number, e: Record<string, string> = {}) => j.record({ kind, time, ...e });
  ev('start', T0 - DAY);
  ev('filtering_active', T0 - DAY + 1000);
  ev('list_load', T0 - DAY, { list: 'hotline' });
  // 30 days of traffic: day d has (d % 4) adult blocks, (d % 3) csam blocks, one monitored adult every 5th day.
  for (let d = 0; d < 30; d++) {
    for (let i = 0; i < d % 4; i++) ev('verdict', T0 + d * DAY + i * 1000, { action: 'block', category: 'adult', list: 'adult', listener: 'forward', protocol: 'http' });
    for (let i = 0; i < d % 3; i++) ev('verdict', T0 + d * DAY + 5000 + i, { action: 'block', category: 'csam', list: 'hotline', listener: 'tls', protocol: 'tls' });
    if (d % 5 === 0) ev('verdict', T0 + d * DAY + 9000, { action: 'monitor', category: 'adult', list: 'adult', listener: 'http', protocol: 'http' });
    if (d % 7 === 0) ev('image', T0 + d * DAY + 7000, { action: 'block', category: 'csam', list: 'img', match: d % 2 ? 'pdq' : 'sha256' });
    ev('selftest', T0 + d * DAY + 100, { category: 'adult', action: d === 12 ? 'fail' : 'pass', detail: d === 12 ? 'canary <allowed> & "passed"' : '' });
    ev('verdict', T0 + d * DAY + 100, { action: 'block', category: 'adult', list: 'adult', listener: 'selftest', protocol: 'http' });
    if (d % 6 === 0) ev('list_refresh', T0 + d * DAY + 3 * H, { list: 'hotline', detail: '1000 entries' });
  }
  ev('list_failure', T0 + 13 * DAY, { list: 'hotline', detail: 'ERR_LIST_READ <b>' });
  ev('stop', T0 + 20 * DAY);
  ev('start', T0 + 21 * DAY);
  ev('filtering_active', T0 + 21 * DAY + H);
  // Outside the period: must not count.
  ev('verdict', T0 - 1, { action: 'block', category: 'adult', listener: 'forward' });
  ev('verdict', T0 + 30 * DAY, { action: 'block', category: 'adult', listener: 'forward' });
  j.flush();
  return j;
}

t.test('a seeded journal: JSON, CSV and HTML figures equal the journal rows', async (t) => {
  const j = seeded();
  t.teardown(() => j.close());
  const from = T0;
  const to = T0 + 30 * DAY;
  const rows = j.query(from, to);
  const count = (pred: (r: JournalRow) => boolean) => rows.filter(pred).length;
  const report = computeReport(loadReportInput(j, { from, to, categories: ['adult', 'csam', 'malware'], lists: ['hotline', 'adult'], now: () => T0 + 40 * DAY }));

  const blocked = (c: string) => count((r) => r.kind === 'verdict' && r.action === 'block' && r.category === c && r.listener !== 'selftest');
  t.same(report.blockedRequests.byCategory, { adult: blocked('adult'), csam: blocked('csam'), malware: 0 });
  t.equal(report.blockedRequests.total, blocked('adult') + blocked('csam'));
  t.ok(blocked('adult') > 0 && blocked('csam') > 0, 'the seed has blocks');
  t.equal(report.monitored.requests.total, count((r) => r.kind === 'verdict' && r.action === 'monitor'));
  const img = (m: string) => count((r) => r.kind === 'image' && r.match === m);
  t.same(report.blockedImages.byMatch, { md5: 0, sha1: 0, sha256: img('sha256'), pdq: img('pdq') });
  t.same(report.blockedImages.byCategoryAndMatch, [
    { category: 'csam', match: 'pdq', count: img('pdq') },
    { category: 'csam', match: 'sha256', count: img('sha256') },
  ]);
  t.equal(report.blocksPerDay.length, 30);
  t.equal(report.blocksPerDay.reduce((s, d) => s + d.requests, 0), report.blockedRequests.total, 'per-day bars add up to the total');
  t.same(report.blocksPerDay[5], { day: '2025-06-06', requests: (5 % 4) + (5 % 3), images: 0 });
  t.same(report.blocksPerDay[7], { day: '2025-06-08', requests: (7 % 4) + (7 % 3), images: 1 });
  t.same(
    { total: report.selftests.total, passed: report.selftests.passed, failed: report.selftests.failed },
    { total: 30, passed: 29, failed: 1 },
  );
  const hotline = report.lists.find((l) => l.list === 'hotline')!;
  t.same([hotline.loads, hotline.refreshes, hotline.failures], [0, 5, 1]);
  t.equal(hotline.largestGapSeconds, (6 * DAY) / 1000, 'refreshes every 6 days; the tail from day 24 03:00 is shorter');
  t.equal(report.filtering.downSeconds, DAY / 1000, 'down from day 20 to day 21');
  t.equal(report.filtering.inactiveSeconds, H / 1000, 'an hour without policy after the restart');
  t.equal(report.filtering.activeFraction, (30 * DAY - DAY - H) / (30 * DAY));

  // JSON is the same object.
  t.same(JSON.parse(reportJson(report)), JSON.parse(JSON.stringify(report)));

  // CSV: every figure on its line.
  const csv = reportCsv(report).trimEnd().split('\r\n');
  t.equal(csv[0], 'section,key,subkey,value');
  const cell = (section: string, key: string, sub = '') => csv.find((l) => l.startsWith(`${section},${key},${sub},`))?.split(',').at(-1);
  t.equal(cell('blocked_requests', 'adult'), String(blocked('adult')));
  t.equal(cell('blocked_requests', 'csam'), String(blocked('csam')));
  t.equal(cell('blocked_requests', 'malware'), '0');
  t.equal(cell('blocked_images', 'csam', 'pdq'), String(img('pdq')));
  t.equal(cell('monitored_requests', 'total'), String(report.monitored.requests.total));
  t.equal(cell('list', 'hotline', 'largest_gap_seconds'), String((6 * DAY) / 1000));
  t.equal(cell('filtering', 'active_fraction'), String(report.filtering.activeFraction));
  t.equal(cell('selftest', 'adult', 'failed'), '1');

  // HTML: well-formed, self-contained, escaped, with the chart and the figures.
  const html = reportHtml(report);
  t.same(checkMarkup(html), [], 'tags balance and no raw < > & in text');
  t.ok(checkMarkup('<p><b>x</p>').length > 0 && checkMarkup('<p>a < b</p>').length > 0 && checkMarkup('<p>a & b</p>').length > 0, 'the checker can fail');
  t.match(html, /<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.equal((html.match(/<rect class="req"/g) ?? []).length, 30, 'one bar per day');
  t.notMatch(html, /<script|\bsrc=|\bhref=|url\(/i, 'no scripts and no external assets');
  t.notMatch(html, /<allowed>|<b>/, 'journal text is escaped');
  t.match(html, /canary &lt;allowed&gt; &amp; &quot;passed&quot;/);
  t.match(html, new RegExp(`<h2>Blocked requests: ${report.blockedRequests.total}</h2>`));
  t.match(html, new RegExp(`<td>adult</td><td class="n">${blocked('adult')}</td>`));
});

t.test('CSV cells are quoted and defused', async (t) => {
  const table: Array<[string | number | null, string]> = [
    ['plain', 'plain'],
    [42, '42'],
    [-1, '-1'],
    [null, ''],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['line\nbreak', '"line\nbreak"'],
    ['=HYPERLINK("x")', `"'=HYPERLINK(""x"")"`],
    ['+1', "'+1"],
    ['@sum', "'@sum"],
  ];
  for (const [input, want] of table) t.equal(csvCell(input), want, JSON.stringify(input));
});

/** A small well-formedness check: balanced tags (void elements self-closed), no raw markup characters in text. */
function checkMarkup(html: string): string[] {
  const problems: string[] = [];
  const body = html.replace(/^<!DOCTYPE html>\s*/, '');
  const stack: string[] = [];
  const tagRe = /<(\/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s+[a-zA-Z][a-zA-Z0-9:-]*="[^"<>]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tagRe.exec(body); m; m = tagRe.exec(body)) {
    const text = body.slice(last, m.index);
    if (/[<>]/.test(text)) problems.push(`raw < or > in text near ${JSON.stringify(text.slice(0, 40))}`);
    if (/&(?!amp;|lt;|gt;|quot;|#39;)/.test(text)) problems.push(`raw & near ${JSON.stringify(text.slice(0, 40))}`);
    last = tagRe.lastIndex;
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}>`);
    } else stack.push(name!);
  }
  if (/[<>]/.test(body.slice(last).trim())) problems.push('trailing markup');
  if (stack.length) problems.push(`unclosed: ${stack.join(' ')}`);
  return problems;
}
