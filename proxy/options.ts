/**
 * What startProxy receives (plain, already-valid values: appliance/ turns the config into these),
 * and the context shared by the protocol steps of one running proxy.
 */
import type { Agent } from 'node:http';
import type { Decision } from '../policy/decision.js';
import type { CidrSet } from '../policy/ip.js';
import type { BlockPageOptions } from './block-page.js';
import type { Hooks, Observer } from './hooks.js';
import type { InterceptEdgeOptions, Interception } from './intercept.js';
import type { HeldBytes } from './held-bytes.js';
import type { ConnectionGate } from './limits.js';
import type { Endpoint, Upstream } from './upstream.js';

export interface ProxyOptions {
  /** Each listener is optional; port 0 picks a free port (see ProxyHandle.addresses()). */
  readonly listeners: { readonly forward?: Endpoint; readonly http?: Endpoint; readonly tls?: Endpoint };
  /** Client networks allowed to use any listener; others are refused (403, or a TLS alert). */
  readonly clients: CidrSet;
  readonly upstream: {
    /** Static names (name -> `addr`, `addr:port`, `[v6]:port`), trusted: no private-range check. */
    readonly hosts: Readonly<Record<string, string>>;
    /** Allow destinations on loopback, link-local, private ranges and this appliance's addresses. */
    readonly allowPrivate: boolean;
    /** Ports a CONNECT may reach. */
    readonly ports: readonly number[];
    readonly connectTimeoutMs: number;
    readonly dnsCacheTtlMs: number;
    /** DNS servers (`addr` or `addr:port`); absent = the system's (/etc/resolv.conf). */
    readonly dnsServers?: readonly string[];
  };
  /** Same names as the config's `tls` (extra keys such as noSni are ignored here). */
  readonly tls: {
    /**
     * Bytes that are not TLS after a CONNECT, and not HTTP either: `block` closes, `allow` splices
     * them to the CONNECT authority. The transparent TLS listener always refuses non-TLS bytes (it
     * has no destination for them). noSni / ech / blockFronting are policy inputs: they go to
     * createPolicyHooks.
     */
    readonly notTls: 'block' | 'allow';
    /** Milliseconds (config durations arrive as milliseconds). */
    readonly clientHelloTimeout: number;
    readonly clientHelloMaxBytes: number;
  };
  /** Same names as the config's `limits`; durations in milliseconds. */
  readonly limits: {
    readonly maxConnections: number;
    readonly maxConnectionsPerClient: number;
    /** IPv6 clients are one client per prefix of this many bits (default 64; 128 = per address). */
    readonly clientIpv6Prefix?: number;
    readonly maxHeaderBytes: number;
    readonly headersTimeout: number;
    readonly idleTimeout: number;
    /** Default for close() without an argument. */
    readonly drainTimeout: number;
  };
  readonly blockPage: BlockPageOptions;
  /** Request targets (config `requests`); absent: ambiguous paths are refused. */
  readonly requests?: {
    /** `refuse`: 400 for a path origins may read more than one way (route.ts ambiguousPath); `decide`: every reading is decided. */
    readonly ambiguousPaths: 'refuse' | 'decide';
  };
  /** The image tap (proxy/image-tap.ts); absent or enabled false = off. Same names as config `images`. */
  readonly images?: {
    readonly enabled: boolean;
    /** Largest body held for scanning. */
    readonly maxBytes: number;
    /** Milliseconds an image body may be held (receiving and hashing). */
    readonly timeout: number;
    /** What happens to an image that could not be scanned. */
    readonly unscanned: 'pass' | 'block';
    /**
     * Bytes all held images of this process may take together (received, decoded, and released
     * but not yet written to the client); an image that would pass it is counted `over_budget` and
     * follows `unscanned`. Absent: no limit (tests).
     */
    readonly maxHeldBytes?: number;
  };
  /**
   * More addresses of this appliance: refused as destinations unless allowPrivate (the addresses of
   * local interfaces are added automatically).
   */
  readonly ownAddresses?: readonly string[];
  /**
   * Endpoints of this appliance that are never a destination, even with allowPrivate (the admin
   * listener). The proxy's own listeners are always included.
   */
  readonly ownEndpoints?: readonly Endpoint[];
  /** TLS interception (proxy/intercept.ts): the leaf minter and upstream trust; absent = never intercept. */
  readonly intercept?: InterceptEdgeOptions;
}

/** Shared by the protocol steps of one proxy. */
export interface EdgeContext {
  readonly opts: ProxyOptions;
  readonly observer: Observer;
  readonly upstream: Upstream;
  readonly gate: ConnectionGate;
  /** Keep-alive pool for plain HTTP to upstream servers. */
  readonly agent: Agent;
  hooks: Hooks;
  draining: boolean;
  /** Present when ProxyOptions.intercept is (set by startProxy). */
  interception?: Interception;
  /** Bytes the image tap holds now, against images.maxHeldBytes (proxy/image-tap.ts). */
  readonly imageBytes: HeldBytes;
}

/** What a failing hook is treated as: a refusal (fail closed), never a pass. */
export const HOOK_FAILED: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'no-policy',
  reason: 'the decision failed; failing closed',
});
