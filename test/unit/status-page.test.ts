/**
 * The status page's parts without a listener: the exposition reader (byte by byte, truncated,
 * fuzzed), the view taken from it, the journal tally (month and day bounds, what counts, the cache)
 * on an in-memory journal with its own clock, the language choice, and escaping of every value.
 */
import t from 'tap';
import fc from 'fast-check';
import { openJournal } from '../../audit/journal.js';
import { formatAge, renderStatusPage, statusLanguage, type StatusView } from '../../appliance/admin/status-page.js';
import { BlockTally, parseExposition, PAST_TTL_MS, TODAY_TTL_MS, viewFromSamples } from '../../appliance/admin/status-figures.js';
import { STATUS_EN, STATUS_SQ } from '../../appliance/admin/status-strings.js';

const FP = `sha256:${'ab'.repeat(32)}`;
const EXPOSITION = `# HELP safespot_filtering_active 1 while ...
# TYPE safespot_filtering_active gauge
safespot_filtering_active 1
safespot_policy_entries{list="demo-adult"} 4
safespot_policy_entries{list="other"} 0
safespot_policy_last_refresh_timestamp_seconds{list="demo-adult"} 1700000000
safespot_policy_refresh_interval_seconds{list="demo-adult"} 3600
safespot_policy_info{version="v1"} 1
safespot_selftest_canary_success{canary="adult-1",category="adult"} 1
safespot_selftest_canary_success{canary="odd",category="a\\"b\\\\c"} 0
safespot_selftest_last_run_timestamp_seconds 1700000100
safespot_appliance_info{site="lake-park",fingerprint="${FP}"} 1
safespot_requests_total{listener="forward",protocol="http",action="block",category="adult"} 9
`;

t.test('parseExposition reads the wanted series, escapes included, and skips the rest', async (t) => {
  const samples = parseExposition(EXPOSITION);
  t.equal(samples.length, 10, 'requests_total is not wanted');
  t.same(samples.find((s) => s.labels.canary === 'odd')?.labels, { canary: 'odd', category: 'a"b\\c' }, 'label escapes undone');
  const v = viewFromSamples(samples);
  t.equal(v.filteringActive, true);
  t.equal(v.policyVersion, 'v1');
  t.same(v.lists, [{ id: 'demo-adult', entries: 4, lastLoaded: 1700000000, interval: 3600 }], "the 'other' placeholder left out");
  t.same(v.canaries.map((c) => [c.id, c.ok]), [['adult-1', true], ['odd', false]]);
  t.equal(v.fingerprint, FP);
  t.equal(v.site, 'lake-park');
  t.equal(viewFromSamples(parseExposition('safespot_appliance_info{site="s",fingerprint="other"} 1\n')).fingerprint, null, 'not a fingerprint: none shown');
  t.equal(viewFromSamples(parseExposition('safespot_filtering_active 0\n')).filteringActive, false);
  t.equal(viewFromSamples([]).filteringActive, null, 'no series: unknown, not active');

  // Every prefix of the text (a scrape cut anywhere): never a throw, never a sample that was not in the text.
  const full = new Set(samples.map((s) => JSON.stringify(s)));
  for (let i = 0; i <= EXPOSITION.length; i++) {
    for (const s of parseExposition(EXPOSITION.slice(0, i))) {
      const complete = full.has(JSON.stringify(s));
      // A cut inside a value ("17000" of "1700000000") is a shorter number: only values may differ.
      if (!complete) t.ok([...full].some((f) => { const o = JSON.parse(f); return o.name === s.name && JSON.stringify(o.labels) === JSON.stringify(s.labels); }), `prefix ${i}: ${s.name} is a real series`);
    }
  }
  t.same(parseExposition('safespot_filtering_active{list="x" 1\nsafespot_filtering_active{list=x} 1\nsafespot_filtering_active NaN\n'), [], 'broken label sets and NaN skipped');
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), (s) => {
      parseExposition(s);
      parseExposition(`safespot_policy_entries{${s}} 1`);
    }),
    { numRuns: 2000 },
  );
});

const DAY = 86_400_000;

