/**
 * The certification figures (audit/report-figures.ts) and the site of a subject (audit/site-tag.ts
 * siteHost), byte by byte and fuzzed (issue 21, point 5):
 * - random journal rows from a seeded PRNG (a failure names its seed and reproduces): written
 *   through a real journal, read back by loadFigures, computed by computeFigures; every figure
 *   must equal a straightforward recomputation here from the events the test generated (with no
 *   per-minute aggregation), and from the rows on disk read with plain SQL (with aggregation, where
 *   blocks lose their own rows and site tags); the CSV rows carry every figure; the HTML escapes
 *   every value from the journal;
 * - siteHost: every spelling of one site (case, trailing dot, port, scheme and path, IDN in Unicode
 *   or punycode, IPv6 in any notation, brackets) gives one host; distinct sites stay distinct; odd
 *   and random input never throws and gives a lower-case host of at most 253 characters or null.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openJournal, type JournalEvent, type JournalRow } from '../../audit/journal.js';
import { computeFigures, figuresCsvRows, figuresHtml, loadFigures, REPORT_LISTENERS, type CertificationFigures } from '../../audit/report-figures.js';
import { SITE_TAG_CACHE, siteHost, siteTagger } from '../../audit/site-tag.js';

/** mulberry32: a small seeded PRNG, so that a failing case is replayed by its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const FROM = Date.UTC(2026, 6, 1);
const TO = Date.UTC(2026, 6, 4);
const LISTS = ['demo-adult', 'mal', 'hotline', 'unused-list'];
const CATEGORIES = ['adult', 'malware', 'csam'];
const LISTENERS = ['forward', 'http', 'tls', 'dns', 'selftest'];
const CANARIES = ['adult-one', 'adult-two', 'mal-one'];
const NO_LIST = '(all lists)';

interface Gen {
  events: JournalEvent[];
  seed: number;
}

/** Random events of every kind the figures read, some outside [FROM, TO), with nasty details. */
function generate(seed: number): Gen {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const n = 20 + Math.floor(r() * 300);
  const tags = Array.from({ length: 1 + Math.floor(r() * 12) }, (_, i) => `site:${(seed * 977 + i).toString(16).padStart(16, '0').slice(-16)}`);
  const events: JournalEvent[] = [];
  // Times: mostly in the period, a few just outside its edges; in 8 busy minutes, so aggregation bites.
  const time = () => {
    const x = r();
    if (x < 0.05) return FROM - 1 - Math.floor(r() * 60_000);
    if (x < 0.1) return TO + Math.floor(r() * 60_000);
    if (x < 0.12) return x < 0.11 ? FROM : TO - 1;
    return FROM + Math.floor(r() * 8) * 60_000 + Math.floor(r() * 60_000);
  };
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.55) {
      const listener = pick(LISTENERS);
      const action = r() < 0.8 ? 'block' : 'monitor';
      const list = r() < 0.9 ? pick(LISTS.slice(0, 3)) : null;
      events.push({ kind: 'verdict', time: time(), listener, protocol: 'http', action, category: pick(CATEGORIES), list, detail: r() < 0.85 ? pick(tags) : null });
    } else if (k < 0.75) {
      events.push({ kind: 'image', time: time(), action: r() < 0.7 ? 'block' : 'monitor', category: pick(CATEGORIES), list: r() < 0.9 ? pick(LISTS.slice(0, 3)) : null, match: pick(['md5', 'sha1', 'sha256', 'pdq']) });
    } else if (k < 0.9) {
      events.push({ kind: 'selftest', time: time(), action: r() < 0.8 ? 'pass' : 'fail', category: pick(CATEGORIES), list: r() < 0.95 ? pick(CANARIES) : null, detail: 'probe <b>&"\'' });
    } else {
      const action = pick(['reload', 'list_swap', 'ca_change']);
      events.push({ kind: 'admin', time: time(), action, list: action === 'list_swap' ? pick(LISTS) : null, detail: `sha256:${'ab'.repeat(32)} <script>&amp;"'` });
    }
  }
  return { events, seed };
}

const iso = (ms: number) => new Date(ms).toISOString();
const inPeriod = (time: number) => time >= FROM && time < TO;

