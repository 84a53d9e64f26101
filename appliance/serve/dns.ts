/**
 * The DNS listener from the config (proxy/dns/listener.ts): its options (pure: dnsListenerOptions)
 * and its start. Upstream servers are `upstream.dnsServers`, the setting the proxy's own resolver
 * uses, or the system's (/etc/resolv.conf); a server that is this listener itself is refused at
 * start (a loop that would answer nothing). One DNS listener per appliance: with workers it runs in
 * the primary, which holds the policy the workers are sent.
 */
import { isIP } from 'node:net';
import type { Observer } from '../../audit/observer.js';
import { CidrSet, parseIp } from '../../policy/ip.js';
import type { PolicyHolder } from '../../policy/policy.js';
import { createDnsHooks } from '../../proxy/dns/hook.js';
import { startDnsListener, type DnsListenerHandle, type DnsListenerOptions } from '../../proxy/dns/listener.js';
import { parseServer, systemServers, type DnsServer } from '../../proxy/dns/upstream.js';
import type { Config } from '../config.js';

/** An address as answer bytes (4 for A, 16 for AAAA), from policy/ip.ts's parser; absent: all zeros. */
function ipBytes(text: string | undefined, family: 4 | 6): Uint8Array {
  const bytes = text === undefined ? null : parseIp(text); // the schema has checked the text
  if (bytes === null) return new Uint8Array(family === 4 ? 4 : 16);
  return family === 4 ? bytes.slice(12) : bytes;
}

/** The upstream servers the DNS listener forwards to. */
export function dnsServersOf(c: Readonly<Config>): DnsServer[] {
  return c.upstream.dnsServers ? c.upstream.dnsServers.map(parseServer) : systemServers();
}

export function dnsListenerOptions(c: Readonly<Config>, servers: readonly DnsServer[]): DnsListenerOptions {
  const d = c.dns;
  return {
    endpoint: c.listeners.dns!,
    clients: CidrSet.parse(c.clients),
    servers,
    blocked: d.blocked,
    blockAddresses: { v4: ipBytes(d.blockAddress.ipv4, 4), v6: ipBytes(d.blockAddress.ipv6, 6) },
    blockTtl: Math.round(d.blockTtl / 1000),
    maxTtl: Math.round(d.maxTtl / 1000),
    cacheEntries: d.cacheEntries,
    cacheBytes: d.cacheBytes,
    https: d.https,
    rateLimit: d.rateLimit,
    tcp: { idleTimeoutMs: d.tcpIdleTimeout, maxConnections: d.maxTcpConnections, maxInFlight: d.maxTcpInFlight },
    upstream: { tryTimeoutMs: d.timeout, tries: d.tries, maxPending: d.maxPending },
    recordNames: c.journal.recordUrls,
    recordClients: c.journal.recordClients,
    clientIpv6Prefix: c.limits.clientIpv6Prefix,
  };
}

const LOCAL = new Set(['127.0.0.1', '::1', '0.0.0.0', '::']);

/** Start the DNS listener when listeners.dns is set (null otherwise). */
export async function startDnsFromConfig(c: Readonly<Config>, holder: PolicyHolder, observer: Observer): Promise<DnsListenerHandle | null> {
  if (!c.listeners.dns) return null;
  const servers = dnsServersOf(c);
  if (servers.length === 0) throw new Error('listeners.dns: no upstream DNS server (set upstream.dnsServers; /etc/resolv.conf names none)');
  const handle = await startDnsListener(dnsListenerOptions(c, servers), createDnsHooks(holder), observer);
  const self = handle.address();
  const loop = servers.find((s) => s.port === self.port && (s.host === self.host || (LOCAL.has(s.host) && (LOCAL.has(self.host) || isIP(self.host) === 0))));
  if (loop) {
    await handle.close();
    throw new Error(`listeners.dns: the upstream DNS server ${loop.host}:${loop.port} is this listener (set upstream.dnsServers to the venue's resolver)`);
  }
  return handle;
}

/** Where the self-test asks the running DNS listener, and the A address its block answers carry. */
export function dnsProbeTarget(c: Readonly<Config>, handle: DnsListenerHandle | null): { host: string; port: number; blockV4: string } | undefined {
  return handle ? { ...handle.address(), blockV4: c.dns.blockAddress.ipv4 ?? '0.0.0.0' } : undefined;
}
