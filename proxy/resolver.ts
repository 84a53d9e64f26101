/**
 * Names to addresses for upstream connections, and the destination check that keeps safespot from
 * being an open door into the venue's own network.
 *
 * Order: an IP literal is itself; then `upstream.hosts` (the operator's static map, trusted); then DNS
 * through `dns.promises.Resolver` (c-ares, asynchronous on the event loop). `dns.lookup` is avoided on
 * purpose: it runs getaddrinfo on the libuv thread pool (4 threads by default), and a few slow lookups
 * stall every other user of the pool, file system calls included.
 *
 * The cache respects the record TTL, capped by `dnsCacheTtlMs`, holds at most `maxEntries` names,
 * and shares one in-flight query per name.
 */
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { CidrSet, isIpv4Mapped, parseIp } from '../policy/ip.js';
import { SafespotError } from '../policy/errors.js';

/** Where to connect. `trusted`: named in upstream.hosts, so the private-range check does not apply. */
export interface Resolved {
  readonly address: string;
  /** Port from upstream.hosts (`addr:port`), else the port asked for. */
  readonly port: number;
  readonly trusted: boolean;
}

/** The slice of dns.promises.Resolver we use (tests pass a fake). */
export interface DnsClient {
  resolve4(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  resolve6(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
}

export interface ResolverOptions {
  /** upstream.hosts: name -> `addr` | `addr:port` | `[v6]:port`. */
  readonly hosts: Readonly<Record<string, string>>;
  /** Upper bound on how long an answer is cached, whatever its TTL. */
  readonly dnsCacheTtlMs: number;
  readonly maxEntries?: number;
  /** DNS servers (`addr` or `addr:port`); default: the system's. */
  readonly servers?: readonly string[];
  /** Per-query timeout for the DNS client. */
  readonly queryTimeoutMs?: number;
  readonly dns?: DnsClient;
  readonly now?: () => number;
}

interface CacheEntry {
  readonly addresses: readonly string[];
  readonly expires: number;
}

/** Parse an upstream.hosts value; null when it is not `addr`, `addr:port` or `[v6]:port`. */
export function parseHostsValue(value: string): { address: string; port: number | null } | null {
  let address = value;
  let port: number | null = null;
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value);
  if (bracket) {
    address = bracket[1]!;
    port = bracket[2] === undefined ? null : Number(bracket[2]);
  } else if (!value.includes(':') || value.indexOf(':') !== value.lastIndexOf(':')) {
    address = value; // IPv4, or bare IPv6 (several colons)
  } else {
    const i = value.lastIndexOf(':');
    address = value.slice(0, i);
    if (!/^\d{1,5}$/.test(value.slice(i + 1))) return null;
    port = Number(value.slice(i + 1));
  }
  if (isIP(address) === 0) return null;
  if (port !== null && (port < 1 || port > 65535)) return null;
  return { address, port };
}

/** Lower case, without a trailing dot. */
export function normalizeName(host: string): string {
  const h = host.toLowerCase();
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

export class Resolver {
  private readonly hosts = new Map<string, { address: string; port: number | null }>();
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<readonly string[]>>();
  private readonly dns: DnsClient;
  private readonly now: () => number;
  private readonly maxEntries: number;

  constructor(private readonly opts: ResolverOptions) {
    for (const [name, value] of Object.entries(opts.hosts)) {
      const parsed = parseHostsValue(value);
      if (!parsed) throw new SafespotError('ERR_CONFIG_INVALID', `upstream.hosts.${name}: "${value}" is not addr, addr:port or [v6]:port`);
      this.hosts.set(normalizeName(name), parsed);
    }
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
    if (opts.dns) {
      this.dns = opts.dns;
    } else {
      const r = new dnsPromises.Resolver({ timeout: opts.queryTimeoutMs ?? 3000, tries: 2 });
      if (opts.servers && opts.servers.length > 0) r.setServers([...opts.servers]);
      this.dns = r;
    }
  }

  /** True when `host` is named in upstream.hosts. */
  isStatic(host: string): boolean {
    return this.hosts.has(normalizeName(host));
  }

  /**
   * The answer when it is known without waiting: an IP literal, a name in upstream.hosts, or a
   * name with a fresh cached DNS answer. null: ask resolve(). (The CONNECT path uses this to go
   * from the request head to the 200 without a turn of the event loop.)
   */
  resolveNow(host: string, port: number): Resolved | null {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    // An IP literal is itself. Every IP literal has a ':' or ends in a digit, so names ending in a
    // letter skip isIP (its IPv6 pattern was a visible cost per connection).
    if ((bare.includes(':') || isDigit(bare.charCodeAt(bare.length - 1))) && isIP(bare) !== 0) return { address: bare, port, trusted: false };
    const name = normalizeName(bare);
    const fixed = this.hosts.get(name);
    if (fixed) return { address: fixed.address, port: fixed.port ?? port, trusted: true };
    const hit = this.cache.get(name);
    if (hit === undefined || hit.expires <= this.now()) return null;
    return pick(hit.addresses, port);
  }

  /** Resolve `host` for a connection to `port`. Throws ERR_RESOLVE. */
  async resolve(host: string, port: number): Promise<Resolved> {
    const now = this.resolveNow(host, port);
    if (now !== null) return now;
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    const r = pick(await this.lookup(normalizeName(bare)), port);
    if (r === null) throw new SafespotError('ERR_RESOLVE', 'the destination name has no address');
    return r;
  }

  private lookup(name: string): Promise<readonly string[]> {
    if (!/^[a-z0-9_.-]{1,253}$/.test(name)) return Promise.reject(new SafespotError('ERR_RESOLVE', 'the destination is not a valid host name'));
    const hit = this.cache.get(name);
    if (hit && hit.expires > this.now()) return Promise.resolve(hit.addresses);
    if (hit) this.cache.delete(name);
    const pending = this.inflight.get(name);
    if (pending) return pending;
    const p = this.query(name).finally(() => this.inflight.delete(name));
    this.inflight.set(name, p);
    return p;
  }

  private async query(name: string): Promise<readonly string[]> {
    const settle = (p: Promise<{ address: string; ttl: number }[]>) =>
      p.then(
        (v) => v,
        (err: NodeJS.ErrnoException) => {
          // ENODATA / ENOTFOUND: no record of this family; anything else is a resolver failure.
          if (err.code === 'ENODATA' || err.code === 'ENOTFOUND') return [];
          throw err;
        },
      );
    let records: { address: string; ttl: number }[];
    try {
      const [v4, v6] = await Promise.all([settle(this.dns.resolve4(name, { ttl: true })), settle(this.dns.resolve6(name, { ttl: true }))]);
      records = [...v4, ...v6];
    } catch (cause) {
      throw new SafespotError('ERR_RESOLVE', `DNS query failed (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, { cause });
    }
    if (records.length === 0) throw new SafespotError('ERR_RESOLVE', 'the destination name has no address');
    const ttlMs = Math.min(this.opts.dnsCacheTtlMs, Math.max(0, Math.min(...records.map((r) => r.ttl))) * 1000);
    const addresses = records.map((r) => r.address);
    if (ttlMs > 0) {
      if (this.cache.size >= this.maxEntries) {
        // Drop the oldest insertion (Map keeps insertion order): a bounded, cheap eviction.
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(name, { addresses, expires: this.now() + ttlMs });
    }
    return addresses;
  }

  /** Cached names (for tests and diagnostics). */
  cacheSize(): number {
    return this.cache.size;
  }
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** Prefer IPv4 (most venue uplinks have it): the first answer of the family, else the first. */
function pick(addresses: readonly string[], port: number): Resolved | null {
  const address = addresses.find((a) => !a.includes(':')) ?? addresses[0];
  return address === undefined ? null : { address, port, trusted: false };
}

// ---- destination checks ------------------------------------------------------------------------

/**
 * Ranges a guest must not reach through the appliance unless the operator allows it: every entry of
 * the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890) that is not globally
 * reachable (loopback, unspecified, "this network", link-local, private, ULA, shared address space,
 * benchmarking, documentation, discard-only, local-use NAT64, IPv4-translated, Teredo, ORCHID,
 * SRv6 SIDs…), plus multicast, reserved and broadcast. IPv4 ranges also cover their IPv4-mapped
 * form, because policy/ip.ts stores IPv4 as ::ffff:a.b.c.d. Registry entries that are globally
 * reachable (64:ff9b::/96, AS112, AMT, anycast services) are in GLOBAL_EXCEPTIONS or left out.
 * Registries as of 2025: https://www.iana.org/assignments/iana-ipv4-special-registry and
 * https://www.iana.org/assignments/iana-ipv6-special-registry.
 */
const FORBIDDEN = CidrSet.parse([
  '0.0.0.0/8', // "this network" (RFC 791)
  '10.0.0.0/8', // private (RFC 1918)
  '100.64.0.0/10', // shared address space (RFC 6598)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments (RFC 6890; .9 and .10 excepted below)
  '192.0.2.0/24', // TEST-NET-1 (RFC 5737)
  '192.88.99.0/24', // deprecated 6to4 relay anycast (RFC 7526)
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking (RFC 2544)
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved (RFC 1112), 255.255.255.255 broadcast included
  '::/128', // unspecified
  '::1/128', // loopback
  '::ffff:0:0:0/96', // IPv4-translated (SIIT, RFC 2765): ::ffff:0:a.b.c.d
  '64:ff9b:1::/48', // local-use IPv4/IPv6 translation (RFC 8215)
  '100::/64', // discard-only (RFC 6666)
  '100:0:0:1::/64', // dummy IPv6 prefix (RFC 9780)
  '2001::/23', // IETF protocol assignments (RFC 2928), Teredo 2001::/32 included; exceptions below
  '2001:db8::/32', // documentation (RFC 3849)
  '3fff::/20', // documentation (RFC 9637)
  '5f00::/16', // segment routing SIDs (RFC 9602)
  'fc00::/7', // unique local (RFC 4193)
  'fe80::/10', // link-local
  'fec0::/10', // deprecated site-local
  'ff00::/8', // multicast
]);

/** Registry entries inside a FORBIDDEN range that IANA lists as globally reachable. */
const GLOBAL_EXCEPTIONS = CidrSet.parse([
  '192.0.0.9/32', // Port Control Protocol anycast (RFC 7723)
  '192.0.0.10/32', // TURN anycast (RFC 8155)
  '2001:1::1/128', // PCP anycast
  '2001:1::2/128', // TURN anycast
  '2001:1::3/128', // DNS-SD service registration protocol anycast (RFC 9665)
  '2001:3::/32', // AMT (RFC 7450)
  '2001:4:112::/48', // AS112-v6 (RFC 7535)
  '2001:20::/28', // ORCHIDv2 (RFC 7343)
  '2001:30::/28', // drone remote ID (RFC 9374)
]);

/**
 * IPv6 forms that carry an IPv4 address a host would reach: IPv4-compatible (::a.b.c.d, RFC 4291
 * §2.5.5.1), NAT64 well-known prefix (64:ff9b::/96, RFC 6052) and 6to4 (2002:AABB:CCDD::/48, RFC
 * 3056). The embedded address is checked as IPv4 too.
 */
function embeddedIpv4(a: Uint8Array): Uint8Array | null {
  const v4 = (offset: number): Uint8Array => {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(a.subarray(offset, offset + 4), 12);
    return out;
  };
  if (isIpv4Mapped(a)) return null; // already checked as IPv4
  let zeros = true;
  for (let i = 0; i < 12; i++) if (a[i] !== 0) zeros = false;
  if (zeros && !(a[12] === 0 && a[13] === 0 && a[14] === 0 && (a[15] === 0 || a[15] === 1))) return v4(12);
  const nat64 = [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
  if (nat64.every((b, i) => a[i] === b)) return v4(12);
  if (a[0] === 0x20 && a[1] === 0x02) return v4(2);
  return null;
}

/** Why an address is not a public destination, or null when it is. */
export function privateAddressReason(address: string): string | null {
  const a = parseIp(address);
  if (!a) return 'not an IP address';
  if (FORBIDDEN.containsBytes(a) && !GLOBAL_EXCEPTIONS.containsBytes(a)) return 'loopback, link-local, private, multicast or reserved address';
  const inner = embeddedIpv4(a);
  if (inner && FORBIDDEN.containsBytes(inner)) return 'IPv6 form of a loopback, link-local, private or reserved IPv4 address';
  return null;
}

/** Same address (any text form: `::ffff:127.0.0.1` equals `127.0.0.1`). */
export function sameAddress(x: string, y: string): boolean {
  const a = parseIp(x);
  const b = parseIp(y);
  if (!a || !b) return false;
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}