/** The figures, recomputed by hand from rows (time, kind, listener, action, category, list, detail, count). */
function recompute(rows: ReadonlyArray<Pick<JournalRow, 'time' | 'kind' | 'listener' | 'action' | 'category' | 'list' | 'detail' | 'count'>>, freshness: Record<string, number>) {
  const byListener: Record<string, number> = Object.fromEntries(REPORT_LISTENERS.map((l) => [l, 0]));
  const pairs = new Map<string, number>();
  const hits: Record<string, { requests: number; images: number; total: number }> = Object.fromEntries(LISTS.map((l) => [l, { requests: 0, images: 0, total: 0 }]));
  const sites = new Set<string>();
  const sitesBy = new Map<string, Set<string>>();
  let untagged = 0;
  const canaries: CertificationFigures['selftestsByCanary'] = {};
  const admin: CertificationFigures['adminActions'] = [];
  const ordered = [...rows].filter((x) => inPeriod(x.time)).sort((a, b) => a.time - b.time);
  for (const x of ordered) {
    const count = x.count ?? 1;
    const counted = x.listener !== 'selftest';
    if (x.kind === 'verdict' && x.action === 'block' && counted) {
      byListener[x.listener!] = (byListener[x.listener!] ?? 0) + count;
      const key = `${x.listener}\u0000${x.category ?? 'none'}`;
      pairs.set(key, (pairs.get(key) ?? 0) + count);
      if (x.detail?.startsWith('site:') && count === 1) {
        sites.add(x.detail);
        const c = x.category ?? 'none';
        if (!sitesBy.has(c)) sitesBy.set(c, new Set());
        sitesBy.get(c)!.add(x.detail);
      } else untagged += count;
    }
    if ((x.kind === 'verdict' && counted) || x.kind === 'image') {
      if (x.action === 'block' || x.action === 'monitor') {
        const h = (hits[x.list ?? 'none'] ??= { requests: 0, images: 0, total: 0 });
        if (x.kind === 'verdict') h.requests += count;
        else h.images += count;
        h.total += count;
      }
    }
    if (x.kind === 'selftest') {
      const c = (canaries[x.list ?? 'unnamed'] ??= { category: x.category, passed: 0, failed: 0, last: null });
      if (x.action === 'pass') c.passed++;
      else c.failed++;
      c.last = { time: iso(x.time), result: x.action === 'pass' ? 'pass' : 'fail' };
    }
    if (x.kind === 'admin') admin.push({ time: iso(x.time), action: x.action!, list: x.list, detail: x.detail });
  }
  return {
    blockedRequestsByListener: byListener,
    blockedRequestsByListenerAndCategory: [...pairs]
      .map(([k, count]) => ({ listener: k.split('\u0000')[0]!, category: k.split('\u0000')[1]!, count }))
      .sort((a, b) => (a.listener < b.listener ? -1 : a.listener > b.listener ? 1 : a.category < b.category ? -1 : a.category > b.category ? 1 : 0)),
    distinctBlockedSites: { total: sites.size, byCategory: Object.fromEntries([...sitesBy].map(([c, s]) => [c, s.size])), untaggedEvents: untagged },
    listHits: hits,
    listWorstFreshnessSeconds: freshness,
    selftestsByCanary: canaries,
    adminActions: admin,
  };
}

/** Write the events through a real journal; the figures as loadFigures + computeFigures give them. */
function throughJournal(dir: string, g: Gen, eventsPerMinute: number) {
  const path = join(dir, `j-${g.seed}-${eventsPerMinute}.db`);
  const j = openJournal({ path, retentionDays: 36500, recordUrls: false, recordClients: false, lifecycle: false, eventsPerMinute, now: () => TO + 120_000 });
  try {
    for (const e of g.events) j.record(e);
    j.flush();
    const listsOut = [...LISTS.slice(0, 2).map((list, i) => ({ list, largestGapSeconds: 60 * (i + 1) + g.seed })), { list: NO_LIST, largestGapSeconds: 5 }];
    const c = computeFigures(loadFigures(j, FROM, TO), { lists: LISTS, selftests: j.query(FROM, TO, ['selftest']), listsOut, noList: NO_LIST });
    const db = new Database(path, { readonly: true });
    const rows = db.prepare('SELECT time, kind, listener, action, category, list, detail, count FROM events').all() as JournalRow[];
    db.close();
    return { c, rows, freshness: Object.fromEntries(listsOut.filter((l) => l.list !== NO_LIST).map((l) => [l.list, l.largestGapSeconds])) };
  } finally {
    j.close();
  }
}

/** The figures without the constant note, for comparing. */
const bare = (c: CertificationFigures) => ({ ...c, distinctBlockedSites: { ...c.distinctBlockedSites, note: undefined } });
const want = (x: ReturnType<typeof recompute>) => ({ ...x, distinctBlockedSites: { ...x.distinctBlockedSites, note: undefined } });

