/**
 * audit/report-merge.ts and its formats (issue 20, point 3), with reports signed here by generated
 * keys: the city's share is weighted by measured time (not a sum, not a plain mean), distinct sites
 * give bounds only, worst freshness is the worst venue's; adjacent periods of one appliance are no
 * double count (with --allow-different-periods) and its rows are told apart by date; a report that
 * names a key the auditor holds but is signed by another, or that embeds an attacker's key, is refused.
 */
import t from 'tap';
import { generateIdentity, type Identity } from '../../audit/identity.js';
import { mergeReports, type MergeInput } from '../../audit/report-merge.js';
import { mergeCsv, mergeText } from '../../audit/report-merge-format.js';
import { signJsonReport, type ReportBasis } from '../../audit/report-sign.js';

const DAY = 86_400_000;
const JAN = Date.UTC(2026, 0, 1);

interface Fig {
  blocked: Record<string, number>;
  active: number;
  measured: number;
  sites: number;
  freshness?: Record<string, number>;
}

/** A signed json report of `site` for [from, to) with the given figures. */
function report(id: Identity, site: string, from: number, to: number, f: Fig, over: Record<string, unknown> = {}): string {
  const total = Object.values(f.blocked).reduce((a, n) => a + n, 0);
  const basis: ReportBasis = {
    from,
    to,
    generatedAt: to,
    journal: '/var/lib/safespot/journal.db',
    categories: Object.keys(f.blocked),
    lists: ['l1'],
    session: { open: false, lastAlive: null },
    site: { id: site, name: null },
    generator: 'safespot 0.0.0-test',
  };
  const iso = (ms: number) => new Date(ms).toISOString();
  const body = {
    period: { from: iso(from), to: iso(to), measuredUntil: iso(from + f.measured * 1000), seconds: f.measured },
    generatedAt: iso(to),
    generator: basis.generator,
    appliance: { site: basis.site, key: id.verifierKey, fingerprint: id.fingerprint },
    blockedRequests: { total, byCategory: f.blocked },
    blockedImages: { total: 1, byCategory: { csam: 1 }, byMatch: { md5: 1 }, byCategoryAndMatch: [] },
    monitored: { requests: { total: 0, byCategory: {} }, images: { total: 0, byCategory: {} } },
    filtering: { activeFraction: f.active / f.measured, activeSeconds: f.active, inactiveSeconds: 0, downSeconds: f.measured - f.active, gaps: [], note: '' },
    selftests: { total: 1, passed: 1, failed: 0, byCategory: {}, failures: [] },
    journalKeeping: { aggregatedEvents: 0, aggregatedByReason: {}, aggregateRows: 0, lostEvents: 2, lostByReason: {}, note: '' },
    certification: {
      blockedRequestsByListener: { forward: total, http: 0, tls: 0, dns: 0 },
      blockedRequestsByListenerAndCategory: [],
      distinctBlockedSites: { total: f.sites, byCategory: {}, untaggedEvents: 0, note: '' },
      listHits: { l1: { requests: total, images: 1, total: total + 1 } },
      listWorstFreshnessSeconds: f.freshness ?? { l1: 60 },
      selftestsByCanary: {},
      adminActions: [],
    },
    checkpoint: null,
    ...over,
  };
  return signJsonReport(body, { from, to, checkpoint: null, basis }, id);
}

const lake = generateIdentity('safespot/lake');
const square = generateIdentity('safespot/square');
const feb = JAN + 31 * DAY;
const mar = feb + 28 * DAY;

