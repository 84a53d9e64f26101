/**
 * The period report across venues, from any Prometheus HTTP API (issue 20, point 3): the centre of a
 * city holds every venue's counters (remote-written by the venues' agents, docker/prometheus/agent.yml,
 * each series labelled with its venue), and this computes, per venue and for the city, the figures
 * of the journal report that counters carry: blocked and monitored requests by category, blocked and
 * monitored images by category and match type. Counter resets (a restarted appliance) and gaps in
 * the series (a venue whose samples stop for longer than its scrape interval) are handled and listed.
 *
 * Why not one `increase()` over the period: increase() extrapolates to the window's edges (figures
 * are not whole numbers and do not equal the journal's), and a month of raw samples of every venue
 * does not fit one answer. So the period is cut into windows (1 h; the last one shorter), and per
 * window the server answers per series `last_over_time`, `resets` and, per appliance,
 * `changes(process_start_time_seconds)`, a few query_range calls for the whole period. A window
 * where a series neither reset nor its process restarted adds `last - previous last`, exactly; only
 * the windows with a reset, a restart or a hole are fetched raw and walked sample by sample (a drop,
 * or a new process start time, is a reset: the counter restarted at 0, so its new value is all new).
 *
 * Gaps come from `up` per appliance: `count_over_time` and `sum_over_time` per window; windows with
 * fewer samples than the scrape interval allows, or with up = 0, are fetched raw and every stretch
 * longer than 1.5 scrape intervals without a sample (`missing`), or with up = 0 (`down`), is listed.
 *
 * What the counters cannot say (list history, each self-test, the exact filtering-active time) stays
 * in each venue's journal report; `filteringActiveFraction` here is by samples, an estimate.
 *
 * audit/ imports only policy/errors.ts from our code; the HTTP client is Node's fetch.
 */
import { SafespotError } from '../policy/errors.js';

const HOUR_MS = 3_600_000;
/** Baseline lookback before the period: a series with no sample in it counts as new (from 0). */
const BASELINE_MS = HOUR_MS;
/** query_range answers at most this many windows per call (bounded answer size at the centre). */
const WINDOWS_PER_CALL = 24;

export type Labels = Record<string, string>;
/** [Unix ms, value]. */
export type Sample = readonly [number, number];

export interface PromSource {
  /** Base URL of the Prometheus HTTP API (the part before /api/v1). */
  url: string;
  /** The label that names the venue (docker/prometheus/agent.yml adds `venue`). */
  venueLabel: string;
  /** Sent as `Authorization: Bearer …` (a reverse proxy in front of the centre). */
  token?: string;
  timeoutMs?: number;
}

export interface Figures {
  blockedRequests: { total: number; byCategory: Record<string, number> };
  monitoredRequests: { total: number; byCategory: Record<string, number> };
  blockedImages: { total: number; byCategory: Record<string, number>; byMatch: Record<string, number> };
  monitoredImages: { total: number; byCategory: Record<string, number> };
}

export interface Gap {
  instance: string;
  from: string;
  to: string;
  seconds: number;
  /** missing: no sample for longer than 1.5 scrape intervals; down: the agent scraped and the appliance did not answer (up = 0). */
  kind: 'missing' | 'down';
}

export interface VenueReport extends Figures {
  venue: string;
  instances: Array<{
    instance: string;
    scrapeIntervalSeconds: number | null;
    upSamples: number;
    /** Fraction of the measured period not in a gap. */
    coveredFraction: number;
    /** Samples of safespot_filtering_active = 1 times the scrape interval, over the measured period. */
    filteringActiveFraction: number | null;
  }>;
  /** Series whose counter restarted at 0 (each reset of each series). */
  counterResets: number;
  /** Where the appliance restarted (process start time changed, or its counters dropped), per instance. */
  restarts: Array<{ instance: string; at: string }>;
  gaps: Gap[];
}

