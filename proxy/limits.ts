/**
 * The admission gate every accepted socket passes first, on every listener: client networks
 * (`clients`), the total connection limit and the per-client limit. It also keeps the set of open
 * sockets for draining, and counts opens and closes for the active-connections gauge.
 */
import type { Socket } from 'node:net';
import { parseIp, type CidrSet } from '../policy/ip.js';
import type { ConnInfo, ListenerName, Observer } from './hooks.js';

export interface ConnectionLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
  /**
   * An IPv6 device chooses its own address inside the network's /64 (privacy addresses, RFC 8981),
   * as many as it likes: per address, one device could open maxConnectionsPerClient connections
   * per address it makes up. So IPv6 clients are counted per prefix of this length (default 64).
   */
  readonly clientIpv6Prefix?: number;
}

/** The key connections are counted under: the IPv4 address, or the IPv6 prefix (`2001:db8:1:2::/64`). */
export function clientKey(client: string, ipv6Prefix: number): string {
  if (!client.includes(':') || ipv6Prefix >= 128) return client;
  const a = parseIp(client);
  if (a === null) return client;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    const bit = i * 8;
    const keep = Math.max(0, Math.min(16, ipv6Prefix - bit));
    const v = (a[i]! << 8) | a[i + 1]!;
    groups.push((keep === 0 ? 0 : v & (0xffff << (16 - keep)) & 0xffff).toString(16));
  }
  return `${groups.join(':')}/${ipv6Prefix}`;
}

export type Admission =
  | { readonly ok: true; readonly conn: ConnInfo }
  | { readonly ok: false; readonly why: 'client_forbidden' | 'connections' | 'connections_per_client'; readonly conn: ConnInfo };

/** `::ffff:10.0.0.1` → `10.0.0.1`; anything else unchanged. */
export function clientText(remoteAddress: string | undefined): string {
  if (!remoteAddress) return '';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}

/**
 * Distinct client addresses whose `clients` answer is remembered. Parsing the address text and
 * walking the networks on every connection was ~2.6 % of the proxy's busy time (BENCHMARKS.md); a
 * venue has a few hundred guests at most, and when an IPv6 client walks through its /64 the cache is
 * simply dropped and refilled, so its size stays bounded.
 */
const ADMIT_CACHE_MAX = 4096;

export class ConnectionGate {
  /** Admitted sockets still open, with who they are (one Map: no WeakMap, no ephemeron work for the GC). */
  private readonly open = new Map<Socket, ConnInfo>();
  private readonly perClient = new Map<string, number>();
  /** Per client address: in `clients`, and the key it is counted under. */
  private readonly allowed = new Map<string, { readonly ok: boolean; readonly key: string }>();

  constructor(
    private readonly clients: CidrSet,
    private readonly limits: ConnectionLimits,
    private readonly observer: Observer,
  ) {}

  /** Decide on a new socket. Admitted sockets are tracked until they close. */
  admit(socket: Socket, listener: ListenerName): Admission {
    const client = clientText(socket.remoteAddress);
    const conn: ConnInfo = { listener, client };
    const known = this.known(client);
    if (!known.ok) return this.refuse('client_forbidden', conn);
    if (this.open.size >= this.limits.maxConnections) return this.refuse('connections', conn);
    const key = known.key;
    const n = this.perClient.get(key) ?? 0;
    if (n >= this.limits.maxConnectionsPerClient) return this.refuse('connections_per_client', conn);
    this.open.set(socket, conn);
    this.perClient.set(key, n + 1);
    this.observer.connectionOpened(listener);
    socket.once('close', () => {
      this.open.delete(socket);
      const left = (this.perClient.get(key) ?? 1) - 1;
      if (left <= 0) this.perClient.delete(key);
      else this.perClient.set(key, left);
      this.observer.connectionClosed(listener);
    });
    return { ok: true, conn };
  }

  /** Whether an address is in the client networks (the set is fixed for the gate's life), and its key. */
  private known(client: string): { readonly ok: boolean; readonly key: string } {
    let k = this.allowed.get(client);
    if (k === undefined) {
      k = { ok: this.clients.contains(client), key: clientKey(client, this.limits.clientIpv6Prefix ?? 64) };
      if (this.allowed.size >= ADMIT_CACHE_MAX) this.allowed.clear();
      this.allowed.set(client, k);
    }
    return k;
  }

  private refuse(why: 'client_forbidden' | 'connections' | 'connections_per_client', conn: ConnInfo): Admission {
    this.observer.limitHit(why);
    return { ok: false, why, conn };
  }

  /** The ConnInfo of an admitted socket. */
  connOf(socket: Socket): ConnInfo | undefined {
    return this.open.get(socket);
  }

  /** Open admitted sockets. */
  count(): number {
    return this.open.size;
  }

  sockets(): readonly Socket[] {
    return [...this.open.keys()];
  }
}
