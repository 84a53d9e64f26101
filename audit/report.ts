/**
 * Period reports for auditors, computed from the audit journal only (so the figures can be checked
 * against the journal rows one by one): blocked requests by category, blocked images by category and
 * match type, monitored would-blocks, list refresh history with the largest gap between successful
 * refreshes, the fraction of the period with filtering active, and self-test results.
 *
 * `loadReportInput` reads the journal; `computeReport` is pure (tests feed it rows); `reportJson`,
 * `reportCsv` and `reportHtml` (audit/report-html.ts) format the same `Report` object.
 *
 * Periods are half-open, [from, to), in Unix ms. Days are UTC days.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import type { CountRow, Journal, JournalKeeping, JournalRow } from './journal.js';
import { computeFigures, figuresCsvRows, loadFigures, type CertificationFigures, type FiguresInput } from './report-figures.js';

const DAY_MS = 86_400_000;

/** Everything a report is computed from; plain data (see loadReportInput). */
export interface ReportInput {
  from: number;
  to: number;
  generatedAt: number;
  journalPath: string;
  /** Configured categories and list ids: shown with zeros when nothing happened. */
  categories: readonly string[];
  lists: readonly string[];
  /** verdict rows, action block|monitor, not self-test, grouped by action, category, day. */
  verdictCounts: CountRow[];
  /** image rows grouped by action, category, match, day. */
  imageCounts: CountRow[];
  /** list_load, list_refresh, list_failure rows in the period. */
  listEvents: JournalRow[];
  /** Per list, the last successful load or refresh before the period. */
  lastSuccessBefore: ReadonlyMap<string, number>;
  /** start, stop, filtering_active, filtering_inactive rows in the period. */
  stateEvents: JournalRow[];
  /** The last such row before the period (the state at its start), or null. */
  stateBefore: JournalRow | null;
  /** The journal's current session: while open, evidence ends at its last sign of life. */
  session: { open: boolean; lastAlive: number | null };
  /** selftest rows in the period. */
  selftests: JournalRow[];
  /** Aggregate rows and lost events in the period (issue 22, finding 8). */
  keeping: JournalKeeping;
  /** The figures certification asks for (audit/report-figures.ts); absent in inputs made by hand. */
  figures?: FiguresInput;
  /** The newest `list_load` row before the period: the policy in force at its start (issue 21). */
  policyBefore?: JournalRow | null;
  /** Who made the report (signed reports; audit/report-make.ts fills these in). */
  appliance?: Report['appliance'];
  checkpoint?: Report['checkpoint'];
  generator?: string;
}

/**
 * An open session whose last sign of life is at most this old when the report is made is taken as
 * running: the report is measured until that sign of life (neither up nor down after it). Older, it
 * died: the time after counts as down. Two heartbeats and some slack (audit/journal.ts HEARTBEAT_MS).
 */
export const LIVE_WINDOW_MS = 25_000;

export type FilteringState = 'active' | 'inactive' | 'down';

