/**
 * One city table from signed per-venue reports (issue 20, point 3): `safespot audit merge REPORT…`.
 * Pure but for node:crypto (through the signature checks): report texts and public keys in, a
 * merged table or the list of refusals out; no fs, no clock. audit/report-merge-format.ts prints it.
 *
 * What is refused (each with the file and the reason; nothing is merged when anything is refused):
 * - a file that is not a json report (csv and html are signed by a detached .sig and carry their
 *   figures as text: make the venue's report with `--format json`), or that does not parse;
 * - an unsigned report, or one whose key is not among those given. **A key is matched to a report by
 *   the fingerprint the report names** (`appliance.fingerprint`, the SHA-256 of the Ed25519 public
 *   key): the given key with that fingerprint verifies the signature. The key embedded in the report
 *   (`appliance.key`) is never used to verify: anyone can embed their own key, so only a key the
 *   auditor holds (from the venue at certification, `safespot audit key`) counts;
 * - a report whose signature, content digest, covering checkpoint note or appliance claim does not
 *   verify against that key (audit/report-verify.ts `verifyReportFile`, no journal needed);
 * - a report without the certification figures (made by a safespot older than them);
 * - two reports of one appliance (one key) whose periods overlap: the same journal rows twice;
 * - two reports of one site id signed by different keys whose periods overlap: either two boxes
 *   share a site id (give each its own `site.id`) or the venue's state.dir was lost and a new key
 *   signed the same journal again; the reports cannot tell which, so nothing is summed;
 * - reports of different periods, unless `allowDifferentPeriods`: an auditor asks for one period
 *   for the city ("June to December"), and a sum of a March report and a June report is no figure
 *   of any period. With it, each venue's period is shown and the city's span is marked not common.
 *
 * What is summed and what is not: counts (blocked requests by category and by listener, blocked
 * images by category and match, monitored, hits per list, self-tests, journal keeping) are sums.
 * The filtering-active share is not: the city's is the venues' active seconds over their measured
 * seconds (a mean weighted by measured time). Distinct blocked sites are not: each venue tags hosts
 * with its own secret key, so one site blocked at two venues has two unrelated tags and no union can
 * be formed; the city figure lies between the largest venue's and the sum, and only those bounds are
 * shown. A list's worst freshness is the worst (largest) of the venues', not a sum.
 *
 * The merged table is derived and unsigned: each input report remains the evidence.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import type { PublicIdentity } from './identity.js';
import type { Report } from './report.js';
import { detectFormat } from './report-sign.js';
import { verifyReportFile } from './report-verify.js';

export const MERGE_KIND = 'safespot-city-merge/1';

export interface MergeInput {
  /** The file name as given (every refusal names it). */
  file: string;
  text: string;
}

export interface Refusal {
  file: string;
  reason: string;
}

type Counts = { total: number; byCategory: Record<string, number> };

/** The figures of one report that the city table shows. */
export interface VenueFigures {
  blockedRequests: Counts;
  blockedRequestsByListener: Record<string, number>;
  blockedImages: Counts & { byMatch: Record<string, number> };
  monitored: { requests: number; images: number };
  listHits: Record<string, { requests: number; images: number; total: number }>;
  filtering: { activeFraction: number | null; activeSeconds: number; inactiveSeconds: number; downSeconds: number; measuredSeconds: number };
  distinctBlockedSites: { total: number; untaggedEvents: number };
  listWorstFreshnessSeconds: Record<string, number>;
  selftests: { passed: number; failed: number };
  journal: { aggregatedEvents: number; lostEvents: number };
}

export interface MergedVenue {
  file: string;
  site: { id: string; name: string | null };
  key: { name: string; fingerprint: string };
  period: { from: string; to: string; measuredUntil: string };
  generatedAt: string;
  generator: string | null;
  /** The signed checkpoint of the venue's journal that covers the report. */
  checkpoint: { size: number; root: string; time: string } | null;
  /** `sha256:` of the signed content: which exact report this row is. */
  content: string;
  figures: VenueFigures;
}

export interface CityFigures extends Omit<VenueFigures, 'distinctBlockedSites' | 'listWorstFreshnessSeconds'> {
  venues: number;
  /** Not summable (see the header): only the bounds. */
  distinctBlockedSites: { total: null; atLeast: number; atMost: number; untaggedEvents: number; note: string };
  /** The worst of the venues, with the venue. */
  listWorstFreshnessSeconds: Record<string, { seconds: number; venue: string }>;
}

