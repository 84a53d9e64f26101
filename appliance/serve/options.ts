/**
 * The pure half of `serve`: the configuration mapped to what the proxy and its decision hooks take
 * (no sockets, files or timers here). serve.ts (one process) and worker.ts (each worker of a cluster)
 * both start the proxy from these, so the two shapes cannot drift apart.
 */
import type { ListenerLabel } from '../../audit/metrics.js';
import { CidrSet } from '../../policy/ip.js';
import type { PolicyHookOptions } from '../../proxy/policy-hooks.js';
import type { ProxyOptions } from '../../proxy/server.js';
import type { Config } from '../config.js';
import { scanImage } from './image-scan.js';

/** The proxy's options from the config (also used by each worker, serve/worker.ts). */
export function proxyOptions(c: Readonly<Config>): ProxyOptions {
  return {
    listeners: c.listeners,
    clients: CidrSet.parse(c.clients),
    upstream: {
      hosts: c.upstream.hosts,
      allowPrivate: c.upstream.allowPrivate,
      ports: c.upstream.ports,
      connectTimeoutMs: c.upstream.connectTimeout,
      dnsCacheTtlMs: c.upstream.dnsCacheTtl,
      ...(c.upstream.dnsServers ? { dnsServers: c.upstream.dnsServers } : {}),
    },
    tls: c.tls,
    limits: c.limits,
    blockPage: c.blockPage,
    requests: c.requests,
    images: { enabled: c.images.enabled, maxBytes: c.images.maxBytes, timeout: c.images.timeout, unscanned: c.images.unscanned, maxHeldBytes: c.images.maxHeldBytes },
  };
}

export function listenerLabels(c: Readonly<Config>): ListenerLabel[] {
  const out: ListenerLabel[] = [];
  if (c.listeners.forward) out.push('forward');
  if (c.listeners.http) out.push('http');
  if (c.listeners.tls) out.push('tls');
  if (c.listeners.dns) out.push('dns');
  return out;
}

/** The decision hooks' options from the config (also used by each worker). */
export function policyHookOptions(c: Readonly<Config>): PolicyHookOptions {
  return {
    recordUrls: c.journal.recordUrls,
    recordClients: c.journal.recordClients,
    blockFronting: c.tls.blockFronting,
    noSni: c.tls.noSni,
    ech: c.tls.ech,
    clientIpv6Prefix: c.limits.clientIpv6Prefix,
    scanImage: (bytes: Uint8Array) => scanImage(bytes, { dihedral: c.images.dihedral }),
  };
}