export interface Report {
  period: { from: string; to: string; measuredUntil: string; seconds: number };
  generatedAt: string;
  journal: string;
  /** The safespot that made the report. */
  generator: string | null;
  /** The appliance that signed it (null in an unsigned report). */
  appliance: { site: { id: string; name: string | null }; key: string; fingerprint: string } | null;
  /** Policy versions in force in the period: the one at its start, then each load, oldest first. */
  policies: Array<{ version: string; since: string; how: string | null; inForceAtStart: boolean }>;
  /**
   * The signed checkpoint of the journal's tree that covers the report (every figure is computed from
   * the rows it covers); `note` is the checkpoint's signed note (json only). Null when unsigned.
   */
  checkpoint: { size: number; root: string; time: string; reason: string; note?: string } | null;
  blockedRequests: { total: number; byCategory: Record<string, number> };
  blockedImages: {
    total: number;
    byCategory: Record<string, number>;
    byMatch: Record<string, number>;
    byCategoryAndMatch: Array<{ category: string; match: string; count: number }>;
  };
  monitored: {
    requests: { total: number; byCategory: Record<string, number> };
    images: { total: number; byCategory: Record<string, number> };
  };
  blocksPerDay: Array<{ day: string; requests: number; images: number }>;
  lists: Array<{
    list: string;
    loads: number;
    refreshes: number;
    failures: number;
    lastSuccessBeforePeriod: string | null;
    lastSuccess: string | null;
    /** Longest stretch without a successful load/refresh, in seconds (see docs/audit.md). */
    largestGapSeconds: number;
    largestGap: { from: string; to: string } | null;
    history: Array<{ time: string; kind: string; detail: string | null }>;
  }>;
  filtering: {
    /** active seconds / measured seconds; null when nothing of the period has elapsed. */
    activeFraction: number | null;
    activeSeconds: number;
    inactiveSeconds: number;
    downSeconds: number;
    /** Stretches that were not active, oldest first. */
    gaps: Array<{ from: string; to: string; state: Exclude<FilteringState, 'active'>; seconds: number }>;
    note: string;
  };
  selftests: {
    total: number;
    passed: number;
    failed: number;
    byCategory: Record<string, { passed: number; failed: number; last: { time: string; result: string } | null }>;
    failures: Array<{ time: string; category: string | null; detail: string | null }>;
  };
  /** How the journal kept the period's events: what is in the figures only as counts, and what is in none. */
  journalKeeping: {
    /** Blocks and image matches counted in per-minute aggregate rows (in every figure above; no URL or client). */
    aggregatedEvents: number;
    aggregatedByReason: Record<string, number>;
    aggregateRows: number;
    /** Events that could not be written: in no figure above, which are short by at most this many. */
    lostEvents: number;
    lostByReason: Record<string, number>;
    note: string;
  };
  /** The figures certification asks for: blocks by listener, distinct sites, hits per list, canaries, admin actions (audit/report-figures.ts). */
  certification?: CertificationFigures;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Read what a report needs from the journal. */
export function loadReportInput(
  journal: Journal,
  opts: { from: number; to: number; now?: () => number; categories?: readonly string[]; lists?: readonly string[] },
): ReportInput {
  const { from, to } = opts;
  const stateKinds = ['start', 'stop', 'filtering_active', 'filtering_inactive'] as const;
  const successKinds = ['list_load', 'list_refresh'] as const;
  return {
    from,
    to,
    generatedAt: (opts.now ?? Date.now)(),
    journalPath: journal.path,
    categories: opts.categories ?? [],
    lists: opts.lists ?? [],
    verdictCounts: journal.count({
      from,
      to,
      kind: 'verdict',
      actions: ['block', 'monitor'],
      excludeListener: 'selftest',
      by: ['action', 'category', 'day'],
    }),
    imageCounts: journal.count({ from, to, kind: 'image', actions: ['block', 'monitor'], by: ['action', 'category', 'match', 'day'] }),
    listEvents: journal.query(from, to, ['list_load', 'list_refresh', 'list_failure']),
    lastSuccessBefore: journal.lastTimePerList(from, successKinds),
    stateEvents: journal.query(from, to, stateKinds),
    stateBefore: journal.lastBefore(from, stateKinds),
    policyBefore: journal.lastBefore(from, ['list_load']),
    session: journal.session(),
    selftests: journal.query(from, to, ['selftest']),
    keeping: journal.keeping(from, to),
    figures: loadFigures(journal, from, to),
  };
}

function keepingOver(input: ReportInput): Report['journalKeeping'] {
  const k = input.keeping;
  const sum = (m: Record<string, number>) => Object.values(m).reduce((a, n) => a + n, 0);
  const lost = sum(k.lostEvents);
  return {
    aggregatedEvents: sum(k.aggregatedEvents),
    aggregatedByReason: { ...k.aggregatedEvents },
    aggregateRows: k.aggregateRows,
    lostEvents: lost,
    lostByReason: { ...k.lostEvents },
    note:
      'Past journal.eventsPerMinute per key and minute, past journal.maxBytes, or while the disk refused writes, ' +
      'blocks are kept as one row per minute with a count: they are in every figure, without URL or client. ' +
      (lost > 0
        ? `${lost} event(s) could not be written at all (reasons above); the blocked figures may be short by at most that many.`
        : 'No event was lost.'),
  };
}

function add(map: Record<string, number>, key: string, n: number): void {
  map[key] = (map[key] ?? 0) + n;
}

function zeroed(keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = 0;
  return out;
}

const stateAfter = (kind: string): FilteringState | null =>
  kind === 'filtering_active' ? 'active' : kind === 'filtering_inactive' || kind === 'start' ? 'inactive' : kind === 'stop' ? 'down' : null;

/**
 * Walk the state events over [from, end). Before any evidence the appliance counts as down; an
 * open session counts as up only until its last sign of life (heartbeat or event).
 */
function filteringOver(input: ReportInput, end: number): Report['filtering'] {
  let state: FilteringState = input.stateBefore ? (stateAfter(input.stateBefore.kind) ?? 'down') : 'down';
  let t = input.from;
  const totals: Record<FilteringState, number> = { active: 0, inactive: 0, down: 0 };
  const gaps: Report['filtering']['gaps'] = [];
  // A live session is measured only until its last sign of life (end is cut there, computeReport).
  const horizon = input.session.open && input.session.lastAlive !== null && !isLive(input) ? input.session.lastAlive : Infinity;
  const span = (a: number, b: number, s: FilteringState): void => {
    if (b <= a) return;
    // Past the open session's last sign of life nothing proves the process was up.
    const cut = Math.max(a, Math.min(b, horizon));
    put(a, cut, s);
    put(cut, b, 'down');
  };
  const put = (a: number, b: number, s: FilteringState): void => {
    if (b <= a) return;
    totals[s] += b - a;
    if (s === 'active') return;
    const last = gaps[gaps.length - 1];
    if (last && last.state === s && Date.parse(last.to) === a) {
      last.to = iso(b);
      last.seconds = (b - Date.parse(last.from)) / 1000;
    } else gaps.push({ from: iso(a), to: iso(b), state: s, seconds: (b - a) / 1000 });
  };
  for (const e of input.stateEvents) {
    if (e.time >= end) break;
    const next = stateAfter(e.kind);
    if (next === null) continue;
    span(t, Math.max(t, e.time), state);
    t = Math.max(t, e.time);
    state = next;
  }
  span(t, end, state);
  const measured = end - input.from;
  return {
    activeFraction: measured > 0 ? totals.active / measured : null,
    activeSeconds: totals.active / 1000,
    inactiveSeconds: totals.inactive / 1000,
    downSeconds: totals.down / 1000,
    gaps,
    note:
      'Active means a valid policy was loaded and enforced. Inactive means safespot was running without ' +
      'an enforced policy (it then forwards nothing). Down means no safespot process was running, or nothing ' +
      'in the journal proves one was (after a crash, from its last sign of life); down time counts as not active.',
  };
}

/** List events that name no list (a failure of the whole policy compile) are shown under this id. */
export const NO_LIST = '(all lists)';

function listsOver(input: ReportInput, end: number): Report['lists'] {
  const ids = [...input.lists];
  for (const e of input.listEvents) {
    const id = e.list ?? NO_LIST;
    if (!ids.includes(id)) ids.push(id);
  }
  for (const id of input.lastSuccessBefore.keys()) if (!ids.includes(id)) ids.push(id);
  return ids.map((list) => {
    const events = input.listEvents.filter((e) => (e.list ?? NO_LIST) === list);
    const successes = events.filter((e) => e.kind !== 'list_failure' && e.time < end).map((e) => e.time);
    const before = input.lastSuccessBefore.get(list) ?? null;
    // Staleness: from the last success before the period (or the period start when there is none)
    // to each success, and from the last one to the end of what was measured.
    const anchors = [before ?? input.from, ...successes, end];
    let gap = 0;
    let gapAt: { from: string; to: string } | null = null;
    for (let i = 1; i < anchors.length; i++) {
      const a = anchors[i - 1]!;
      const b = anchors[i]!;
      if (b - a > gap) {
        gap = b - a;
        gapAt = { from: iso(a), to: iso(b) };
      }
    }
    if (list === NO_LIST) gapAt = null; // not a list: no refresh schedule to measure
    if (list === NO_LIST) gap = 0;
    const lastSuccess = successes.length ? successes[successes.length - 1]! : before;
    return {
      list,
      loads: events.filter((e) => e.kind === 'list_load').length,
      refreshes: events.filter((e) => e.kind === 'list_refresh').length,
      failures: events.filter((e) => e.kind === 'list_failure').length,
      lastSuccessBeforePeriod: before === null ? null : iso(before),
      lastSuccess: lastSuccess === null ? null : iso(lastSuccess),
      largestGapSeconds: gap / 1000,
      largestGap: gapAt,
      history: events.map((e) => ({ time: iso(e.time), kind: e.kind, detail: e.detail })),
    };
  });
}

function selftestsOver(input: ReportInput): Report['selftests'] {
  const byCategory: Report['selftests']['byCategory'] = {};
  const failures: Report['selftests']['failures'] = [];
  let passed = 0;
  let failed = 0;
  for (const e of input.selftests) {
    const key = e.category ?? 'none';
    const c = (byCategory[key] ??= { passed: 0, failed: 0, last: null });
    const ok = e.action === 'pass';
    if (ok) {
      c.passed++;
      passed++;
    } else {
      c.failed++;
      failed++;
      failures.push({ time: iso(e.time), category: e.category, detail: e.detail });
    }
    c.last = { time: iso(e.time), result: ok ? 'pass' : 'fail' };
  }
  return { total: input.selftests.length, passed, failed, byCategory, failures };
}

function days(from: number, end: number): string[] {
  const out: string[] = [];
  if (end <= from) return out;
  for (let d = Math.floor(from / DAY_MS) * DAY_MS; d < end; d += DAY_MS) out.push(iso(d).slice(0, 10));
  return out;
}

/** An open session whose last sign of life is recent when the report is made: the appliance runs. */
function isLive(input: ReportInput): boolean {
  const s = input.session;
  return s.open && s.lastAlive !== null && input.generatedAt - s.lastAlive <= LIVE_WINDOW_MS;
}

/**
 * Where the evidence of a report ends: `to`, or when it was made, whichever is earlier; while the
 * appliance runs, at its last sign of life (the journal's heartbeat lags the report by up to 10 s:
 * counting that lag as down understated the uptime of every report made at the venue).
 */
export function measuredEnd(input: ReportInput): number {
  let end = Math.min(input.to, input.generatedAt);
  if (isLive(input)) end = Math.min(end, input.session.lastAlive!);
  return Math.max(input.from, end);
}

const POLICY_DETAIL = /^policy (\S+)(?: \(([^)]*)\))?/;