export interface CityMerge {
  kind: typeof MERGE_KIND;
  signed: false;
  note: string;
  period: { from: string; to: string; common: boolean };
  venues: MergedVenue[];
  city: CityFigures;
  /** How the figures that are not sums were combined, in words. */
  notSummed: string[];
}

export type MergeResult = { ok: true; merge: CityMerge } | { ok: false; refusals: Refusal[] };

export const MERGE_NOTE =
  'Derived and unsigned: this table is computed from the signed reports listed, and each of them remains the evidence ' +
  '(check one with `safespot audit verify --key KEYFILE REPORT [--journal FILE]`).';

export const SITES_NOTE =
  'Distinct blocked sites are not summed: each venue tags hosts with its own secret key, so a site blocked at two venues ' +
  'has two unrelated tags. The city figure is at least the largest venue\'s and at most their sum (plus untagged events).';

export const NOT_SUMMED = [
  'filtering active: the city share is the venues\' active seconds over their measured seconds (weighted by measured time), not a sum',
  SITES_NOTE,
  'list worst freshness: the worst (largest) of the venues, not a sum',
];

const iso = (ms: number): string => new Date(ms).toISOString();

const isCounts = (v: unknown): v is Record<string, number> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((n) => typeof n === 'number' && Number.isFinite(n));
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The figures of a verified report, or the first field it lacks. */
function figuresOf(r: Report): VenueFigures | string {
  const c = r.certification;
  if (!c) return 'the report has no certification figures (made by a safespot older than them): make it again';
  const need: Array<[string, boolean]> = [
    ['blockedRequests', isNum(r.blockedRequests?.total) && isCounts(r.blockedRequests?.byCategory)],
    ['blockedImages', isNum(r.blockedImages?.total) && isCounts(r.blockedImages?.byCategory) && isCounts(r.blockedImages?.byMatch)],
    ['monitored', isNum(r.monitored?.requests?.total) && isNum(r.monitored?.images?.total)],
    ['filtering', isNum(r.filtering?.activeSeconds) && isNum(r.filtering?.inactiveSeconds) && isNum(r.filtering?.downSeconds)],
    ['period.seconds', isNum(r.period?.seconds)],
    ['selftests', isNum(r.selftests?.passed) && isNum(r.selftests?.failed)],
    ['journalKeeping', isNum(r.journalKeeping?.lostEvents) && isNum(r.journalKeeping?.aggregatedEvents)],
    ['certification.blockedRequestsByListener', isCounts(c.blockedRequestsByListener)],
    ['certification.distinctBlockedSites', isNum(c.distinctBlockedSites?.total) && isNum(c.distinctBlockedSites?.untaggedEvents)],
    ['certification.listHits', !!c.listHits && Object.values(c.listHits).every((h) => isNum(h?.requests) && isNum(h?.images) && isNum(h?.total))],
    ['certification.listWorstFreshnessSeconds', isCounts(c.listWorstFreshnessSeconds)],
  ];
  const missing = need.find(([, ok]) => !ok);
  if (missing) return `the report's "${missing[0]}" is missing or malformed (made by ${r.generator ?? 'an unknown safespot'})`;
  return {
    blockedRequests: { total: r.blockedRequests.total, byCategory: { ...r.blockedRequests.byCategory } },
    blockedRequestsByListener: { ...c.blockedRequestsByListener },
    blockedImages: { total: r.blockedImages.total, byCategory: { ...r.blockedImages.byCategory }, byMatch: { ...r.blockedImages.byMatch } },
    monitored: { requests: r.monitored.requests.total, images: r.monitored.images.total },
    listHits: Object.fromEntries(Object.entries(c.listHits).map(([k, h]) => [k, { requests: h.requests, images: h.images, total: h.total }])),
    filtering: {
      activeFraction: r.filtering.activeFraction,
      activeSeconds: r.filtering.activeSeconds,
      inactiveSeconds: r.filtering.inactiveSeconds,
      downSeconds: r.filtering.downSeconds,
      measuredSeconds: r.period.seconds,
    },
    distinctBlockedSites: { total: c.distinctBlockedSites.total, untaggedEvents: c.distinctBlockedSites.untaggedEvents },
    listWorstFreshnessSeconds: { ...c.listWorstFreshnessSeconds },
    selftests: { passed: r.selftests.passed, failed: r.selftests.failed },
    journal: { aggregatedEvents: r.journalKeeping.aggregatedEvents, lostEvents: r.journalKeeping.lostEvents },
  };
}

