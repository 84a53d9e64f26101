/**
 * startProxy: the listeners named in ProxyOptions, wired to the protocol steps, the admission gate,
 * the resolver and the hooks. appliance/serve/serve.ts turns the config into ProxyOptions, builds the
 * hooks (proxy/policy-hooks.ts) and the observer (audit/), and calls this.
 */
import { Agent, type Server as HttpServer } from 'node:http';
import { combineObservers } from '../audit/observer.js';
import type { Server } from 'node:net';
import type { Hooks, ListenerName, Observer } from './hooks.js';
import { HttpForwarder } from './http-forward.js';
import { HeldBytes } from './held-bytes.js';
import { createHttpListener, createTunnelHttp } from './http-server.js';
import { ConnectionGate } from './limits.js';
import type { EdgeContext, ProxyOptions } from './options.js';
import { Resolver } from './resolver.js';
import { createTransparentTlsServer } from './transparent-tls.js';
import { Interception } from './intercept.js';
import { Upstream, type Endpoint } from './upstream.js';

export type { ProxyOptions } from './options.js';

export interface ProxyHandle {
  /** Bound address of each started listener (the real port when 0 was asked for). */
  addresses(): Partial<Record<ListenerName, Endpoint>>;
  /** Swap the hooks (a new policy) for every decision from now on; open tunnels are not touched. */
  setHooks(h: Hooks): void;
  /** Stop accepting, let open connections finish for up to drainMs, then destroy what is left. */
  close(drainMs?: number): Promise<void>;
  /** Open client connections on all listeners. */
  connections(): number;
}

function listen(server: Server, e: Endpoint): Promise<Endpoint> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host: e.host, port: e.port, backlog: 1024 }, () => {
      server.off('error', onError);
      const a = server.address();
      if (a === null || typeof a === 'string') return reject(new Error('listener has no address'));
      resolve({ host: a.address, port: a.port });
    });
  });
}

export async function startProxy(opts: ProxyOptions, hooks: Hooks, rawObserver: Observer): Promise<ProxyHandle> {
  // An observer that throws must not break a connection or the process.
  const observer = combineObservers(rawObserver);
  const resolver = new Resolver({
    hosts: opts.upstream.hosts,
    dnsCacheTtlMs: opts.upstream.dnsCacheTtlMs,
    ...(opts.upstream.dnsServers ? { servers: opts.upstream.dnsServers } : {}),
  });
  const upstream = new Upstream(
    resolver,
    { allowPrivate: opts.upstream.allowPrivate, connectTimeoutMs: opts.upstream.connectTimeoutMs, ports: opts.upstream.ports },
    opts.ownAddresses ?? [],
  );
  for (const e of opts.ownEndpoints ?? []) upstream.addOwnEndpoint(e);
  const ctx: EdgeContext = {
    opts,
    observer,
    upstream,
    gate: new ConnectionGate(opts.clients, opts.limits, observer),
    agent: new Agent({ keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo', timeout: opts.limits.idleTimeout }),
    hooks,
    draining: false,
    imageBytes: new HeldBytes(opts.images?.maxHeldBytes ?? Infinity),
  };
  const forwarder = new HttpForwarder(ctx);
  if (opts.intercept) ctx.interception = new Interception(ctx, forwarder, opts.intercept);
  const tunnelHttp = createTunnelHttp(ctx, forwarder);
  const servers = new Map<ListenerName, Server>();
  // The node:http servers behind the listeners, and the one for plain HTTP in tunnels: a drain
  // closes their idle keep-alive connections.
  const httpServers: HttpServer[] = [tunnelHttp.server];
  for (const name of ['forward', 'http'] as const) {
    if (!opts.listeners[name]) continue;
    const l = createHttpListener(ctx, name, forwarder, tunnelHttp.serve);
    servers.set(name, l.listening);
    httpServers.push(l.http);
  }
  if (opts.listeners.tls) servers.set('tls', createTransparentTlsServer(ctx));

  const bound: Partial<Record<ListenerName, Endpoint>> = {};
  try {
    for (const [name, server] of servers) {
      const e = await listen(server, opts.listeners[name]!);
      bound[name] = e;
      upstream.addOwnEndpoint(e);
    }
  } catch (err) {
    for (const s of servers.values()) s.close();
    ctx.agent.destroy();
    ctx.interception?.close();
    throw err;
  }

  let closing: Promise<void> | null = null;
  const close = (drainMs = opts.limits.drainTimeout): Promise<void> => {
    closing ??= (async () => {
      ctx.draining = true;
      const closed = [...servers.values()].map((s) => new Promise<void>((r) => s.close(() => r())));
      // Idle keep-alive connections hold no work: close them now, and each one that becomes idle
      // (its response finished) on every round, so a drain does not wait for keep-alive timeouts.
      const closeIdle = (): void => {
        for (const s of httpServers) s.closeIdleConnections();
        ctx.interception?.closeIdle();
      };
      const deadline = Date.now() + Math.max(0, drainMs);
      while (ctx.gate.count() > 0 && Date.now() < deadline) {
        closeIdle();
        await new Promise((r) => setTimeout(r, 25));
      }
      for (const s of ctx.gate.sockets()) s.destroy();
      ctx.agent.destroy();
      ctx.interception?.close();
      // 'close' events of destroyed sockets come on a later tick; wait for them (bounded).
      for (let i = 0; i < 40 && ctx.gate.count() > 0; i++) await new Promise((r) => setTimeout(r, 5));
      await Promise.all(closed);
    })();
    return closing;
  };

  return {
    addresses: () => ({ ...bound }),
    setHooks: (h) => {
      ctx.hooks = h;
    },
    close,
    connections: () => ctx.gate.count(),
  };
}