t.test('BlockTally: this UTC month and day, blocks only, self-test left out, cached', async (t) => {
  const now = { ms: Date.UTC(2026, 11, 7, 12, 0, 0) };
  const j = openJournal({ path: ':memory:', retentionDays: 4000, recordUrls: false, recordClients: false, lifecycle: false, now: () => now.ms, eventsPerMinute: 1_000_000 });
  t.teardown(() => j.close());
  const verdict = (time: number, category: string | null, action = 'block', listener = 'forward') =>
    j.record({ kind: 'verdict', time, listener, protocol: 'http', action, category });
  verdict(Date.UTC(2026, 10, 30, 23, 59, 59, 999), 'adult'); // last month: out
  verdict(Date.UTC(2026, 11, 1, 0, 0, 0), 'adult'); // first ms of the month: in
  verdict(Date.UTC(2026, 11, 3, 10), 'malware');
  verdict(Date.UTC(2026, 11, 3, 11), 'malware');
  verdict(Date.UTC(2026, 11, 6, 23, 59, 59, 999), 'csam'); // yesterday
  verdict(Date.UTC(2026, 11, 7, 0, 0, 0), 'adult'); // today
  verdict(Date.UTC(2026, 11, 7, 11), 'adult');
  verdict(Date.UTC(2026, 11, 7, 11), null); // a block without a category (e.g. no policy)
  verdict(Date.UTC(2026, 11, 7, 11), 'adult', 'monitor'); // would-block: not a block
  verdict(Date.UTC(2026, 11, 7, 11), 'adult', 'allow');
  verdict(Date.UTC(2026, 11, 7, 11), 'adult', 'block', 'selftest'); // the canary's own verdict
  j.record({ kind: 'image', time: Date.UTC(2026, 11, 2), action: 'block', category: 'csam', match: 'pdq' });
  j.record({ kind: 'image', time: Date.UTC(2026, 11, 7, 1), action: 'block', category: 'csam', match: 'sha256' });
  j.record({ kind: 'selftest', time: Date.UTC(2026, 11, 7, 1), action: 'fail', category: 'adult', list: 'c1' });
  j.flush();

  const tally = new BlockTally(j, () => now.ms);
  const b = tally.read();
  t.equal(b.monthStart, Date.UTC(2026, 11, 1));
  t.equal(b.todayStart, Date.UTC(2026, 11, 7));
  t.same(Object.fromEntries(b.requestsToday), { adult: 2, none: 1 });
  t.same(Object.fromEntries(b.requestsMonth), { adult: 3, malware: 2, csam: 1, none: 1 });
  t.same(Object.fromEntries(b.imagesToday), { csam: 1 });
  t.same(Object.fromEntries(b.imagesMonth), { csam: 2 });
  t.same(Object.fromEntries([...b.daily].map(([d, m]) => [d, Object.fromEntries(m)])), {
    1: { adult: 1 },
    3: { malware: 2 },
    6: { csam: 1 },
    7: { adult: 2, none: 1 },
  });
  const asked = tally.queries;
  t.equal(asked, 2, 'one query for the earlier days, one for today');

  // Within the cache's time: the journal is not asked again, and a new block is not seen yet.
  verdict(now.ms, 'adult');
  j.flush();
  now.ms += TODAY_TTL_MS - 1;
  t.equal(tally.read().requestsToday.get('adult'), 2, 'cached');
  t.equal(tally.queries, asked, 'the journal was not asked');
  now.ms += 1;
  t.equal(tally.read().requestsToday.get('adult'), 3, 'after the cache time: the new block');
  t.equal(tally.queries, asked + 1, 'only today was asked again (earlier days are kept longer)');
  now.ms = Date.UTC(2026, 11, 7, 12) + PAST_TTL_MS;
  tally.read();
  t.equal(tally.queries, asked + 3, 'after PAST_TTL_MS both again');

  // The UTC day turns: yesterday's figures move into the earlier days, today starts at 0.
  now.ms = Date.UTC(2026, 11, 8, 0, 0, 1);
  const next = tally.read();
  t.same(Object.fromEntries(next.requestsToday), {}, 'a new day starts empty');
  t.same(Object.fromEntries(next.requestsMonth), { adult: 4, malware: 2, csam: 1, none: 1 }, 'the month keeps all');
  // The month turns: nothing from last month.
  now.ms = Date.UTC(2027, 0, 1, 0, 0, 1);
  const jan = tally.read();
  t.same(Object.fromEntries(jan.requestsMonth), {}, 'a new month starts empty');
  t.equal(jan.monthStart, Date.UTC(2027, 0, 1));
});