export interface PromReport {
  source: { prometheus: string; venueLabel: string; windowSeconds: number; queries: number };
  period: { from: string; to: string; measuredUntil: string; seconds: number };
  generatedAt: string;
  venues: VenueReport[];
  city: Figures & { venues: number; counterResets: number; restarts: number; venuesWithGaps: string[] };
  note: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The increase of one counter over samples in time order, from `prev` (its last value before them;
 * null: the series is new and started at 0). A drop, or a change of the process start time between
 * two samples (`startAt`), is a reset: the new value counts whole. Pure.
 */
export function counterIncrease(
  prev: number | null,
  samples: readonly Sample[],
  startAt: (ms: number) => number | undefined = () => undefined,
  prevStart?: number,
): { increase: number; resets: number[]; last: number | null; lastStart: number | undefined } {
  let inc = 0;
  let last = prev;
  let lastStart = prevStart;
  const resets: number[] = [];
  for (const [ts, v] of samples) {
    const st = startAt(ts);
    if (last === null) inc += v;
    else if (v < last || (st !== undefined && lastStart !== undefined && st !== lastStart)) {
      inc += v;
      resets.push(ts);
    } else inc += v - last;
    last = v;
    if (st !== undefined) lastStart = st;
  }
  return { increase: inc, resets, last, lastStart };
}

/**
 * Stretches of [from, to) without a sample for longer than `factor` × interval, and stretches where
 * up = 0, from `up` samples in time order (samples before `from` only set the context). Pure.
 */
export function findGaps(
  up: readonly Sample[],
  intervalMs: number,
  from: number,
  to: number,
  factor = 1.5,
): Array<{ from: number; to: number; kind: Gap['kind'] }> {
  const out: Array<{ from: number; to: number; kind: Gap['kind'] }> = [];
  const push = (a: number, b: number, kind: Gap['kind']): void => {
    const lo = Math.max(a, from);
    const hi = Math.min(b, to);
    if (hi <= lo) return;
    const prev = out[out.length - 1];
    if (prev && prev.kind === kind && prev.to >= lo) prev.to = Math.max(prev.to, hi);
    else out.push({ from: lo, to: hi, kind });
  };
  const limit = factor * intervalMs;
  let lastTs: number | null = null;
  let downSince: number | null = null;
  for (const [ts, v] of up) {
    if (ts >= to) break;
    const gapFrom = lastTs ?? from;
    if (ts - gapFrom > limit) push(gapFrom, ts, 'missing');
    if (v === 0) downSince ??= ts;
    else if (downSince !== null) {
      push(downSince, ts, 'down');
      downSince = null;
    }
    lastTs = ts;
  }
  if (downSince !== null) push(downSince, to, 'down');
  const tail = lastTs ?? from;
  if (to - tail > limit) push(tail, to, 'missing');
  return out;
}

/** A PromQL string literal (label values come from the server; quote them back safely). */
const str = (s: string): string => JSON.stringify(s);

/** An exact selector for one series. */
export function seriesSelector(labels: Labels): string {
  const name = labels.__name__ ?? '';
  const rest = Object.entries(labels)
    .filter(([k]) => k !== '__name__')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${str(v)}`);
  return `${name}{${rest.join(',')}}`;
}

const keyOf = (labels: Labels): string => seriesSelector(labels);

type Result = { metric: Labels; values: Sample[] };

/** Parse a query or query_range answer; anything not of the documented shape is an error. */
export function parseApiAnswer(body: unknown, what: string): Result[] {
  const fail = (why: string): never => {
    throw new SafespotError('ERR_PROMETHEUS', `Prometheus answered ${what} with ${why}`);
  };
  if (typeof body !== 'object' || body === null) return fail('no JSON object');
  const b = body as { status?: unknown; error?: unknown; data?: { resultType?: unknown; result?: unknown } };
  if (b.status !== 'success') return fail(`status ${String(b.status)}: ${typeof b.error === 'string' ? b.error.slice(0, 300) : ''}`);
  const type = b.data?.resultType;
  const result = b.data?.result;
  if (!Array.isArray(result)) return fail('no result array');
  const sample = (p: unknown): Sample => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'number' || typeof p[1] !== 'string') return fail('a malformed sample');
    const v = Number(p[1]);
    if (!Number.isFinite(v) || !Number.isFinite(p[0])) return fail(`a sample that is not a finite number (${String(p[1]).slice(0, 20)})`);
    return [Math.round(p[0] * 1000), v];
  };
  return result.map((r: unknown) => {
    const m = (r as { metric?: unknown }).metric;
    if (typeof m !== 'object' || m === null || Object.values(m).some((v) => typeof v !== 'string')) return fail('a malformed series');
    if (type === 'vector') return { metric: m as Labels, values: [sample((r as { value?: unknown }).value)] };
    if (type === 'matrix') {
      const vs = (r as { values?: unknown }).values;
      if (!Array.isArray(vs)) return fail('a series without values');
      return { metric: m as Labels, values: vs.map(sample) };
    }
    return fail(`result type ${String(type)}`);
  });
}

/** An answer's body as text: JSON of the documented shape, or ERR_PROMETHEUS saying what came instead. */
export function parseApiText(text: string, httpStatus: number, what: string): Result[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new SafespotError('ERR_PROMETHEUS', `Prometheus answered ${what} with HTTP ${httpStatus} and no JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return parseApiAnswer(body, what);
}

class Api {
  queries = 0;
  constructor(private readonly src: PromSource) {}