/** One file: the verified row, or why it is refused. */
function verifyOne(input: MergeInput, keys: ReadonlyMap<string, PublicIdentity>): MergedVenue | string {
  const format = detectFormat(input.text);
  if (format === 'csv' || format === 'html') return `a ${format} report: merge reads json reports (make each venue's with --format json)`;
  let json: unknown;
  try {
    json = JSON.parse(input.text);
  } catch {
    return 'not a safespot report (not JSON)';
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json) || !('blockedRequests' in json) || !('period' in json)) {
    return 'not a safespot report (a JSON value without a period and blocked requests)';
  }
  const claimed = json as Partial<Report> & { signature?: unknown };
  if (claimed.signature === undefined || claimed.signature === null || !claimed.appliance) {
    return 'the report is not signed (a report made from --journal alone, or before the appliance had its key)';
  }
  const fingerprint = String(claimed.appliance.fingerprint);
  const key = keys.get(fingerprint);
  if (!key) {
    return `signed by a key not given: the report names fingerprint ${fingerprint} (site "${String(claimed.appliance.site?.id)}"); give that venue's key with --key or --keys`;
  }
  const v = verifyReportFile({ text: input.text, format: 'json' }, key);
  if (!v.ok) return `the signature does not verify with ${key.name} (${key.fingerprint}): ${v.failure}`;
  const r = json as Report;
  const figures = figuresOf(r);
  if (typeof figures === 'string') return figures;
  const body = v.body!;
  return {
    file: input.file,
    site: { id: body.basis.site.id, name: body.basis.site.name },
    key: { name: key.name, fingerprint: key.fingerprint },
    period: { from: iso(body.from), to: iso(body.to), measuredUntil: r.period.measuredUntil },
    generatedAt: r.generatedAt,
    generator: body.basis.generator,
    checkpoint: body.checkpoint ? { size: body.checkpoint.size, root: body.checkpoint.root.toString('base64'), time: iso(body.checkpoint.time) } : null,
    content: body.content,
    figures,
  };
}

const overlaps = (a: MergedVenue, b: MergedVenue): boolean =>
  Date.parse(a.period.from) < Date.parse(b.period.to) && Date.parse(b.period.from) < Date.parse(a.period.to);

const periodText = (v: MergedVenue): string => `${v.period.from} to ${v.period.to}`;

/** Refusals across files: double counting, and periods that differ. */
function crossChecks(rows: readonly MergedVenue[], allowDifferentPeriods: boolean): Refusal[] {
  const out: Refusal[] = [];
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < i; j++) {
      const [a, b] = [rows[j]!, rows[i]!];
      if (!overlaps(a, b)) continue;
      if (a.key.fingerprint === b.key.fingerprint) {
        out.push({ file: b.file, reason: `the same appliance (${a.key.name}, ${a.key.fingerprint}) as ${a.file} over an overlapping period (${periodText(b)}; ${periodText(a)}): its blocks would be counted twice` });
      } else if (a.site.id === b.site.id) {
        out.push({
          file: b.file,
          reason:
            `the site "${a.site.id}" of ${a.file} over an overlapping period, signed by another key (${b.key.fingerprint}, ${a.key.fingerprint}): ` +
            'two boxes sharing a site id (give each its own site.id) or one journal signed again by a new key after state.dir was lost; the merge cannot tell which',
        });
      }
    }
  }
  const first = rows[0];
  if (!allowDifferentPeriods && first && rows.some((r) => r.period.from !== first.period.from || r.period.to !== first.period.to)) {
    for (const r of rows) {
      if (r.period.from === first.period.from && r.period.to === first.period.to) continue;
      out.push({ file: r.file, reason: `its period (${periodText(r)}) is not that of ${first.file} (${periodText(first)}): a city table is of one period (--allow-different-periods sums them, each venue's period shown)` });
    }
  }
  return out;
}

