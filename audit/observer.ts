/**
 * The Observer: what the proxy calls to report what happened, without knowing prom-client or the
 * journal. `metricsObserver` (here) feeds the metrics, `journalObserver` (audit/journal.ts) the
 * journal, and `combineObservers` fans one event out to both, isolating a failing one.
 */
import type { BypassKind, DnsMalformedAction, ImageScanResult, InterceptOutcome, LimitName, Metrics } from './metric-types.js';

export type { BypassKind, DnsMalformedAction } from './metric-types.js';

export interface VerdictEvent {
  listener: 'forward' | 'http' | 'tls' | 'dns' | 'selftest';
  protocol: 'http' | 'connect' | 'tls' | 'https' | 'dns';
  action: 'allow' | 'block' | 'monitor' | 'error';
  /** Category of the matching list; null when no list matched. */
  category: string | null;
  /** Id of the matching list; null when no list matched. */
  list: string | null;
  durationSeconds: number;
  /** Full URL or host; kept in the journal only when journal.recordUrls is on, never in metrics. */
  url?: string;
  /** Client address; kept in the journal only when journal.recordClients is on, never in metrics. */
  client?: string;
  /**
   * What was decided on (a host, `host:port` or URL), given for blocks and monitors only: the
   * journal keeps just its keyed hash (audit/site-tag.ts) to count distinct blocked sites; never
   * stored, logged or exported as it is.
   */
  site?: string;
  /**
   * Who the journal's per-client budget counts this under (an IPv4 address or an IPv6 /64), given
   * even when recordClients is off: it stays in memory for a minute, is never stored or exported.
   */
  budgetKey?: string;
}

export interface ImageBlockedEvent {
  category: string;
  match: 'md5' | 'sha1' | 'sha256' | 'pdq';
  list: string;
  action: 'block' | 'monitor';
}

export interface Observer {
  verdict(e: VerdictEvent): void;
  clientHello(result: 'sni' | 'no_sni' | 'ech' | 'malformed' | 'timeout' | 'not_tls'): void;
  upstreamError(reason: 'connect' | 'timeout' | 'resolve' | 'refused_destination' | 'tls' | 'reset' | 'other'): void;
  limitHit(limit: LimitName): void;
  connectionOpened(listener: string): void;
  connectionClosed(listener: string): void;
  imageScanned(result: ImageScanResult): void;
  imageBlocked(e: ImageBlockedEvent): void;
  /** A TLS connection of an intercepting profile (optional: observers that do not count it omit it). */
  interception?(outcome: InterceptOutcome): void;
  /** A CONNECT whose SNI disagrees with its authority (optional, like interception). */
  fronting?(action: 'allow' | 'block'): void;
  /** A DNS counter-measure against a filter bypass was applied (optional, like interception). */
  bypass?(kind: BypassKind): void;
  /** A DNS query could not be read: answered FORMERR or dropped (optional). */
  dnsMalformed?(action: DnsMalformedAction): void;
}

/** An Observer that does nothing (tests, and serve before evidence is wired). */
export const nullObserver: Observer = {
  verdict() {},
  clientHello() {},
  upstreamError() {},
  limitHit() {},
  connectionOpened() {},
  connectionClosed() {},
  imageScanned() {},
  imageBlocked() {},
};

/** Metrics only: every verdict counts (allows too); url and client are never looked at. */
export function metricsObserver(m: Metrics): Observer {
  return {
    verdict(e) {
      m.requests.inc({ listener: e.listener, protocol: e.protocol, action: e.action, category: e.category });
      m.decisionDuration.observe(e.durationSeconds);
      // Hits per list: what a list blocked or would have blocked, canaries left out (as in reports).
      if (e.list !== null && (e.action === 'block' || e.action === 'monitor') && e.listener !== 'selftest') m.listHits.inc(e.list);
    },
    clientHello: (r) => m.clientHello.inc(r),
    upstreamError: (r) => m.upstreamErrors.inc(r),
    limitHit: (l) => m.limitsHit.inc(l),
    interception: (o) => m.intercepts.inc(o),
    fronting: (a) => m.fronting.inc(a),
    bypass: (k) => m.bypass.inc(k),
    dnsMalformed: (a) => m.dnsMalformed.inc(a),
    connectionOpened: (l) => m.connectionsActive.inc(l),
    connectionClosed: (l) => m.connectionsActive.dec(l),
    imageScanned: (r) => m.imagesScanned.inc(r),
    imageBlocked(e) {
      m.listHits.inc(e.list);
      if (e.action === 'monitor') m.imagesMonitored.inc({ category: e.category, match: e.match });
      else m.imagesBlocked.inc({ category: e.category, match: e.match });
    },
  };
}

/** Observers made by combineObservers: combining one of them alone again adds nothing. */
const combined = new WeakSet<Observer>();

/**
 * Fan one event out to several observers. An observer that throws is not allowed to break the
 * proxy or the other observers: the error goes to `onError` (default: ignored after the first
 * report on stderr). Every Observer method takes one argument: the fan-out passes it on without
 * rest parameters (this runs several times per connection). An already combined observer given
 * alone is returned as it is, so layers that each guard themselves do not stack wrappers.
 */
export function combineObservers(...observers: Observer[]): Observer {
  if (observers.length === 1 && combined.has(observers[0]!)) return observers[0]!;
  let reported = false;
  const onError = (err: unknown): void => {
    if (reported) return;
    reported = true;
    process.stderr.write(`safespot: an evidence observer failed (further failures not shown): ${String(err)}\n`);
  };
  const each = <K extends keyof Observer>(key: K) =>
    ((arg: unknown) => {
      for (const o of observers) {
        try {
          (o[key] as (a: unknown) => void)(arg);
        } catch (err) {
          onError(err);
        }
      }
    }) as Observer[K];
  const out: Observer = {
    verdict: each('verdict'),
    clientHello: each('clientHello'),
    upstreamError: each('upstreamError'),
    limitHit: each('limitHit'),
    connectionOpened: each('connectionOpened'),
    connectionClosed: each('connectionClosed'),
    imageScanned: each('imageScanned'),
    imageBlocked: each('imageBlocked'),
    interception(outcome) {
      for (const o of observers) {
        try {
          o.interception?.(outcome);
        } catch (err) {
          onError(err);
        }
      }
    },
    fronting(action) {
      for (const o of observers) {
        try {
          o.fronting?.(action);
        } catch (err) {
          onError(err);
        }
      }
    },
    bypass(kind) {
      for (const o of observers) {
        try {
          o.bypass?.(kind);
        } catch (err) {
          onError(err);
        }
      }
    },
    dnsMalformed(action) {
      for (const o of observers) {
        try {
          o.dnsMalformed?.(action);
        } catch (err) {
          onError(err);
        }
      }
    },
  };
  combined.add(out);
  return out;
}
