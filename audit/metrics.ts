/**
 * Every Prometheus metric of safespot, defined here and nowhere else (docs/metrics.md lists the same
 * names; test/unit/metrics.test.ts keeps the two equal).
 *
 * Labels come only from closed sets: listener, protocol, action and the other enums of
 * metric-types.ts are typed unions, categories and list ids are the ones named in the
 * configuration. Anything else is clamped to `other` (never passed through), so a bug or a hostile
 * input can neither put a host, URL, hash or client address into a label nor blow up the number of
 * series.
 *
 * The proxy does not see prom-client: it calls the small `Observer` interface, and `serve` plugs in
 * `metricsObserver` (observer.ts) and `journalObserver` (audit/journal.ts) through `combineObservers`.
 *
 * With `workers` > 1 (appliance/serve/cluster.ts) the primary's /metrics merges its own registry
 * and every worker's with prom-client's AggregatorRegistry, which applies each metric's
 * `aggregator`: counters, histograms and connection gauges sum (each process counts its own
 * traffic); gauges that state one fact about the appliance take `max` (policy entries, refresh
 * times, policy and build info, last self-test) or `min` (filtering active: 1 only when every
 * process holds a policy; self-test success). Nothing that must not add up is summed. The
 * prom-client defaults we export, and their aggregation, are chosen in metrics-defaults.ts.
 *
 * This module re-exports metric-types.ts (label sets, the Metrics handle), observer.ts and
 * DEFAULT_METRICS_EXPORTED, so importers need only audit/metrics.js.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import {
  ACTIONS,
  CLIENT_HELLO_RESULTS,
  CONNECTION_LISTENERS,
  DEFAULT_CATEGORIES,
  IMAGE_SCAN_RESULTS,
  INTERCEPT_OUTCOMES,
  JOURNAL_AGGREGATE_REASONS,
  JOURNAL_LOSS_REASONS,
  LIMITS,
  LISTENERS,
  MATCH_TYPES,
  NO_CATEGORY,
  OTHER,
  PROTOCOLS,
  REFRESH_FAILURE_REASONS,
  BYPASS_KINDS,
  DNS_MALFORMED_ACTIONS,
  UPSTREAM_ERROR_REASONS,
  type JournalFigures,
  type ListenerLabel,
  type Metrics,
  type ProtocolLabel,
} from './metric-types.js';
import { registerChosenDefaults } from './metrics-defaults.js';
import { flushCounts, TallyCells, TallyHistogram } from './tally.js';

export * from './metric-types.js';
export { DEFAULT_METRICS_EXPORTED } from './metrics-defaults.js';
// The Observer lives in observer.ts; re-exported so existing imports keep working.
export * from './observer.js';

/**
 * Decision latency buckets: 1 µs to 10 ms, roughly 1-2.5-5 per decade. A hashed lookup is a few
 * microseconds; anything past 10 ms lands in +Inf and is worth an alert.
 */
export const DECISION_BUCKETS: readonly number[] = [
  1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
];

/** Label values of safespot_policy_info{version} and safespot_build_info{version}: short, plain. */
const VERSION_RE = /^[A-Za-z0-9._+-]{1,64}$/;

function clamp<T extends string>(value: string | null | undefined, set: ReadonlySet<string>, fallback: T): T {
  return (typeof value === 'string' && set.has(value) ? value : fallback) as T;
}

export interface CreateMetricsOptions {
  /** Registry to register into; a fresh one by default (never prom-client's global registry). */
  registry?: Registry;
  /** Export the chosen prom-client process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
  /** Configured list categories (the category label's closed set, plus 'none' and 'other'). */
  categories?: readonly string[];
  /** Configured list ids (the list label's closed set, plus 'other'). */
  lists?: readonly string[];
  /** Configured self-test canaries: the canary label's closed set (ids from the config, plus 'other'). */
  canaries?: ReadonlyArray<{ id: string; category: string }>;
  /** Configured listeners; pre-initialised series are created for these (default all). */
  listeners?: readonly ListenerLabel[];
  /** safespot_build_info{version}; read from package.json by default. */
  version?: string;
  /** Call preinitialise() at creation (default true). */
  preinitialise?: boolean;
}