t.test('figures of random journals equal a recomputation by hand (seeded)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-figures-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let aggregatedRuns = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const g = generate(seed);
    // No aggregation: the journal's rows are the events; recomputed from what the test generated.
    const plain = throughJournal(dir, g, 1_000_000);
    const fromEvents = recompute(g.events.map((e) => ({ time: e.time!, kind: e.kind, listener: e.listener ?? null, action: e.action ?? null, category: e.category ?? null, list: e.list ?? null, detail: e.detail ?? null, count: 1 })), plain.freshness);
    t.same(bare(plain.c), want(fromEvents), `seed ${seed}: the figures equal the generated events' (no aggregation)`);
    t.equal(plain.c.distinctBlockedSites.untaggedEvents, fromEvents.distinctBlockedSites.untaggedEvents);
    // With aggregation (3 own rows per minute and key): sums unchanged; distinct sites only from own rows.
    const agg = throughJournal(dir, g, 3);
    const fromRows = recompute(agg.rows, agg.freshness);
    t.same(bare(agg.c), want(fromRows), `seed ${seed}: with per-minute aggregates, the figures equal the rows on disk`);
    t.same(agg.c.blockedRequestsByListener, plain.c.blockedRequestsByListener, `seed ${seed}: aggregation loses no block`);
    t.same(agg.c.listHits, plain.c.listHits, `seed ${seed}: nor a hit`);
    const d = agg.c.distinctBlockedSites;
    t.ok(d.total <= plain.c.distinctBlockedSites.total && d.total + d.untaggedEvents >= plain.c.distinctBlockedSites.total, `seed ${seed}: the distinct count can only be low, by at most untaggedEvents`);
    if (d.untaggedEvents > plain.c.distinctBlockedSites.untaggedEvents) aggregatedRuns++;

    // CSV: every figure is a row, as the report's csv carries it.
    const csv = figuresCsvRows(plain.c);
    const value = (section: string, key: string, sub: string) => csv.find((x) => x[0] === section && x[1] === key && x[2] === sub)?.[3];
    for (const [l, n] of Object.entries(plain.c.blockedRequestsByListener)) t.equal(value('blocked_requests_by_listener', l, ''), n);
    for (const p of plain.c.blockedRequestsByListenerAndCategory) t.equal(value('blocked_requests_by_listener', p.listener, p.category), p.count);
    t.equal(value('distinct_blocked_sites', 'total', ''), plain.c.distinctBlockedSites.total);
    for (const [l, h] of Object.entries(plain.c.listHits)) t.same([value('list_hits', l, 'requests'), value('list_hits', l, 'images'), value('list_hits', l, 'total')], [h.requests, h.images, h.total]);
    for (const [id, v] of Object.entries(plain.c.selftestsByCanary)) t.same([value('selftest_canary', id, 'passed'), value('selftest_canary', id, 'failed')], [v.passed, v.failed]);
    t.equal(csv.filter((x) => x[0] === 'admin').length, plain.c.adminActions.length);

    // HTML: no value from the journal reaches the page unescaped.
    for (const lang of ['en', 'sq']) {
      const html = figuresHtml(plain.c, lang);
      t.notOk(/<script|<b>/.test(html), `seed ${seed} ${lang}: details are escaped`);
      t.equal(html.split('&lt;script&gt;').length - 1, plain.c.adminActions.length, `seed ${seed} ${lang}: every admin detail is on the page`);
    }
  }
  t.ok(aggregatedRuns > 10, `aggregation took the tags of some blocks in ${aggregatedRuns} of 60 runs (the case is exercised)`);
});

t.test('computeFigures of nothing: every listener and list at zero', async (t) => {
  const c = computeFigures(undefined, { lists: ['a', 'b'], selftests: [], listsOut: [{ list: NO_LIST, largestGapSeconds: 3 }], noList: NO_LIST });
  t.same(c.blockedRequestsByListener, { forward: 0, http: 0, tls: 0, dns: 0 });
  t.same(c.listHits, { a: { requests: 0, images: 0, total: 0 }, b: { requests: 0, images: 0, total: 0 } });
  t.same(c.listWorstFreshnessSeconds, {}, 'the row of events that name no list is not a list');
  t.same([c.distinctBlockedSites.total, c.distinctBlockedSites.untaggedEvents, c.adminActions, c.selftestsByCanary], [0, 0, [], {}]);
});

