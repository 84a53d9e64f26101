/**
 * What the rest of safespot sees of the metrics: the closed label sets (each a list and its typed
 * union) and the typed `Metrics` handle that audit/metrics.ts builds on prom-client. Kept apart
 * from the definitions: this is the contract (which label values exist, what a caller may call),
 * audit/metrics.ts is the prom-client machinery behind it. audit/metrics.ts re-exports everything
 * here, so importers keep using audit/metrics.js.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import type { Registry } from 'prom-client';

// ---------------------------------------------------------------------------------------------
// Closed label sets
// ---------------------------------------------------------------------------------------------

export const LISTENERS = ['forward', 'http', 'tls', 'dns', 'selftest'] as const;
export type ListenerLabel = (typeof LISTENERS)[number];
/** Listeners that hold connections (the admin listener counts its own). */
export const CONNECTION_LISTENERS = ['forward', 'http', 'tls', 'dns', 'admin', 'other'] as const;
export type ConnectionListener = (typeof CONNECTION_LISTENERS)[number];
export const PROTOCOLS = ['http', 'connect', 'tls', 'https', 'dns'] as const;
export type ProtocolLabel = (typeof PROTOCOLS)[number];
export const ACTIONS = ['allow', 'block', 'monitor', 'error'] as const;
export type ActionLabel = (typeof ACTIONS)[number];
/**
 * `partial`: the origin sent only a 206 part even when asked for the whole (a part has no hash to
 * match); `over_budget`: holding it would pass images.maxHeldBytes, the bytes all held images share.
 */
export const IMAGE_SCAN_RESULTS = ['scanned', 'too_large', 'timeout', 'undecodable', 'not_image', 'partial', 'over_budget'] as const;
export type ImageScanResult = (typeof IMAGE_SCAN_RESULTS)[number];
export const MATCH_TYPES = ['md5', 'sha1', 'sha256', 'pdq'] as const;
export type MatchType = (typeof MATCH_TYPES)[number];
export const CLIENT_HELLO_RESULTS = ['sni', 'no_sni', 'ech', 'malformed', 'timeout', 'not_tls'] as const;
export type ClientHelloResult = (typeof CLIENT_HELLO_RESULTS)[number];
export const UPSTREAM_ERROR_REASONS = ['connect', 'timeout', 'resolve', 'refused_destination', 'tls', 'reset', 'other'] as const;
export type UpstreamErrorReason = (typeof UPSTREAM_ERROR_REASONS)[number];
export const LIMITS = [
  'connections',
  'connections_per_client',
  'header_size',
  'headers_timeout',
  'idle_timeout',
  'client_hello_timeout',
  'client_forbidden',
  'body_size',
  'ambiguous_path',
  'dns_rate',
] as const;
export type LimitName = (typeof LIMITS)[number];
/**
 * What happened to a TLS connection of a profile that intercepts (proxy/intercept.ts): terminated
 * with a minted certificate, spliced because the host is excluded, refused because no certificate
 * could be minted, or ended because the client did not accept ours (a device without the CA).
 */
export const INTERCEPT_OUTCOMES = ['intercepted', 'excluded', 'mint_failed', 'client_handshake_failed', 'mint_budget'] as const;
export type InterceptOutcome = (typeof INTERCEPT_OUTCOMES)[number];
/**
 * Counter-measures of the DNS listener against filter bypasses (safespot_bypass_total{kind};
 * docs/dns.md says what each one does and does not stop).
 */
export const BYPASS_KINDS = [
  'encrypted_dns_canary',
  'private_relay',
  'designated_resolver',
  'ech_removed',
  'encrypted_dns_endpoint',
  'cname_cloaking',
  'https_refused',
] as const;
export type BypassKind = (typeof BYPASS_KINDS)[number];
/** DNS queries that could not be read: answered FORMERR (a header to answer to) or dropped. */
export const DNS_MALFORMED_ACTIONS = ['formerr', 'dropped'] as const;
export type DnsMalformedAction = (typeof DNS_MALFORMED_ACTIONS)[number];
/** Why a list refresh failed (the reason label of safespot_policy_refresh_failures_total). */
export const REFRESH_FAILURE_REASONS = ['read', 'http', 'timeout', 'invalid', 'checksum', 'signature', 'shrink', 'too_large', 'other'] as const;
export type RefreshFailureReason = (typeof REFRESH_FAILURE_REASONS)[number];

/** Why journal events went into per-minute aggregate rows (audit/journal-budget.ts). */
export const JOURNAL_AGGREGATE_REASONS = ['rate', 'budget', 'queue'] as const;
/** Why journal events could not be kept (each counted in a journal_loss row). */
export const JOURNAL_LOSS_REASONS = ['queue_full', 'worker_queue', 'overflow'] as const;