/** Policy versions in force in [from, end): from `list_load` rows (detail "policy <version> (<how>): …"). */
function policiesOver(input: ReportInput, end: number): Report['policies'] {
  const out: Report['policies'] = [];
  const add = (row: JournalRow, atStart: boolean): void => {
    const m = POLICY_DETAIL.exec(row.detail ?? '');
    if (!m) return;
    out.push({ version: m[1]!, since: iso(row.time), how: m[2] ?? null, inForceAtStart: atStart });
  };
  if (input.policyBefore) add(input.policyBefore, true);
  for (const e of input.listEvents) if (e.kind === 'list_load' && e.time < end) add(e, false);
  return out;
}

/** The report, from plain input. Pure. */
export function computeReport(input: ReportInput): Report {
  const end = measuredEnd(input);
  const cats = input.categories;
  const blocked = { total: 0, byCategory: zeroed(cats) };
  const monitoredReq = { total: 0, byCategory: zeroed(cats) };
  const perDay = new Map<string, { requests: number; images: number }>();
  for (const d of days(input.from, end)) perDay.set(d, { requests: 0, images: 0 });
  const dayOf = (d: string | null | undefined) => {
    const key = d ?? 'unknown';
    let v = perDay.get(key);
    if (!v) perDay.set(key, (v = { requests: 0, images: 0 }));
    return v;
  };
  for (const r of input.verdictCounts) {
    const category = r.key.category ?? 'none';
    if (r.key.action === 'block') {
      blocked.total += r.n;
      add(blocked.byCategory, category, r.n);
      dayOf(r.key.day).requests += r.n;
    } else if (r.key.action === 'monitor') {
      monitoredReq.total += r.n;
      add(monitoredReq.byCategory, category, r.n);
    }
  }
  const images = { total: 0, byCategory: zeroed(cats), byMatch: zeroed(['md5', 'sha1', 'sha256', 'pdq']) };
  const imagePairs = new Map<string, { category: string; match: string; count: number }>();
  const monitoredImg = { total: 0, byCategory: zeroed(cats) };
  for (const r of input.imageCounts) {
    const category = r.key.category ?? 'none';
    const match = r.key.match ?? 'unknown';
    if (r.key.action === 'block') {
      images.total += r.n;
      add(images.byCategory, category, r.n);
      add(images.byMatch, match, r.n);
      const k = `${category}\u0000${match}`;
      const p = imagePairs.get(k) ?? { category, match, count: 0 };
      p.count += r.n;
      imagePairs.set(k, p);
      dayOf(r.key.day).images += r.n;
    } else if (r.key.action === 'monitor') {
      monitoredImg.total += r.n;
      add(monitoredImg.byCategory, category, r.n);
    }
  }
  return {
    period: { from: iso(input.from), to: iso(input.to), measuredUntil: iso(end), seconds: (end - input.from) / 1000 },
    generatedAt: iso(input.generatedAt),
    journal: input.journalPath,
    generator: input.generator ?? null,
    appliance: input.appliance ?? null,
    policies: policiesOver(input, end),
    checkpoint: input.checkpoint ?? null,
    blockedRequests: blocked,
    blockedImages: {
      ...images,
      byCategoryAndMatch: [...imagePairs.values()].sort((a, b) => a.category.localeCompare(b.category) || a.match.localeCompare(b.match)),
    },
    monitored: { requests: monitoredReq, images: monitoredImg },
    blocksPerDay: [...perDay.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([day, v]) => ({ day, ...v })),
    lists: listsOver(input, end),
    filtering: filteringOver(input, end),
    selftests: selftestsOver(input),
    journalKeeping: keepingOver(input),
    certification: computeFigures(input.figures, { lists: input.lists, selftests: input.selftests, listsOut: listsOver(input, end), noList: NO_LIST }),
  };
}