  private async post(path: string, form: Record<string, string>, what: string): Promise<Result[]> {
    this.queries++;
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (this.src.token) headers.authorization = `Bearer ${this.src.token}`;
    let body: unknown;
    try {
      const res = await fetch(`${this.src.url.replace(/\/+$/, '')}${path}`, {
        method: 'POST',
        headers,
        body: new URLSearchParams(form).toString(),
        signal: AbortSignal.timeout(this.src.timeoutMs ?? 120_000),
      });
      body = { status: res.status, text: await res.text() };
    } catch (cause) {
      throw new SafespotError('ERR_PROMETHEUS', `could not query Prometheus at ${publicUrl(this.src.url)} (${what}): ${(cause as Error).message}`, { cause });
    }
    const { status, text } = body as { status: number; text: string };
    return parseApiText(text, status, what);
  }

  instant(query: string, at: number): Promise<Result[]> {
    return this.post('/api/v1/query', { query, time: (at / 1000).toFixed(3) }, query);
  }

  range(query: string, start: number, end: number, step: number): Promise<Result[]> {
    return this.post('/api/v1/query_range', { query, start: (start / 1000).toFixed(3), end: (end / 1000).toFixed(3), step: (step / 1000).toFixed(3) }, query);
  }
}

/** The URL without user:password (it is printed in the report). */
function publicUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable URL)';
  }
}

interface Window {
  s: number;
  e: number;
}

/** Windows of [from, end): full hours (or the whole period if shorter), the last one what is left. */
export function windowsOf(from: number, end: number, size = HOUR_MS): Window[] {
  const out: Window[] = [];
  for (let s = from; s < end; s += size) out.push({ s, e: Math.min(end, s + size) });
  return out;
}

/**
 * Evaluate `expr(rangeMs)` at the end of every window (just before it: ranges are (t - r, t], so
 * t = e - 1 ms covers [s, e) of whole milliseconds). Per series, the value per window index.
 */
async function perWindow(api: Api, expr: (rangeMs: number) => string, windows: Window[]): Promise<Map<string, { metric: Labels; at: Map<number, number> }>> {
  const out = new Map<string, { metric: Labels; at: Map<number, number> }>();
  const put = (rows: Result[], index: (ts: number) => number): void => {
    for (const r of rows) {
      const k = keyOf(r.metric);
      let v = out.get(k);
      if (!v) out.set(k, (v = { metric: r.metric, at: new Map() }));
      for (const [ts, val] of r.values) v.at.set(index(ts), val);
    }
  };
  let i = 0;
  while (i < windows.length) {
    const w0 = windows[i]!;
    const len = w0.e - w0.s;
    let j = i;
    while (j + 1 < windows.length && j + 1 - i < WINDOWS_PER_CALL && windows[j + 1]!.e - windows[j + 1]!.s === len) j++;
    const first = i;
    if (j === i) put(await api.instant(expr(len), w0.e - 1), () => first);
    else put(await api.range(expr(len), w0.e - 1, windows[j]!.e - 1, len), (ts) => first + Math.round((ts - (w0.e - 1)) / len));
    i = j + 1;
  }
  return out;
}

const COUNTERS = 'safespot_requests_total|safespot_images_blocked_total|safespot_images_monitored_total';

function emptyFigures(): Figures {
  return {
    blockedRequests: { total: 0, byCategory: {} },
    monitoredRequests: { total: 0, byCategory: {} },
    blockedImages: { total: 0, byCategory: {}, byMatch: {} },
    monitoredImages: { total: 0, byCategory: {} },
  };
}

const add = (m: Record<string, number>, k: string, n: number): void => {
  m[k] = (m[k] ?? 0) + n;
};