/** The journal's own figures, read at every scrape (a plain shape: metrics do not import the journal). */
export interface JournalFigures {
  sizeBytes: number;
  budgetBytes: number;
  alertBytes: number;
  /** Totals since the journal opened. */
  aggregated: Readonly<Record<string, number>>;
  lost: Readonly<Record<string, number>>;
}

/** Categories used when the caller names none (the ones DESIGN.md names). */
export const DEFAULT_CATEGORIES = ['csam', 'adult', 'malware', 'bypass'] as const;
/** Category label of a verdict that matched no list (allows, errors). */
export const NO_CATEGORY = 'none';
/** What any value outside a closed set becomes. */
export const OTHER = 'other';

// ---------------------------------------------------------------------------------------------
// The typed handles
// ---------------------------------------------------------------------------------------------

export interface RequestLabels {
  listener: ListenerLabel;
  protocol: ProtocolLabel;
  action: ActionLabel;
  /** A configured category, or null/'none' for a verdict that matched no list. */
  category: string | null;
}

export interface Metrics {
  readonly registry: Registry;
  /** The closed set of category label values (configured categories, 'none', 'other'). */
  readonly categories: readonly string[];
  /** The closed set of list label values (configured list ids, 'other'). */
  readonly lists: readonly string[];
  readonly requests: { inc(labels: RequestLabels, n?: number): void };
  readonly imagesScanned: { inc(result: ImageScanResult, n?: number): void };
  readonly imagesBlocked: { inc(labels: { category: string; match: MatchType }, n?: number): void };
  /** Image matches of lists in monitor mode (would have been blocked). */
  readonly imagesMonitored: { inc(labels: { category: string; match: MatchType }, n?: number): void };
  readonly decisionDuration: { observe(seconds: number): void };
  readonly connectionsActive: { inc(listener: string): void; dec(listener: string): void; set(listener: string, n: number): void };
  readonly clientHello: { inc(result: ClientHelloResult): void };
  readonly upstreamErrors: { inc(reason: UpstreamErrorReason): void };
  readonly limitsHit: { inc(limit: LimitName): void };
  readonly intercepts: { inc(outcome: InterceptOutcome): void };
  /** CONNECTs whose SNI named another host than the CONNECT authority (domain fronting), by the action taken. */
  readonly fronting: { inc(action: 'allow' | 'block'): void };
  /** A DNS counter-measure applied (safespot_bypass_total). */
  readonly bypass: { inc(kind: BypassKind): void };
  /** A DNS query that could not be read (safespot_dns_malformed_total). */
  readonly dnsMalformed: { inc(action: DnsMalformedAction): void };
  readonly policyEntries: { set(list: string, entries: number): void };
  /** Unix time in seconds of the last successful load or refresh of a list. */
  readonly policyLastRefresh: { set(list: string, unixSeconds: number): void };
  /** Each list's configured refresh interval in seconds (0: refreshed only on reload), so staleness alerts are exact. */
  readonly policyRefreshInterval: { set(list: string, seconds: number): void };
  readonly policyRefreshFailures: { inc(list: string, reason: RefreshFailureReason): void };
  /** A list matched a request, name or image that was blocked or monitored (safespot_list_hits_total; canaries not counted). */
  readonly listHits: { inc(list: string): void };
  /** Replaces the one series of safespot_policy_info with the given bundle version. */
  readonly policyInfo: { set(version: string): void };
  readonly filteringActive: { set(active: boolean): void };
  /** Per category: 1 only when every canary of the category passed its last self-test. */
  readonly selftestSuccess: { set(category: string, ok: boolean): void };
  /** safespot_appliance_info{site, fingerprint}: the site id and the signing key's fingerprint (audit/identity.ts). */
  readonly applianceInfo: { set(site: string, fingerprint: string): void };
  /** Per canary, by its configured id (never its URL). */
  readonly selftestCanary: { set(id: string, ok: boolean): void };
  readonly selftestLastRun: { set(unixSeconds: number): void };
  /** A worker process died unexpectedly and was started again (`workers` > 1; serve/cluster.ts). */
  readonly workerRestarts: { inc(): void };
  /** The process that writes the journal hands its figures here once; every scrape reads them. */
  watchJournal(figures: () => JournalFigures): void;
  /** Create every known label combination at 0 so that increase() works from the first event. */
  preinitialise(): void;
  /** Names of every metric in the registry (ours and the chosen default metrics). */
  names(): string[];
  /** The exposition text (what /metrics serves). */
  text(): Promise<string>;
}