function view(over: Partial<StatusView> = {}): StatusView {
  return {
    filteringActive: true,
    policyVersion: 'v1',
    lists: [{ id: 'l1', entries: 10, lastLoaded: 1000, interval: 100 }],
    canaries: [{ id: 'c1', category: 'adult', ok: true }],
    selftestLastRun: 1000,
    site: 'site-1',
    siteName: '',
    fingerprint: FP,
    blocks: null,
    now: 1_100_000,
    ...over,
  };
}

t.test('renderStatusPage: every value escaped, states worded, nothing blocked said so', async (t) => {
  const hostile = '<script>alert(1)</script>"\'&';
  const html = renderStatusPage(
    view({
      siteName: hostile,
      policyVersion: hostile,
      lists: [{ id: hostile, entries: 1, lastLoaded: 1000, interval: 40 }],
      canaries: [{ id: hostile, category: hostile, ok: false }],
      blocks: {
        monthStart: Date.UTC(2026, 1, 1),
        todayStart: Date.UTC(2026, 1, 28),
        requestsToday: new Map([[hostile, 2]]),
        requestsMonth: new Map([[hostile, 5]]),
        imagesToday: new Map(),
        imagesMonth: new Map([[hostile, 1]]),
        daily: new Map([[28, new Map([[hostile, 2]])], [3, new Map([[hostile, 3]])]]),
      },
    }),
    STATUS_EN,
  );
  t.notMatch(html, /<script/, 'no markup from values');
  t.match(html, '&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;');
  t.match(html, '<span class="fail">Out of date</span>', 'loaded 100 s ago with a 40 s interval: stale');
  t.match(html, /28: &lt;script&gt;.* 2<\/title>/, 'a column on the 28th of February');
  t.notMatch(html, /<text[^>]*>30<\/text>/, 'February has no 30th on the axis');
  t.match(html, '<h3>Images blocked</h3>');

  const fresh = renderStatusPage(view(), STATUS_EN);
  t.match(fresh, '<span class="pass">Up to date</span>', '100 s old with a 100 s interval: fresh');
  t.match(fresh, 'The audit journal could not be read just now.', 'no figures: said so, not zeros');
  t.match(renderStatusPage(view({ lists: [{ id: 'l', entries: 0, lastLoaded: 0, interval: 0 }] }), STATUS_EN), 'Never loaded');
  t.match(renderStatusPage(view({ filteringActive: false }), STATUS_SQ), /data-active="0">Jo aktiv</);
  t.match(renderStatusPage(view({ fingerprint: null }), STATUS_EN), 'No signing key yet.');
  const empty = { monthStart: 0, todayStart: 0, requestsToday: new Map(), requestsMonth: new Map(), imagesToday: new Map(), imagesMonth: new Map(), daily: new Map() };
  t.match(renderStatusPage(view({ blocks: empty }), STATUS_SQ), 'Asgjë nuk u bllokua këtë muaj.');
  t.match(renderStatusPage(view(), STATUS_EN), 'Last run 100 s ago.');
  t.match(renderStatusPage(view(), STATUS_SQ), 'Ekzekutuar së fundi 100 sek më parë.');
});

t.test('statusLanguage and formatAge', async (t) => {
  const q = (s: string) => new URLSearchParams(s);
  t.equal(statusLanguage(q(''), 'sq-AL,sq;q=0.9', ['en', 'sq']).lang, 'sq');
  t.equal(statusLanguage(q(''), 'de,fr;q=0.5', ['en', 'sq']).lang, 'en', 'nothing offered: the venue order');
  t.equal(statusLanguage(q(''), 'de', ['sq', 'en']).lang, 'sq', "the venue's first language when nothing matches");
  t.equal(statusLanguage(q(''), undefined, ['fr']).lang, 'en', 'a venue language without strings: English');
  t.equal(statusLanguage(q('lang=sq'), 'en', ['en']).lang, 'sq', '?lang= wins');
  t.equal(statusLanguage(q('lang=EN'), 'sq', ['en']).lang, 'sq', '?lang= must be exact');
  t.equal(statusLanguage(q(''), 'en;q=0.1,sq;q=0.8', ['en', 'sq']).lang, 'sq', 'by q');
  t.same(
    [0, 119, 120, 7199, 7200, 172_799, 172_800, -5].map((n) => formatAge(n, STATUS_EN)),
    ['0 s', '119 s', '2 min', '119 min', '2 h', '47 h', '2 d', '0 s'],
  );
  t.equal(formatAge(3 * 86400, STATUS_SQ), '3 ditë');
});
