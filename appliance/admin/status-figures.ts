/**
 * The figures of the venue's status page (status-page.ts): what the metrics exposition says (the
 * same text /metrics serves, so a cluster's primary reads its merged view), and the blocked requests
 * and images of this UTC month and day from the journal's grouped counts (time and category only:
 * no URL or client column is ever read), through a cache: today's counts at most every
 * TODAY_TTL_MS, the month's earlier days at most every PAST_TTL_MS or when the UTC day turns.
 * Each query is bounded by time on the journal's (kind, time) index.
 */
import type { CountRow, Journal } from '../../audit/journal.js';

export const TODAY_TTL_MS = 15_000;
export const PAST_TTL_MS = 10 * 60_000;

// --- what the metrics say ---------------------------------------------------------------------------

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE_LINE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+\S+)?$/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/y;
const WANTED = new Set([
  'safespot_filtering_active',
  'safespot_policy_entries',
  'safespot_policy_last_refresh_timestamp_seconds',
  'safespot_policy_refresh_interval_seconds',
  'safespot_policy_info',
  'safespot_selftest_canary_success',
  'safespot_selftest_last_run_timestamp_seconds',
  'safespot_appliance_info',
]);

const unescapeLabel = (v: string): string => v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));

/**
 * The samples of the metrics this page shows, from Prometheus text exposition (format 0.0.4). Lines
 * of other metrics, comments and lines that do not parse are skipped, never an error.
 */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m || !WANTED.has(m[1]!)) continue;
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    LABEL.lastIndex = 0;
    let ok = true;
    while (LABEL.lastIndex < body.length) {
      const l = LABEL.exec(body);
      if (!l) {
        ok = false;
        break;
      }
      labels[l[1]!] = unescapeLabel(l[2]!);
    }
    const value = Number(m[3]);
    if (ok && !Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export interface ListStatus {
  readonly id: string;
  readonly entries: number | null;
  /** Unix s of the last successful load; null or 0 when never. */
  readonly lastLoaded: number | null;
  /** Seconds; 0 = reloaded only on demand. */
  readonly interval: number | null;
}

/** What the metrics say, for the page. */
export interface MetricFigures {
  readonly filteringActive: boolean | null;
  readonly policyVersion: string | null;
  readonly lists: readonly ListStatus[];
  readonly canaries: readonly { id: string; category: string; ok: boolean }[];
  /** Unix s. */
  readonly selftestLastRun: number | null;
  readonly fingerprint: string | null;
  /** site.id as the scrape names it. */
  readonly site: string | null;
}

/** The metric part of the view (the `other` placeholder series of closed label sets left out). */
export function viewFromSamples(samples: readonly Sample[]): MetricFigures {
  const lists = new Map<string, { entries: number | null; lastLoaded: number | null; interval: number | null }>();
  const list = (id: string) => {
    let l = lists.get(id);
    if (!l) lists.set(id, (l = { entries: null, lastLoaded: null, interval: null }));
    return l;
  };
  let filteringActive: boolean | null = null;
  let policyVersion: string | null = null;
  let selftestLastRun: number | null = null;
  let fingerprint: string | null = null;
  let site: string | null = null;
  const canaries: { id: string; category: string; ok: boolean }[] = [];
  for (const s of samples) {
    const id = s.labels.list;
    switch (s.name) {
      case 'safespot_filtering_active':
        filteringActive = s.value === 1;
        break;
      case 'safespot_policy_entries':
        if (id && id !== 'other') list(id).entries = s.value;
        break;
      case 'safespot_policy_last_refresh_timestamp_seconds':
        if (id && id !== 'other') list(id).lastLoaded = s.value;
        break;
      case 'safespot_policy_refresh_interval_seconds':
        if (id && id !== 'other') list(id).interval = s.value;
        break;
      case 'safespot_policy_info':
        if (s.value === 1 && s.labels.version) policyVersion = s.labels.version;
        break;
      case 'safespot_selftest_canary_success':
        if (s.labels.canary && s.labels.canary !== 'other') canaries.push({ id: s.labels.canary, category: s.labels.category ?? '', ok: s.value === 1 });
        break;
      case 'safespot_selftest_last_run_timestamp_seconds':
        selftestLastRun = s.value > 0 ? s.value : null;
        break;
      case 'safespot_appliance_info':
        if (s.value === 1 && /^sha256:[0-9a-f]{64}$/.test(s.labels.fingerprint ?? '')) fingerprint = s.labels.fingerprint!;
        if (s.value === 1 && s.labels.site) site = s.labels.site;
        break;
    }
  }
  return {
    filteringActive,
    policyVersion,
    lists: [...lists].map(([id, l]) => ({ id, ...l })).sort((a, b) => a.id.localeCompare(b.id)),
    canaries: canaries.sort((a, b) => a.id.localeCompare(b.id)),
    selftestLastRun,
    fingerprint,
    site,
  };
}

// --- what the journal says ----------------------------------------------------------------------------

export interface BlockFigures {
  /** Unix ms of the start of this UTC month and day. */
  readonly monthStart: number;
  readonly todayStart: number;
  readonly requestsToday: ReadonlyMap<string, number>;
  readonly requestsMonth: ReadonlyMap<string, number>;
  readonly imagesToday: ReadonlyMap<string, number>;
  readonly imagesMonth: ReadonlyMap<string, number>;
  /** Blocked requests per day of the month (1-based) and category. */
  readonly daily: ReadonlyMap<number, ReadonlyMap<string, number>>;
}

/** The category key of blocks without one (e.g. while no policy is loaded). */
export const NULL_CATEGORY = 'none';

function addTo(m: Map<string, number>, k: string, n: number): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

/**
 * Blocked requests and images from the journal, today and this month, cached. The same rows the
 * period report counts (audit/report.ts): `block` verdicts without the self-test's own, `block` images.
 */
export class BlockTally {
  private past: { key: number; at: number; requests: CountRow[]; images: CountRow[] } | null = null;
  private today: { key: number; at: number; requests: CountRow[]; images: CountRow[] } | null = null;
  /** How many times the journal was asked (tests see the cache work). */
  queries = 0;

  constructor(
    private readonly journal: Pick<Journal, 'count'>,
    private readonly now: () => number = Date.now,
  ) {}

  private range(from: number, to: number, byDay: boolean): { requests: CountRow[]; images: CountRow[] } {
    if (to <= from) return { requests: [], images: [] };
    this.queries++;
    const by = byDay ? (['day', 'category'] as const) : (['category'] as const);
    return {
      requests: this.journal.count({ from, to, kind: 'verdict', actions: ['block'], excludeListener: 'selftest', by }),
      images: this.journal.count({ from, to, kind: 'image', actions: ['block'], by: ['category'] }),
    };
  }

  read(): BlockFigures {
    const now = this.now();
    const d = new Date(now);
    const monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    const todayStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    if (!this.past || this.past.key !== todayStart || now - this.past.at >= PAST_TTL_MS) {
      this.past = { key: todayStart, at: now, ...this.range(monthStart, todayStart, true) };
    }
    if (!this.today || this.today.key !== todayStart || now - this.today.at >= TODAY_TTL_MS) {
      this.today = { key: todayStart, at: now, ...this.range(todayStart, now + 1, false) };
    }
    const requestsToday = new Map<string, number>();
    const requestsMonth = new Map<string, number>();
    const imagesToday = new Map<string, number>();
    const imagesMonth = new Map<string, number>();
    const daily = new Map<number, Map<string, number>>();
    const dayOf = (iso: string | null | undefined): number => Number((iso ?? '').slice(8, 10)) || d.getUTCDate();
    const dayMap = (n: number) => {
      let m = daily.get(n);
      if (!m) daily.set(n, (m = new Map()));
      return m;
    };
    for (const r of this.past.requests) {
      const c = r.key.category ?? NULL_CATEGORY;
      addTo(requestsMonth, c, r.n);
      addTo(dayMap(dayOf(r.key.day)), c, r.n);
    }
    for (const r of this.today.requests) {
      const c = r.key.category ?? NULL_CATEGORY;
      addTo(requestsToday, c, r.n);
      addTo(requestsMonth, c, r.n);
      addTo(dayMap(d.getUTCDate()), c, r.n);
    }
    for (const r of this.past.images) addTo(imagesMonth, r.key.category ?? NULL_CATEGORY, r.n);
    for (const r of this.today.images) {
      addTo(imagesToday, r.key.category ?? NULL_CATEGORY, r.n);
      addTo(imagesMonth, r.key.category ?? NULL_CATEGORY, r.n);
    }
    return { monthStart, todayStart, requestsToday, requestsMonth, imagesToday, imagesMonth, daily };
  }
}