function addInto(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

/** The city row. Pure. */
export function cityOf(rows: readonly MergedVenue[]): CityFigures {
  const c: CityFigures = {
    venues: rows.length,
    blockedRequests: { total: 0, byCategory: {} },
    blockedRequestsByListener: {},
    blockedImages: { total: 0, byCategory: {}, byMatch: {} },
    monitored: { requests: 0, images: 0 },
    listHits: {},
    filtering: { activeFraction: null, activeSeconds: 0, inactiveSeconds: 0, downSeconds: 0, measuredSeconds: 0 },
    distinctBlockedSites: { total: null, atLeast: 0, atMost: 0, untaggedEvents: 0, note: SITES_NOTE },
    listWorstFreshnessSeconds: {},
    selftests: { passed: 0, failed: 0 },
    journal: { aggregatedEvents: 0, lostEvents: 0 },
  };
  for (const v of rows) {
    const f = v.figures;
    c.blockedRequests.total += f.blockedRequests.total;
    addInto(c.blockedRequests.byCategory, f.blockedRequests.byCategory);
    addInto(c.blockedRequestsByListener, f.blockedRequestsByListener);
    c.blockedImages.total += f.blockedImages.total;
    addInto(c.blockedImages.byCategory, f.blockedImages.byCategory);
    addInto(c.blockedImages.byMatch, f.blockedImages.byMatch);
    c.monitored.requests += f.monitored.requests;
    c.monitored.images += f.monitored.images;
    for (const [id, h] of Object.entries(f.listHits)) {
      const t = (c.listHits[id] ??= { requests: 0, images: 0, total: 0 });
      t.requests += h.requests;
      t.images += h.images;
      t.total += h.total;
    }
    c.filtering.activeSeconds += f.filtering.activeSeconds;
    c.filtering.inactiveSeconds += f.filtering.inactiveSeconds;
    c.filtering.downSeconds += f.filtering.downSeconds;
    c.filtering.measuredSeconds += f.filtering.measuredSeconds;
    const s = c.distinctBlockedSites;
    s.atLeast = Math.max(s.atLeast, f.distinctBlockedSites.total);
    s.atMost += f.distinctBlockedSites.total;
    s.untaggedEvents += f.distinctBlockedSites.untaggedEvents;
    for (const [id, seconds] of Object.entries(f.listWorstFreshnessSeconds)) {
      const w = c.listWorstFreshnessSeconds[id];
      if (!w || seconds > w.seconds) c.listWorstFreshnessSeconds[id] = { seconds, venue: v.site.id };
    }
    c.selftests.passed += f.selftests.passed;
    c.selftests.failed += f.selftests.failed;
    c.journal.aggregatedEvents += f.journal.aggregatedEvents;
    c.journal.lostEvents += f.journal.lostEvents;
  }
  const m = c.filtering.measuredSeconds;
  c.filtering.activeFraction = m > 0 ? c.filtering.activeSeconds / m : null;
  return c;
}

/**
 * Verify every report against the keys and merge them; every refusal is listed (per file first,
 * then across files among those that verified). Order of rows: as given.
 */
export function mergeReports(inputs: readonly MergeInput[], keys: readonly PublicIdentity[], opts: { allowDifferentPeriods?: boolean } = {}): MergeResult {
  const byFingerprint = new Map(keys.map((k) => [k.fingerprint, k]));
  const refusals: Refusal[] = [];
  const rows: MergedVenue[] = [];
  for (const input of inputs) {
    const r = verifyOne(input, byFingerprint);
    if (typeof r === 'string') refusals.push({ file: input.file, reason: r });
    else rows.push(r);
  }
  refusals.push(...crossChecks(rows, opts.allowDifferentPeriods ?? false));
  if (refusals.length > 0 || rows.length === 0) return { ok: false, refusals };
  const from = Math.min(...rows.map((r) => Date.parse(r.period.from)));
  const to = Math.max(...rows.map((r) => Date.parse(r.period.to)));
  const common = rows.every((r) => r.period.from === rows[0]!.period.from && r.period.to === rows[0]!.period.to);
  return {
    ok: true,
    merge: { kind: MERGE_KIND, signed: false, note: MERGE_NOTE, period: { from: iso(from), to: iso(to), common }, venues: rows, city: cityOf(rows), notSummed: [...NOT_SUMMED] },
  };
}