t.test('siteHost: one host for every spelling of a site', async (t) => {
  const same: Array<[string, string[]]> = [
    ['blocked.test', ['blocked.test', 'BLOCKED.TEST', 'Blocked.Test.', 'blocked.test:443', 'blocked.test.:8443', 'http://blocked.test/', 'https://BLOCKED.test.:443/x?y#z', 'http://user:pw@blocked.test:81/']],
    ['xn--bcher-kva.test', ['bücher.test', 'BÜCHER.TEST', 'bücher.test.', 'bücher.test:443', 'xn--bcher-kva.test', 'XN--BCHER-KVA.test', 'http://bücher.test/', 'https://BÜCHER.test:443/p']],
    ['2001:db8::1', ['2001:db8::1', '2001:DB8::1', '2001:db8:0:0:0:0:0:1', '[2001:db8::1]', '[2001:DB8:0::1]:443', 'http://[2001:db8::1]/', 'https://[2001:0db8::0001]:8443/x']],
    ['127.0.0.1', ['127.0.0.1', '127.0.0.1:80', 'http://127.0.0.1/', '0x7f.1', 'http://0x7f.0.0.1/']],
  ];
  const key = Buffer.alloc(32, 7);
  const tag = siteTagger(key);
  for (const [host, spellings] of same) {
    for (const s of spellings) t.equal(siteHost(s), host, `${JSON.stringify(s)} is ${host}`);
    t.equal(new Set(spellings.map(tag)).size, 1, `${host}: one tag for all its spellings`);
  }
  t.equal(new Set(same.map(([h]) => tag(h))).size, same.length, 'distinct sites, distinct tags');
  t.not(siteHost('blocked.test.example'), siteHost('blocked.test'));
  t.not(siteHost('a.blocked.test'), siteHost('blocked.test'), 'a subdomain is another site');
  for (const s of ['', ':', '[', '[]', '[]:443', '.', 'http://', '://', 'a'.repeat(254), `${'a'.repeat(250)}.test`]) t.equal(siteHost(s), null, `${JSON.stringify(s.slice(0, 20))}: no host`);
  t.equal(siteHost('a'.repeat(253)), 'a'.repeat(253), 'the longest name there is');
  // Not URL hosts: taken as they are (lower case), never read as userinfo or a path.
  t.equal(siteHost('a@b.test'), 'a@b.test');
  t.equal(siteHost('a/b'), 'a/b');
  t.equal(siteHost('My_Host.test'), 'my_host.test');
});

t.test('siteHost never throws on garbage (seeded)', async (t) => {
  const r = prng(21);
  const alphabet = ['a', 'Z', '.', ':', '[', ']', '/', '@', '%', '#', '?', ' ', '\u0000', 'ü', 'ß', 'İ', '\u200d', '\ud800', 'xn--', '://', '-', '0', 'f', '\\', '\u3002', '\uff0e'];
  let hosts = 0;
  for (let i = 0; i < 20_000; i++) {
    const len = Math.floor(r() * 40);
    let s = '';
    for (let k = 0; k < len; k++) s += r() < 0.5 ? alphabet[Math.floor(r() * alphabet.length)] : String.fromCharCode(Math.floor(r() * 0x3000));
    let h: string | null;
    try {
      h = siteHost(s);
    } catch (err) {
      t.fail(`siteHost(${JSON.stringify(s)}) threw ${String(err)}`);
      continue;
    }
    if (h === null) continue;
    hosts++;
    if (h.length === 0 || h.length > 253 || h !== h.toLowerCase() || (h.endsWith('.') && h !== '.')) {
      t.fail(`siteHost(${JSON.stringify(s)}) = ${JSON.stringify(h)}`);
    }
    // Idempotent where the result can be a host at all (no character a URL reads as more than one):
    // the host of a host is itself, so a tag made of it again is the same tag.
    if (!/[/?#@\\%\s[\]]/.test(h) && siteHost(h) !== h) t.fail(`siteHost(siteHost(${JSON.stringify(s)})) = ${JSON.stringify(siteHost(h))}, not ${JSON.stringify(h)}`);
  }
  t.ok(hosts > 1_000, `${hosts} of 20,000 random subjects named a host; none threw, all lower case, at most 253 characters, idempotent`);
});

t.test('siteTagger keeps recent tags: the same tag as a fresh tagger, for more subjects than it keeps and for long ones', async (t) => {
  const key = Buffer.alloc(32, 9);
  const kept = siteTagger(key);
  const r = prng(23);
  const subjects = Array.from({ length: SITE_TAG_CACHE.entries * 2 + 17 }, (_, i) => (i % 3 === 0 ? `http://s${i}.blocked.test/p?q=${i}` : i % 3 === 1 ? `S${i}.Blocked.Test:443` : `s${i}.blocked.test`));
  subjects.push(`http://long.blocked.test/${'x'.repeat(SITE_TAG_CACHE.subjectChars)}`, '', '[]');
  let checked = 0;
  // Each subject asked several times in a random order, past the bound (the map dropped whole), each
  // answer compared with a tagger that never saw a subject before.
  for (let i = 0; i < subjects.length * 3; i++) {
    const s = subjects[Math.floor(r() * subjects.length)]!;
    const want = siteTagger(key)(s);
    if (kept(s) !== want) {
      t.fail(`${s}: ${kept(s)} against ${want}`);
      return;
    }
    checked++;
  }
  t.equal(checked, subjects.length * 3, 'every answer equals a fresh tagger\'s');
  t.equal(kept('s1.blocked.test'), kept('http://S1.blocked.test./'), 'spellings still one tag through the cache');
  t.equal(kept(''), null, 'no host stays null');
});
