/**
 * The city table of `safespot audit merge` (audit/report-merge.ts) as text (one table per figure,
 * a row per venue and the city's last), JSON, and CSV in the city report's long format
 * (`venue,section,key,subkey,value`, `(city)` for the city, as audit/prom-report-format.ts).
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { CITY } from './prom-report-format.js';
import type { CityFigures, CityMerge, MergedVenue, VenueFigures } from './report-merge.js';
import { csvCell } from './report.js';

export function mergeJson(m: CityMerge): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/** Row labels: the site id, and the period's first day when one site has several rows. */
function labels(m: CityMerge): string[] {
  const ids = m.venues.map((v) => v.site.id);
  return m.venues.map((v, i) => (ids.indexOf(v.site.id) !== ids.lastIndexOf(v.site.id) ? `${ids[i]} ${v.period.from.slice(0, 10)}` : ids[i]!));
}

const share = (f: number | null): string => (f === null ? '-' : `${(f * 100).toFixed(2)}%`);

/** Seconds in the text table: whole (the json and csv keep the report's milliseconds). */
const secs = (n: number): number => Math.round(n);

const NUMERIC = /^(-|-?\d+(\.\d+)?%?)$/;

/** A plain text table: columns of figures right-aligned, of words left-aligned. */
function table(head: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string[] {
  const cells = [head, ...rows].map((r) => r.map(String));
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const right = head.map((_, i) => i > 0 && rows.every((r) => NUMERIC.test(String(r[i] ?? '-'))));
  return cells.map((r) => r.map((c, i) => (right[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd());
}

const keysOf = (maps: ReadonlyArray<Readonly<Record<string, unknown>>>): string[] => [...new Set(maps.flatMap((m) => Object.keys(m)))].sort();

type Fig = VenueFigures | CityFigures;

/** One table: a column per key of `pick` over every row, the city last. */
function section(title: string, names: readonly string[], figs: readonly Fig[], pick: (f: Fig) => Record<string, number>, total?: (f: Fig) => number): string[] {
  const cols = keysOf(figs.map(pick));
  const head = ['', ...(total ? ['total'] : []), ...cols];
  const rows = figs.map((f, i) => [names[i]!, ...(total ? [total(f)] : []), ...cols.map((c) => pick(f)[c] ?? 0)]);
  return [title, ...table(head, rows), ''];
}

export function mergeText(m: CityMerge): string {
  const names = [...labels(m), 'city (sum)'];
  const figs: Fig[] = [...m.venues.map((v) => v.figures), m.city];
  const out: string[] = [
    `safespot audit merge: ${m.venues.length} signed report(s), ${m.period.common ? 'period' : 'periods from'} ${m.period.from} to ${m.period.to}${m.period.common ? '' : ' (NOT one common period: each venue\'s is below)'}`,
    m.note,
    '',
    'Reports (each verified against the key with its fingerprint)',
    ...table(
      ['', 'name', 'key', ...(m.period.common ? [] : ['from', 'to']), 'measured until', 'file'],
      m.venues.map((v, i) => [names[i]!, v.site.name ?? '-', v.key.fingerprint.slice(0, 23), ...(m.period.common ? [] : [v.period.from, v.period.to]), v.period.measuredUntil, v.file]),
    ),
    '',
    ...section('Blocked requests by category', names, figs, (f) => f.blockedRequests.byCategory, (f) => f.blockedRequests.total),
    ...section('Blocked requests by listener', names, figs, (f) => f.blockedRequestsByListener),
    ...section('Blocked images by category', names, figs, (f) => f.blockedImages.byCategory, (f) => f.blockedImages.total),
    ...section('Hits per list (requests and DNS names + images)', names, figs, (f) => Object.fromEntries(Object.entries(f.listHits).map(([k, h]) => [k, h.total]))),
    ...section('Monitored (would-block)', names, figs, (f) => ({ requests: f.monitored.requests, images: f.monitored.images })),
    ...section('Self-tests', names, figs, (f) => ({ passed: f.selftests.passed, failed: f.selftests.failed })),
    ...section('Journal keeping', names, figs, (f) => ({ aggregated: f.journal.aggregatedEvents, lost: f.journal.lostEvents })),
    'Filtering active (city: weighted by measured time, not a sum)',
    ...table(
      ['', 'active share', 'active s', 'inactive s', 'down s', 'measured s'],
      figs.map((f, i) => [i === m.venues.length ? 'city (weighted)' : names[i]!, share(f.filtering.activeFraction), secs(f.filtering.activeSeconds), secs(f.filtering.inactiveSeconds), secs(f.filtering.downSeconds), secs(f.filtering.measuredSeconds)]),
    ),
    '',
    'Distinct blocked sites (per venue; the city figure is NOT their sum)',
    ...table(
      ['', 'total', 'untagged events'],
      [
        ...m.venues.map((v, i) => [names[i]!, v.figures.distinctBlockedSites.total, v.figures.distinctBlockedSites.untaggedEvents]),
        ['city', `between ${m.city.distinctBlockedSites.atLeast} and ${m.city.distinctBlockedSites.atMost}`, m.city.distinctBlockedSites.untaggedEvents],
      ],
    ),
    m.city.distinctBlockedSites.note,
    '',
    'List worst freshness, seconds (city: the worst venue, not a sum)',
    ...table(
      ['', ...keysOf(figs.map((f) => f.listWorstFreshnessSeconds))],
      figs.map((f, i) => {
        const cols = keysOf(figs.map((x) => x.listWorstFreshnessSeconds));
        const w = f.listWorstFreshnessSeconds as Record<string, number | { seconds: number; venue: string }>;
        return [i === m.venues.length ? 'city (worst)' : names[i]!, ...cols.map((c) => (w[c] === undefined ? '-' : typeof w[c] === 'number' ? secs(w[c]) : `${secs(w[c].seconds)} (${w[c].venue})`))];
      }),
    ),
    '',
  ];
  return `${out.join('\n')}`;
}

type Row = [string, string, string, string, string | number | null];

function figureRows(venue: string, f: Fig): Row[] {
  const rows: Row[] = [];
  const by = (section: string, key: string, m: Readonly<Record<string, number>>) => {
    for (const [k, n] of Object.entries(m).sort(([a], [b]) => a.localeCompare(b))) rows.push([venue, section, key, k, n]);
  };
  rows.push([venue, 'blocked_requests', 'total', '', f.blockedRequests.total]);
  by('blocked_requests', 'category', f.blockedRequests.byCategory);
  by('blocked_requests', 'listener', f.blockedRequestsByListener);
  rows.push([venue, 'blocked_images', 'total', '', f.blockedImages.total]);
  by('blocked_images', 'category', f.blockedImages.byCategory);
  by('blocked_images', 'match', f.blockedImages.byMatch);
  rows.push([venue, 'monitored', 'requests', '', f.monitored.requests], [venue, 'monitored', 'images', '', f.monitored.images]);
  for (const [k, h] of Object.entries(f.listHits).sort(([a], [b]) => a.localeCompare(b))) {
    rows.push([venue, 'list_hits', k, 'requests', h.requests], [venue, 'list_hits', k, 'images', h.images], [venue, 'list_hits', k, 'total', h.total]);
  }
  const fl = f.filtering;
  rows.push([venue, 'filtering', 'active_fraction', '', fl.activeFraction], [venue, 'filtering', 'active_seconds', '', fl.activeSeconds]);
  rows.push([venue, 'filtering', 'inactive_seconds', '', fl.inactiveSeconds], [venue, 'filtering', 'down_seconds', '', fl.downSeconds]);
  rows.push([venue, 'filtering', 'measured_seconds', '', fl.measuredSeconds]);
  rows.push([venue, 'selftests', 'passed', '', f.selftests.passed], [venue, 'selftests', 'failed', '', f.selftests.failed]);
  rows.push([venue, 'journal', 'aggregated_events', '', f.journal.aggregatedEvents], [venue, 'journal', 'lost_events', '', f.journal.lostEvents]);
  return rows;
}

function venueRows(name: string, v: MergedVenue): Row[] {
  const f = v.figures;
  const rows: Row[] = [
    [name, 'report', 'file', '', v.file],
    [name, 'report', 'site_name', '', v.site.name],
    [name, 'report', 'fingerprint', '', v.key.fingerprint],
    [name, 'report', 'content', '', v.content],
    [name, 'period', 'from', '', v.period.from],
    [name, 'period', 'to', '', v.period.to],
    [name, 'period', 'measured_until', '', v.period.measuredUntil],
    ...figureRows(name, f),
    [name, 'distinct_blocked_sites', 'total', '', f.distinctBlockedSites.total],
    [name, 'distinct_blocked_sites', 'untagged_events', '', f.distinctBlockedSites.untaggedEvents],
  ];
  for (const [k, s] of Object.entries(f.listWorstFreshnessSeconds).sort(([a], [b]) => a.localeCompare(b))) rows.push([name, 'list_worst_freshness_seconds', k, '', s]);
  return rows;
}

/** venue,section,key,subkey,value (RFC 4180; cells defused for spreadsheets as in the journal report). */
export function mergeCsv(m: CityMerge): string {
  const names = labels(m);
  const c = m.city;
  const rows: Row[] = [
    [CITY, 'merge', 'signed', '', 'no'],
    [CITY, 'merge', 'note', '', m.note],
    [CITY, 'period', 'from', '', m.period.from],
    [CITY, 'period', 'to', '', m.period.to],
    [CITY, 'period', 'common', '', m.period.common ? 'yes' : 'no'],
    ...m.venues.flatMap((v, i) => venueRows(names[i]!, v)),
    [CITY, 'venues', 'total', '', c.venues],
    ...figureRows(CITY, c),
    // Not a sum: the bounds, and the total left empty on purpose.
    [CITY, 'distinct_blocked_sites', 'total', '', null],
    [CITY, 'distinct_blocked_sites', 'at_least', '', c.distinctBlockedSites.atLeast],
    [CITY, 'distinct_blocked_sites', 'at_most', '', c.distinctBlockedSites.atMost],
    [CITY, 'distinct_blocked_sites', 'untagged_events', '', c.distinctBlockedSites.untaggedEvents],
  ];
  for (const [k, w] of Object.entries(c.listWorstFreshnessSeconds).sort(([a], [b]) => a.localeCompare(b))) rows.push([CITY, 'list_worst_freshness_seconds', k, w.venue, w.seconds]);
  const lines = [['venue', 'section', 'key', 'subkey', 'value'], ...rows].map((row) => row.map((x) => csvCell(x)).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