/** Add one series' increase to the figures it belongs to (the journal report's definitions, docs/audit.md). */
export function addToFigures(f: Figures, labels: Labels, n: number): void {
  const cat = labels.category ?? 'none';
  switch (labels.__name__) {
    case 'safespot_requests_total':
      if (labels.listener === 'selftest') return;
      if (labels.action === 'block') {
        f.blockedRequests.total += n;
        add(f.blockedRequests.byCategory, cat, n);
      } else if (labels.action === 'monitor') {
        f.monitoredRequests.total += n;
        add(f.monitoredRequests.byCategory, cat, n);
      }
      return;
    case 'safespot_images_blocked_total':
      f.blockedImages.total += n;
      add(f.blockedImages.byCategory, cat, n);
      add(f.blockedImages.byMatch, labels.match ?? 'unknown', n);
      return;
    case 'safespot_images_monitored_total':
      f.monitoredImages.total += n;
      add(f.monitoredImages.byCategory, cat, n);
      return;
    default:
  }
}

function sumFigures(into: Figures, f: Figures): void {
  const merge = (a: Record<string, number>, b: Record<string, number>) => {
    for (const [k, n] of Object.entries(b)) add(a, k, n);
  };
  into.blockedRequests.total += f.blockedRequests.total;
  merge(into.blockedRequests.byCategory, f.blockedRequests.byCategory);
  into.monitoredRequests.total += f.monitoredRequests.total;
  merge(into.monitoredRequests.byCategory, f.monitoredRequests.byCategory);
  into.blockedImages.total += f.blockedImages.total;
  merge(into.blockedImages.byCategory, f.blockedImages.byCategory);
  merge(into.blockedImages.byMatch, f.blockedImages.byMatch);
  into.monitoredImages.total += f.monitoredImages.total;
  merge(into.monitoredImages.byCategory, f.monitoredImages.byCategory);
}