/** Protocols each listener can report, for pre-initialisation only (labels are not restricted by it). */
const PROTOCOLS_OF: Record<ListenerLabel, readonly ProtocolLabel[]> = {
  forward: ['http', 'connect', 'tls', 'https'],
  http: ['http'],
  tls: ['tls', 'https'],
  dns: ['dns'],
  selftest: ['http', 'connect', 'tls', 'dns'],
};

let packageVersion: string | undefined;
/** Our own version from package.json (the module sits in audit/ or dist/audit/). */
export function safespotVersion(): string {
  if (packageVersion !== undefined) return packageVersion;
  packageVersion = '0.0.0';
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'safespot' && typeof pkg.version === 'string') {
        packageVersion = pkg.version;
        break;
      }
    } catch {
      // not here: one folder up
    }
    dir = dirname(dir);
  }
  return packageVersion;
}

export function createMetrics(opts: CreateMetricsOptions = {}): Metrics {
  const registry = opts.registry ?? new Registry();
  const registers = [registry];
  const categoryList = uniq([...(opts.categories ?? DEFAULT_CATEGORIES), NO_CATEGORY, OTHER]);
  const categorySet = new Set(categoryList);
  // Block/monitor series use real categories only; 'none' is the category of allows and errors.
  const blockCategories = categoryList.filter((c) => c !== NO_CATEGORY);
  const listList = uniq([...(opts.lists ?? []), OTHER]);
  const listSet = new Set(listList);
  const listenerSet = new Set<string>(LISTENERS);
  const protocolSet = new Set<string>(PROTOCOLS);
  const actionSet = new Set<string>(ACTIONS);
  const connListenerSet = new Set<string>(CONNECTION_LISTENERS);
  const imageResultSet = new Set<string>(IMAGE_SCAN_RESULTS);
  const matchSet = new Set<string>(MATCH_TYPES);
  const helloSet = new Set<string>(CLIENT_HELLO_RESULTS);
  const upstreamSet = new Set<string>(UPSTREAM_ERROR_REASONS);
  const limitSet = new Set<string>(LIMITS);
  const interceptSet = new Set<string>(INTERCEPT_OUTCOMES);
  const refreshReasonSet = new Set<string>(REFRESH_FAILURE_REASONS);
  const bypassSet = new Set<string>(BYPASS_KINDS);
  const dnsMalformedSet = new Set<string>(DNS_MALFORMED_ACTIONS);

  const cat = (c: string | null | undefined): string => (c === null || c === undefined ? NO_CATEGORY : clamp(c, categorySet, OTHER));
  const list = (l: string): string => clamp(l, listSet, OTHER);
  const count = (n: number | undefined): number => (n === undefined ? 1 : Number.isFinite(n) && n >= 0 ? n : 0);

  // The per-connection counters are tallies (tally.ts): plain numbers on the hot path, handed to
  // prom-client by each metric's collect, which prom-client runs before every read of its values.
  const requestCells = new TallyCells(4, ([listener, protocol, action, category]) => ({ listener, protocol, action, category }));
  const helloCells = new TallyCells(1, ([result]) => ({ result }));
  const connectionCells = new TallyCells(1, ([listener]) => ({ listener }));
  const listHitCells = new TallyCells(1, ([list]) => ({ list }));
  const requests = new Counter({
    name: 'safespot_requests_total',
    help: 'Verdicts on guest requests and connections, by listener, protocol, action and list category.',
    labelNames: ['listener', 'protocol', 'action', 'category'] as const,
    registers,
    collect: () => flushCounts(requestCells, (labels, n) => requests.inc(labels, n)),
  });
  const imagesScanned = new Counter({
    name: 'safespot_images_scanned_total',
    help: 'Images seen by the image tap, by outcome (only "scanned" means hashed and matched).',
    labelNames: ['result'] as const,
    registers,
  });
  const imagesBlocked = new Counter({
    name: 'safespot_images_blocked_total',
    help: 'Images replaced because they matched an image hash list, by category and match type.',
    labelNames: ['category', 'match'] as const,
    registers,
  });
  const imagesMonitored = new Counter({
    name: 'safespot_images_monitored_total',
    help: 'Images that matched a list in monitor mode (would have been blocked), by category and match type.',
    labelNames: ['category', 'match'] as const,
    registers,
  });
  const decisionDuration = new TallyHistogram(
    'safespot_decision_duration_seconds',
    'Time spent in the policy decision for one request, connection or image.',
    DECISION_BUCKETS,
  );
  registry.registerMetric(decisionDuration as unknown as Metric);
  const connectionsActive = new Gauge({
    name: 'safespot_connections_active',
    help: 'Guest connections currently open, by listener.',
    labelNames: ['listener'] as const,
    aggregator: 'sum', // each worker holds its own connections
    registers,
    collect: () => {
      for (const c of connectionCells.cells()) connectionsActive.set(c.labels, c.n);
    },
  });
  const clientHello = new Counter({
    name: 'safespot_client_hello_total',
    help: 'TLS ClientHello outcomes: sni, no_sni, ech, malformed, timeout, not_tls.',
    labelNames: ['result'] as const,
    registers,
    collect: () => flushCounts(helloCells, (labels, n) => clientHello.inc(labels, n)),
  });
  const upstreamErrors = new Counter({
    name: 'safespot_upstream_errors_total',
    help: 'Failures reaching or talking to upstream servers, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const limitsHit = new Counter({
    name: 'safespot_limits_hit_total',
    help: 'Connections or requests refused or ended by a configured limit, by limit.',
    labelNames: ['limit'] as const,
    registers,
  });
  const fronting = new Counter({
    name: 'safespot_sni_mismatch_total',
    help: 'CONNECTs whose ClientHello SNI named another host than the CONNECT authority (domain fronting), by the action taken.',
    labelNames: ['action'] as const,
    registers,
  });
  const bypass = new Counter({
    name: 'safespot_bypass_total',
    help: 'Counter-measures of the DNS listener against filter bypasses, by kind (docs/dns.md).',
    labelNames: ['kind'] as const,
    registers,
  });
  const dnsMalformed = new Counter({
    name: 'safespot_dns_malformed_total',
    help: 'DNS queries that could not be read, by what was done: formerr (answered FORMERR) or dropped.',
    labelNames: ['action'] as const,
    registers,
  });
  const intercepts = new Counter({
    name: 'safespot_intercept_connections_total',
    help: 'TLS connections of intercepting profiles: intercepted, excluded (spliced), mint_failed, client_handshake_failed.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const policyEntries = new Gauge({
    name: 'safespot_policy_entries',
    help: 'Entries in the currently loaded version of each list.',
    labelNames: ['list'] as const,
    aggregator: 'max',
    registers,
  });
  const policyLastRefresh = new Gauge({
    name: 'safespot_policy_last_refresh_timestamp_seconds',
    help: 'Unix time of the last successful load or refresh of each list.',
    labelNames: ['list'] as const,
    aggregator: 'max',
    registers,
  });
  const policyRefreshInterval = new Gauge({
    name: 'safespot_policy_refresh_interval_seconds',
    help: 'Configured refresh interval of each list (0: the list is reloaded only on SIGHUP or POST /reload).',
    labelNames: ['list'] as const,
    aggregator: 'max',
    registers,
  });
  const policyRefreshFailures = new Counter({
    name: 'safespot_policy_refresh_failures_total',
    help: 'Failed list loads or refreshes (the last good version stays in use), by list and reason.',
    labelNames: ['list', 'reason'] as const,
    registers,
  });
  const listHits = new Counter({
    name: 'safespot_list_hits_total',
    help: 'Blocked or monitored requests, DNS names and images, by the list that matched (configured list ids; self-test canaries not counted).',
    labelNames: ['list'] as const,
    registers,
    collect: () => flushCounts(listHitCells, (labels, n) => listHits.inc(labels, n)),
  });
  const policyInfo = new Gauge({
    name: 'safespot_policy_info',
    help: 'Always 1; the version label names the policy bundle in use.',
    labelNames: ['version'] as const,
    aggregator: 'max',
    registers,
  });
  const filteringActive = new Gauge({
    name: 'safespot_filtering_active',
    help: '1 while a valid policy is loaded and enforced, 0 otherwise (fail closed: nothing is forwarded).',
    // With workers: 1 only when the primary and every worker hold a policy.
    aggregator: 'min',
    registers,
  });
  const selftestSuccess = new Gauge({
    name: 'safespot_selftest_success',
    help: '1 if the last self-test blocked every canary of the category, 0 if any one was not blocked.',
    labelNames: ['category'] as const,
    aggregator: 'min',
    registers,
  });
  const selftestCanary = new Gauge({
    name: 'safespot_selftest_canary_success',
    help: '1 if the last self-test blocked this canary under its category, 0 if it did not (canary: its id from the config).',
    labelNames: ['canary', 'category'] as const,
    aggregator: 'min',
    registers,
  });
  const applianceInfo = new Gauge({
    name: 'safespot_appliance_info',
    help: "Always 1; names the site (site.id) and the fingerprint of the key that signs the journal's checkpoints and reports.",
    labelNames: ['site', 'fingerprint'] as const,
    aggregator: 'max',
    registers,
  });
  const canaryCategory = new Map((opts.canaries ?? []).map((c) => [c.id, c.category]));
  const selftestLastRun = new Gauge({
    name: 'safespot_selftest_last_run_timestamp_seconds',
    help: 'Unix time of the last self-test run.',
    aggregator: 'max',
    registers,
  });
  const workerRestarts = new Counter({
    name: 'safespot_worker_restarts_total',
    help: 'Worker processes that died unexpectedly and were started again (workers > 1).',
    registers,
  });
  const buildInfo = new Gauge({
    name: 'safespot_build_info',
    help: 'Always 1; labels name the safespot and Node.js versions.',
    labelNames: ['version', 'node'] as const,
    aggregator: 'max',
    registers,
  });
  // The journal's figures (issue 22, finding 8): read from the journal at each scrape. Only the
  // process that writes the journal watches it; elsewhere (workers) they stay 0, which the
  // aggregation (sum for counters, max for the gauges) leaves as the writer's values.
  let journalFigures: (() => JournalFigures) | null = null;
  const journalGauge = (name: string, help: string, pick: (f: JournalFigures) => number) => {
    const g: Gauge = new Gauge({
      name,
      help,
      aggregator: 'max',
      registers,
      collect: () => {
        if (journalFigures) g.set(pick(journalFigures()));
      },
    });
    return g;
  };
  journalGauge('safespot_journal_size_bytes', 'Bytes the audit journal uses (its pages in use plus its WAL).', (f) => f.sizeBytes);
  journalGauge('safespot_journal_budget_bytes', 'journal.maxBytes: past it, blocks are kept only as per-minute counts.', (f) => f.budgetBytes);
  journalGauge('safespot_journal_alert_bytes', 'journal.maxBytes × journal.alertPercent / 100: the size at which the journal warns.', (f) => f.alertBytes);
  /** A counter that follows a total kept elsewhere: each collect adds what grew since the last one. */
  const journalCounter = (name: string, help: string, reasons: readonly string[], pick: (f: JournalFigures) => Readonly<Record<string, number>>) => {
    const seen = new Map<string, number>();
    const c: Counter<'reason'> = new Counter({
      name,
      help,
      labelNames: ['reason'] as const,
      registers,
      collect: () => {
        if (!journalFigures) return;
        const totals = pick(journalFigures());
        for (const reason of reasons) {
          const now = totals[reason] ?? 0;
          const grown = now - (seen.get(reason) ?? 0);
          if (grown > 0) c.inc({ reason }, grown);
          seen.set(reason, now);
        }
      },
    });
    return c;
  };
  const journalAggregated = journalCounter(
    'safespot_journal_events_aggregated_total',
    'Blocks and image matches the journal kept in per-minute aggregate rows (counted exactly, without URL or client), by reason.',
    JOURNAL_AGGREGATE_REASONS,
    (f) => f.aggregated,
  );
  const journalLost = journalCounter(
    'safespot_journal_events_lost_total',
    'Events the audit journal could not keep (each counted in a journal_loss row of the journal), by reason.',
    JOURNAL_LOSS_REASONS,
    (f) => f.lost,
  );

  const version = opts.version !== undefined && VERSION_RE.test(opts.version) ? opts.version : safespotVersion();
  buildInfo.set({ version, node: process.versions.node }, 1);
  filteringActive.set(0);

  if (opts.defaultMetrics ?? true) registerChosenDefaults(registry);

  const listeners = opts.listeners ?? LISTENERS;
  const connectionCell = (l: string) => connectionCells.cell(clamp(l, connListenerSet, OTHER));
  const metrics: Metrics = {
    registry,
    categories: categoryList,
    lists: listList,
    requests: {
      inc(l, n) {
        const cell = requestCells.cell(
          clamp(l.listener, listenerSet, OTHER),
          clamp(l.protocol, protocolSet, OTHER),
          clamp(l.action, actionSet, OTHER),
          cat(l.category),
        );
        cell.n += count(n);
      },
    },
    imagesScanned: { inc: (r, n) => imagesScanned.inc({ result: clamp(r, imageResultSet, OTHER) }, count(n)) },
    imagesBlocked: {
      inc: (l, n) => imagesBlocked.inc({ category: cat(l.category), match: clamp(l.match, matchSet, OTHER) }, count(n)),
    },
    imagesMonitored: {
      inc: (l, n) => imagesMonitored.inc({ category: cat(l.category), match: clamp(l.match, matchSet, OTHER) }, count(n)),
    },
    decisionDuration: {
      observe(seconds) {
        if (Number.isFinite(seconds) && seconds >= 0) decisionDuration.observe(seconds);
      },
    },
    connectionsActive: {
      inc: (l) => void connectionCell(l).n++,
      dec: (l) => void connectionCell(l).n--,
      set: (l, n) => void (connectionCell(l).n = Number.isFinite(n) ? n : 0),
    },
    clientHello: { inc: (r) => void helloCells.cell(clamp(r, helloSet, OTHER)).n++ },
    upstreamErrors: { inc: (r) => upstreamErrors.inc({ reason: clamp(r, upstreamSet, OTHER) }) },
    limitsHit: { inc: (l) => limitsHit.inc({ limit: clamp(l, limitSet, OTHER) }) },
    intercepts: { inc: (o) => intercepts.inc({ outcome: clamp(o, interceptSet, OTHER) }) },
    fronting: { inc: (a) => fronting.inc({ action: a === 'block' ? 'block' : 'allow' }) },
    bypass: { inc: (k) => bypass.inc({ kind: clamp(k, bypassSet, OTHER) }) },
    dnsMalformed: { inc: (a) => dnsMalformed.inc({ action: clamp(a, dnsMalformedSet, OTHER) }) },
    policyEntries: { set: (l, n) => policyEntries.set({ list: list(l) }, Number.isFinite(n) && n >= 0 ? n : 0) },
    policyLastRefresh: { set: (l, s) => policyLastRefresh.set({ list: list(l) }, Number.isFinite(s) ? s : 0) },
    policyRefreshInterval: { set: (l, s) => policyRefreshInterval.set({ list: list(l) }, Number.isFinite(s) && s > 0 ? s : 0) },
    policyRefreshFailures: {
      inc: (l, r) => policyRefreshFailures.inc({ list: list(l), reason: clamp(r, refreshReasonSet, OTHER) }),
    },
    listHits: { inc: (l) => void listHitCells.cell(list(l)).n++ },
    policyInfo: {
      set(v) {
        policyInfo.reset();
        policyInfo.set({ version: VERSION_RE.test(v) ? v : OTHER }, 1);
      },
    },
    filteringActive: { set: (a) => filteringActive.set(a ? 1 : 0) },
    selftestSuccess: { set: (c, ok) => selftestSuccess.set({ category: cat(c) }, ok ? 1 : 0) },
    applianceInfo: {
      set(site, fingerprint) {
        applianceInfo.reset();
        applianceInfo.set({ site: /^[a-z0-9][a-z0-9_-]{0,31}$/.test(site) ? site : OTHER, fingerprint: /^sha256:[0-9a-f]{64}$/.test(fingerprint) ? fingerprint : OTHER }, 1);
      },
    },
    selftestCanary: {
      set: (id, ok) => {
        const category = canaryCategory.get(id);
        selftestCanary.set({ canary: category === undefined ? OTHER : id, category: cat(category) }, ok ? 1 : 0);
      },
    },
    selftestLastRun: { set: (s) => selftestLastRun.set(Number.isFinite(s) ? s : 0) },
    workerRestarts: { inc: () => workerRestarts.inc() },
    watchJournal(figures) {
      journalFigures = figures;
    },
    preinitialise() {
      for (const reason of JOURNAL_AGGREGATE_REASONS) journalAggregated.inc({ reason }, 0);
      for (const reason of JOURNAL_LOSS_REASONS) journalLost.inc({ reason }, 0);
      for (const listener of listeners) {
        for (const protocol of PROTOCOLS_OF[listener]) {
          requests.inc({ listener, protocol, action: 'allow', category: NO_CATEGORY }, 0);
          requests.inc({ listener, protocol, action: 'error', category: NO_CATEGORY }, 0);
          for (const category of blockCategories) {
            requests.inc({ listener, protocol, action: 'block', category }, 0);
            requests.inc({ listener, protocol, action: 'monitor', category }, 0);
          }
        }
      }
      for (const result of IMAGE_SCAN_RESULTS) imagesScanned.inc({ result }, 0);
      for (const category of blockCategories) {
        for (const match of MATCH_TYPES) {
          imagesBlocked.inc({ category, match }, 0);
          imagesMonitored.inc({ category, match }, 0);
        }
      }
      for (const result of CLIENT_HELLO_RESULTS) clientHello.inc({ result }, 0);
      for (const reason of UPSTREAM_ERROR_REASONS) upstreamErrors.inc({ reason }, 0);
      for (const limit of LIMITS) limitsHit.inc({ limit }, 0);
      for (const outcome of INTERCEPT_OUTCOMES) intercepts.inc({ outcome }, 0);
      for (const action of ['allow', 'block']) fronting.inc({ action }, 0);
      for (const kind of BYPASS_KINDS) bypass.inc({ kind }, 0);
      for (const action of DNS_MALFORMED_ACTIONS) dnsMalformed.inc({ action }, 0);
      for (const l of listList) {
        if (l === OTHER) continue;
        for (const reason of REFRESH_FAILURE_REASONS) policyRefreshFailures.inc({ list: l, reason }, 0);
        listHits.inc({ list: l }, 0);
      }
      for (const l of listeners) if (l !== 'selftest') connectionsActive.inc({ listener: l }, 0);
    },
    names: () => registry.getMetricsAsArray().map((m) => m.name),
    text: () => registry.metrics(),
  };
  if (opts.preinitialise ?? true) metrics.preinitialise();
  return metrics;
}

function uniq(values: readonly string[]): string[] {
  return [...new Set(values)];
}