export function reportJson(r: Report): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

/** One CSV cell (RFC 4180 quoting; a leading = + - @ is defused for spreadsheet programs). */
export function csvCell(value: string | number | null): string {
  if (value === null) return '';
  let s = typeof value === 'number' ? String(value) : value;
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Long format: section, key, subkey, value: one figure a line, easy to pivot. */
export function reportCsv(r: Report): string {
  const rows: Array<[string, string, string, string | number | null]> = [];
  rows.push(['period', 'from', '', r.period.from], ['period', 'to', '', r.period.to], ['period', 'measured_until', '', r.period.measuredUntil]);
  rows.push(['period', 'generated_at', '', r.generatedAt]);
  // Who made it and what covers it (issue 21): the csv's detached .sig signs these bytes too.
  if (r.generator !== null) rows.push(['report', 'generator', '', r.generator]);
  if (r.appliance) {
    rows.push(['appliance', 'site_id', '', r.appliance.site.id], ['appliance', 'site_name', '', r.appliance.site.name]);
    rows.push(['appliance', 'key', '', r.appliance.key], ['appliance', 'fingerprint', '', r.appliance.fingerprint]);
  }
  for (const p of r.policies) rows.push(['policy', p.version, p.inForceAtStart ? 'in_force_at_start' : 'loaded', p.since]);
  if (r.checkpoint) {
    rows.push(['checkpoint', 'size', '', r.checkpoint.size], ['checkpoint', 'root', '', r.checkpoint.root]);
    rows.push(['checkpoint', 'time', '', r.checkpoint.time], ['checkpoint', 'reason', '', r.checkpoint.reason]);
  }
  rows.push(['blocked_requests', 'total', '', r.blockedRequests.total]);
  for (const [c, n] of Object.entries(r.blockedRequests.byCategory)) rows.push(['blocked_requests', c, '', n]);
  rows.push(['blocked_images', 'total', '', r.blockedImages.total]);
  for (const [c, n] of Object.entries(r.blockedImages.byCategory)) rows.push(['blocked_images', c, '', n]);
  for (const [m, n] of Object.entries(r.blockedImages.byMatch)) rows.push(['blocked_images_by_match', m, '', n]);
  for (const p of r.blockedImages.byCategoryAndMatch) rows.push(['blocked_images', p.category, p.match, p.count]);
  rows.push(['monitored_requests', 'total', '', r.monitored.requests.total]);
  for (const [c, n] of Object.entries(r.monitored.requests.byCategory)) rows.push(['monitored_requests', c, '', n]);
  rows.push(['monitored_images', 'total', '', r.monitored.images.total]);
  for (const [c, n] of Object.entries(r.monitored.images.byCategory)) rows.push(['monitored_images', c, '', n]);
  for (const d of r.blocksPerDay) rows.push(['blocks_per_day', d.day, 'requests', d.requests], ['blocks_per_day', d.day, 'images', d.images]);
  for (const l of r.lists) {
    rows.push(['list', l.list, 'loads', l.loads], ['list', l.list, 'refreshes', l.refreshes], ['list', l.list, 'failures', l.failures]);
    rows.push(['list', l.list, 'last_success', l.lastSuccess], ['list', l.list, 'largest_gap_seconds', l.largestGapSeconds]);
  }
  const f = r.filtering;
  rows.push(['filtering', 'active_fraction', '', f.activeFraction]);
  rows.push(['filtering', 'active_seconds', '', f.activeSeconds], ['filtering', 'inactive_seconds', '', f.inactiveSeconds]);
  rows.push(['filtering', 'down_seconds', '', f.downSeconds]);
  rows.push(['selftest', 'total', '', r.selftests.total], ['selftest', 'passed', '', r.selftests.passed], ['selftest', 'failed', '', r.selftests.failed]);
  for (const [c, v] of Object.entries(r.selftests.byCategory)) rows.push(['selftest', c, 'passed', v.passed], ['selftest', c, 'failed', v.failed]);
  const j = r.journalKeeping;
  rows.push(['journal', 'aggregated_events', '', j.aggregatedEvents], ['journal', 'aggregate_rows', '', j.aggregateRows]);
  for (const [k, n] of Object.entries(j.aggregatedByReason)) rows.push(['journal', 'aggregated_events', k, n]);
  rows.push(['journal', 'lost_events', '', j.lostEvents]);
  for (const [k, n] of Object.entries(j.lostByReason)) rows.push(['journal', 'lost_events', k, n]);
  rows.push(...figuresCsvRows(r.certification));
  const lines = [['section', 'key', 'subkey', 'value'], ...rows].map((row) => row.map((v) => csvCell(v)).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export { reportHtml } from './report-html.js';