/** Build the report: every venue that has `up` samples in the period, and the city total. */
export async function buildPromReport(src: PromSource, opts: { from: number; to: number; now?: number; windowMs?: number }): Promise<PromReport> {
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(src.venueLabel)) {
    throw new SafespotError('ERR_USAGE', `--venue-label "${src.venueLabel}" is not a Prometheus label name`);
  }
  const api = new Api(src);
  const now = opts.now ?? Date.now();
  const { from, to } = opts;
  const end = Math.max(from, Math.min(to, now));
  const windowMs = opts.windowMs ?? HOUR_MS;
  const windows = windowsOf(from, end, windowMs);
  const V = src.venueLabel;
  const venueOf = (l: Labels) => l[V] ?? '';
  const inst = (l: Labels) => `${venueOf(l)}\u0000${l.instance ?? ''}`;
  const sel = `${V}!=""`;
  const venues = new Map<string, { figures: Figures; resets: number; restarts: Set<string>; instances: Map<string, VenueReport['instances'][number]>; gaps: Gap[] }>();
  const venue = (name: string) => {
    let v = venues.get(name);
    if (!v) venues.set(name, (v = { figures: emptyFigures(), resets: 0, restarts: new Set(), instances: new Map(), gaps: [] }));
    return v;
  };

  if (windows.length > 0) {
    const full = windowMs;
    // Functions over ranges drop __name__: one query per counter name, the name put back.
    const named = async (name: string, expr: (sel: string, r: number) => string) => {
      const m = await perWindow(api, (r) => expr(`${name}{${sel}, listener!="selftest", action=~"block|monitor|"}`, r), windows);
      for (const v of m.values()) v.metric = { ...v.metric, __name__: name };
      return m;
    };
    const lastV = new Map<string, { metric: Labels; at: Map<number, number> }>();
    const resets = new Map<string, { metric: Labels; at: Map<number, number> }>();
    const base = new Map<string, number>();
    for (const name of COUNTERS.split('|')) {
      for (const v of (await named(name, (s, r) => `last_over_time(${s}[${r}ms])`)).values()) lastV.set(keyOf(v.metric), v);
      for (const v of (await named(name, (s, r) => `resets(${s}[${r + full}ms])`)).values()) resets.set(keyOf(v.metric), v);
      const rows = await api.instant(`last_over_time(${name}{${sel}, listener!="selftest", action=~"block|monitor|"}[${BASELINE_MS}ms])`, from - 1);
      for (const r of rows) base.set(keyOf({ ...r.metric, __name__: name }), r.values[0]![1]);
    }
    const byInstance = async (expr: (r: number) => string) => {
      const m = new Map<string, { metric: Labels; at: Map<number, number> }>();
      for (const v of (await perWindow(api, expr, windows)).values()) m.set(inst(v.metric), v);
      return m;
    };
    const startsBy = await byInstance((r) => `changes(process_start_time_seconds{${sel}}[${r + full}ms])`);
    const upCount = await byInstance((r) => `count_over_time(up{${sel}}[${r}ms])`);
    const upSum = await byInstance((r) => `sum_over_time(up{${sel}}[${r}ms])`);
    const activeSum = await byInstance((r) => `sum_over_time(safespot_filtering_active{${sel}}[${r}ms])`);
    // Raw process start times per appliance and window, fetched once when a window needs the raw path.
    const rawStarts = new Map<string, Map<number, number>>();
    const startTimes = async (labels: Labels, w: Window): Promise<Map<number, number>> => {
      const k = `${inst(labels)}\u0000${w.s}`;
      let m = rawStarts.get(k);
      if (!m) {
        const q = `process_start_time_seconds{${V}=${str(venueOf(labels))}, instance=${str(labels.instance ?? '')}}[${w.e - w.s + full}ms]`;
        const rows = await api.instant(q, w.e - 1);
        rawStarts.set(k, (m = new Map(rows.flatMap((r) => r.values.map(([ts, v]) => [ts, v] as [number, number])))));
      }
      return m;
    };

    for (const [key, { metric, at }] of lastV) {
      const v = venue(venueOf(metric));
      let prev: number | null = base.get(key) ?? null;
      let prevStart: number | undefined;
      let hole = false; // the previous window had no sample of this series
      let total = 0;
      for (let k = 0; k < windows.length; k++) {
        const last = at.get(k);
        if (last === undefined) {
          hole = prev !== null;
          continue;
        }
        const quiet = (resets.get(key)?.at.get(k) ?? 0) === 0 && (startsBy.get(inst(metric))?.at.get(k) ?? 0) === 0;
        if (quiet && !hole && last >= (prev ?? 0)) {
          total += last - (prev ?? 0);
          prev = last;
          prevStart = undefined;
          continue;
        }
        // Raw path: this window's samples, with the ones just before it as context.
        const w = windows[k]!;
        const rows = await api.instant(`${seriesSelector(metric)}[${w.e - w.s + full}ms]`, w.e - 1);
        const samples = rows[0]?.values ?? [];
        const st = await startTimes(metric, w);
        const before = samples.filter(([ts]) => ts < w.s);
        const inside = samples.filter(([ts]) => ts >= w.s);
        const ctx = before[before.length - 1];
        if (ctx && !hole) {
          prev = ctx[1];
          prevStart = st.get(ctx[0]);
        }
        const r = counterIncrease(prev, inside, (ts) => st.get(ts), prevStart);
        total += r.increase;
        v.resets += r.resets.length;
        for (const ts of r.resets) v.restarts.add(`${metric.instance ?? ''}\u0000${ts}`);
        prev = r.last;
        prevStart = r.lastStart;
        hole = false;
      }
      addToFigures(v.figures, metric, total);
    }

    // Coverage and gaps per appliance, from `up`.
    for (const [key, { metric: m, at }] of upCount) {
      const metric: Labels = { ...m, __name__: 'up' };
      const v = venue(venueOf(metric));
      const counts = windows.map((_, k) => at.get(k) ?? 0);
      const fullCounts = windows.map((w, k) => (w.e - w.s === full ? counts[k]! : 0));
      const best = Math.max(...fullCounts);
      let interval = best > 0 ? full / best : null;
      const gaps: Array<{ from: number; to: number; kind: Gap['kind'] }> = [];
      const sums = upSum.get(key)?.at;
      // A gap that reaches a window's end goes on into the next one: fetch that one raw too, so the
      // gap ends at its first sample, not at the edge (a missing sample or two is within tolerance).
      let carry = false;
      for (let k = 0; k < windows.length; k++) {
        const w = windows[k]!;
        const c = counts[k]!;
        const expected = interval ? (w.e - w.s) / interval : Infinity;
        const downs = c - (sums?.get(k) ?? 0) > 0;
        if (c === 0 && carry) {
          gaps.push({ from: w.s, to: w.e, kind: 'missing' });
          continue;
        }
        if (windows.length > 1 && !downs && !carry && c >= expected - 1) continue;
        const ctx = interval ? 3 * interval : full;
        const rows = await api.instant(`${seriesSelector(metric)}[${Math.ceil(w.e - w.s + ctx)}ms]`, w.e - 1);
        const samples = rows[0]?.values ?? [];
        const spacing = samples.slice(1).map(([ts], i) => ts - samples[i]![0]).sort((a, b) => a - b);
        const median = spacing[Math.floor(spacing.length / 2)];
        if (median !== undefined && (interval === null || median < interval)) interval = median;
        if (interval !== null) {
          // A gap that began in the previous (skipped) window starts at its last sample, in the context.
          const lo = samples.some(([ts]) => ts < w.s) ? Math.max(from, w.s - ctx) : w.s;
          const found = findGaps(samples, interval, lo, w.e);
          // A missing stretch carried in from the previous window lasts until this window's first
          // sample, however short the rest is: findGaps alone would not count a stretch from the
          // edge shorter than its tolerance (a second lost per window edge).
          const first = samples.find(([ts]) => ts >= w.s)?.[0] ?? w.e;
          if (carry && lo === w.s && first > w.s) gaps.push({ from: w.s, to: first, kind: 'missing' });
          gaps.push(...found);
          carry = found.some((g) => g.to >= w.e);
        } else carry = false;
      }
      // Windows' gaps that touch are one gap.
      const merged: typeof gaps = [];
      for (const g of gaps.sort((a, b) => a.from - b.from)) {
        const p = merged[merged.length - 1];
        if (p && p.kind === g.kind && p.to >= g.from) p.to = Math.max(p.to, g.to);
        else merged.push({ ...g });
      }
      const instance = metric.instance ?? '';
      const gapMs = merged.reduce((a, g) => a + (g.to - g.from), 0);
      const activeFromSamples = activeSum.get(key)?.at;
      const activeSamples = [...(activeFromSamples?.values() ?? [])].reduce((a, n) => a + n, 0);
      v.instances.set(instance, {
        instance,
        scrapeIntervalSeconds: interval === null ? null : Math.round(interval) / 1000,
        upSamples: counts.reduce((a, n) => a + n, 0),
        coveredFraction: end > from ? 1 - gapMs / (end - from) : 1,
        filteringActiveFraction: interval === null || !activeFromSamples ? null : Math.min(1, (activeSamples * interval) / (end - from)),
      });
      for (const g of merged) v.gaps.push({ instance, from: iso(g.from), to: iso(g.to), seconds: (g.to - g.from) / 1000, kind: g.kind });
    }
  }

  const city: PromReport['city'] = { ...emptyFigures(), venues: 0, counterResets: 0, restarts: 0, venuesWithGaps: [] };
  const out: VenueReport[] = [];
  for (const name of [...venues.keys()].sort()) {
    const v = venues.get(name)!;
    const restarts = [...v.restarts].map((r) => r.split('\u0000')).map(([instance, ts]) => ({ instance: instance!, at: iso(Number(ts)) }));
    const unique = [...new Map(restarts.map((r) => [`${r.instance} ${r.at}`, r])).values()].sort((a, b) => a.at.localeCompare(b.at));
    out.push({ venue: name, ...v.figures, instances: [...v.instances.values()], counterResets: v.resets, restarts: unique, gaps: v.gaps });
    sumFigures(city, v.figures);
    city.venues++;
    city.counterResets += v.resets;
    city.restarts += unique.length;
    if (v.gaps.length > 0) city.venuesWithGaps.push(name);
  }
  return {
    source: { prometheus: publicUrl(src.url), venueLabel: V, windowSeconds: windowMs / 1000, queries: api.queries },
    period: { from: iso(from), to: iso(to), measuredUntil: iso(end), seconds: (end - from) / 1000 },
    generatedAt: iso(now),
    venues: out,
    city,
    note:
      'Figures are counter increases over [from, to), summed per venue across its appliances and series, without extrapolation: ' +
      'a restart (the counter dropped, or process_start_time_seconds changed) counts the new value whole. Counts made after the last ' +
      'scrape before a restart or crash never reach Prometheus: a restart can make a venue short by up to one scrape interval of blocks, ' +
      'which its journal report still has. A series with no sample in the hour before the period counts as new (from 0). ' +
      'Gaps list stretches without a sample (missing) or with up = 0 (down) longer than 1.5 scrape intervals; filteringActiveFraction ' +
      'is by samples. Lists, self-tests and exact filtering time are in each venue\'s journal report (safespot audit report --journal).',
  };
}