t.test('the city row: sums, a weighted share, bounds for sites, the worst freshness', async (t) => {
  const inputs: MergeInput[] = [
    { file: 'lake.json', text: report(lake, 'lake', JAN, feb, { blocked: { adult: 3, csam: 1 }, active: 50, measured: 100, sites: 5, freshness: { l1: 60, l2: 900 } }) },
    { file: 'square.json', text: report(square, 'square', JAN, feb, { blocked: { adult: 2, malware: 4 }, active: 300, measured: 300, sites: 3, freshness: { l1: 7200 } }) },
  ];
  const r = mergeReports(inputs, [lake, square]);
  if (!r.ok) throw new Error(JSON.stringify(r.refusals));
  const c = r.merge.city;
  t.same(c.blockedRequests, { total: 10, byCategory: { adult: 5, csam: 1, malware: 4 } });
  t.same(c.blockedRequestsByListener, { forward: 10, http: 0, tls: 0, dns: 0 });
  t.same(c.listHits, { l1: { requests: 10, images: 2, total: 12 } });
  t.equal(c.filtering.activeFraction, 350 / 400, 'weighted by measured time: 0.875, not the mean 0.75 nor the sum 1.5');
  t.same(c.distinctBlockedSites, { total: null, atLeast: 5, atMost: 8, untaggedEvents: 0, note: c.distinctBlockedSites.note });
  t.same(c.listWorstFreshnessSeconds, { l1: { seconds: 7200, venue: 'square' }, l2: { seconds: 900, venue: 'lake' } });
  t.same(c.journal, { aggregatedEvents: 0, lostEvents: 4 });
  t.equal(r.merge.period.common, true);
  const text = mergeText(r.merge);
  t.match(text, /city \(weighted\)\s+87\.50%/);
  t.match(text, /\ncity\s+between 5 and 8/);
  t.match(text, /city \(worst\)\s+7200 \(square\)\s+900 \(lake\)/);
  const csv = mergeCsv(r.merge);
  t.match(csv, /\r\n\(city\),distinct_blocked_sites,total,,\r\n/, 'csv: the city total of sites left empty');
  t.match(csv, /\r\n\(city\),filtering,active_fraction,,0\.875\r\n/);
  t.match(csv, /^venue,section,key,subkey,value\r\n\(city\),merge,signed,,no\r\n\(city\),merge,note,,"Derived and unsigned/);
});

t.test('periods: one appliance in adjacent months is no double count; different periods need the flag', async (t) => {
  const jan = { file: 'lake-jan.json', text: report(lake, 'lake', JAN, feb, { blocked: { adult: 1 }, active: 10, measured: 10, sites: 1 }) };
  const febR = { file: 'lake-feb.json', text: report(lake, 'lake', feb, mar, { blocked: { adult: 2 }, active: 10, measured: 10, sites: 1 }) };
  const refused = mergeReports([jan, febR], [lake]);
  t.match(refused, { ok: false, refusals: [{ file: 'lake-feb.json', reason: /is not that of lake-jan\.json/ }] });
  const r = mergeReports([jan, febR], [lake], { allowDifferentPeriods: true });
  if (!r.ok) throw new Error(JSON.stringify(r.refusals));
  t.same(r.merge.period, { from: new Date(JAN).toISOString(), to: new Date(mar).toISOString(), common: false });
  t.equal(r.merge.city.blockedRequests.total, 3);
  t.match(mergeText(r.merge), /\nlake 2026-01-01\s+1\s/, 'one site twice: its rows carry their first day');
  t.match(mergeText(r.merge), /\nlake 2026-02-01\s+2\s/);
  const overlapping = { file: 'lake-mid.json', text: report(lake, 'lake', feb - DAY, mar, { blocked: { adult: 2 }, active: 10, measured: 10, sites: 1 }) };
  t.match(mergeReports([jan, overlapping], [lake], { allowDifferentPeriods: true }), { ok: false, refusals: [{ file: 'lake-mid.json', reason: /same appliance .* overlapping period/ }] }, 'one day of overlap is refused');
});

t.test('keys: the fingerprint picks the key, and only a key given verifies', async (t) => {
  const impostor = generateIdentity('safespot/lake');
  // Signed by the impostor, but naming the real lake key in its appliance claim.
  const claimsLake = report(impostor, 'lake', JAN, feb, { blocked: { adult: 1 }, active: 1, measured: 1, sites: 1 }, { appliance: { site: { id: 'lake', name: null }, key: lake.verifierKey, fingerprint: lake.fingerprint } });
  t.match(mergeReports([{ file: 'a.json', text: claimsLake }], [lake]), { ok: false, refusals: [{ file: 'a.json', reason: /does not verify with safespot\/lake .*no signature by safespot\/lake/ }] });
  // Signed by the impostor and embedding the impostor's own key: not a key the auditor gave.
  const own = report(impostor, 'lake', JAN, feb, { blocked: { adult: 1 }, active: 1, measured: 1, sites: 1 });
  t.match(mergeReports([{ file: 'b.json', text: own }], [lake, square]), { ok: false, refusals: [{ file: 'b.json', reason: new RegExp(`signed by a key not given: the report names fingerprint ${impostor.fingerprint}`) }] });
  t.ok(mergeReports([{ file: 'b.json', text: own }], [impostor]).ok, 'with that key given, it merges');
  const noCert = report(lake, 'lake', JAN, feb, { blocked: { adult: 1 }, active: 1, measured: 1, sites: 1 }, { certification: undefined });
  t.match(mergeReports([{ file: 'c.json', text: noCert }], [lake]), { ok: false, refusals: [{ file: 'c.json', reason: /no certification figures/ }] });
  t.match(mergeReports([{ file: 'd.csv', text: 'section,key,subkey,value\r\n' }], [lake]), { ok: false, refusals: [{ file: 'd.csv', reason: /a csv report: merge reads json reports/ }] });
  t.match(mergeReports([], [lake]), { ok: false, refusals: [] }, 'nothing to merge is no table');
});
