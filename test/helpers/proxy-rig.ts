/** A proxy (proxy/server.ts startProxy) with test defaults, stopped at the test's teardown. */
import { CidrSet } from '../../policy/ip.js';
import type { Hooks, Observer } from '../../proxy/hooks.js';
import { startProxy, type ProxyHandle, type ProxyOptions } from '../../proxy/server.js';

type DeepPartial<T> = { -readonly [K in keyof T]?: T[K] extends object ? Partial<T[K]> : T[K] };

export function testOptions(hosts: Record<string, string>, over: DeepPartial<ProxyOptions> = {}): ProxyOptions {
  return {
    listeners: over.listeners ?? { forward: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 }, tls: { host: '127.0.0.1', port: 0 } },
    clients: (over.clients as CidrSet | undefined) ?? CidrSet.parse(['127.0.0.0/8', '::1/128']),
    upstream: { hosts, allowPrivate: true, ports: [443, 80], connectTimeoutMs: 5000, dnsCacheTtlMs: 60_000, ...over.upstream },
    tls: { notTls: 'block', clientHelloTimeout: 10_000, clientHelloMaxBytes: 16_384, ...over.tls },
    limits: {
      maxConnections: 1000,
      maxConnectionsPerClient: 100,
      maxHeaderBytes: 16_384,
      headersTimeout: 10_000,
      idleTimeout: 60_000,
      drainTimeout: 2000,
      ...over.limits,
    },
    blockPage: { contact: 'staff@venue.test', languages: ['en', 'sq'], ...over.blockPage },
  };
}

/** Start a proxy and register its teardown on `t`. */
export async function startTestProxy(
  t: { teardown(fn: () => unknown): void },
  opts: ProxyOptions,
  hooks: Hooks,
  observer: Observer,
): Promise<ProxyHandle & { port(name: 'forward' | 'http' | 'tls'): number }> {
  const proxy = await startProxy(opts, hooks, observer);
  t.teardown(() => proxy.close(0));
  return Object.assign(proxy, {
    port(name: 'forward' | 'http' | 'tls'): number {
      const a = proxy.addresses()[name];
      if (!a) throw new Error(`no ${name} listener`);
      return a.port;
    },
  });
}
