/**
 * The node:http servers of the explicit proxy (`forward`) and of the transparent HTTP listener
 * (`http`), and the unlistened one that serves plain HTTP found inside CONNECT tunnels.
 *
 * Limits applied here: the admission gate (client networks 403, connection limits 503), which runs
 * before the HTTP parser sees a byte; the parser's own (header size, headers timeout, idle timeout)
 * are proxy/guest-http.ts's, shared with interception.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { handleConnect, type TunnelHttp } from './connect.js';
import { loopbackClient, type ConnInfo, type ListenerName } from './hooks.js';
import type { HttpForwarder } from './http-forward.js';
import { routeAbsolute, type HttpRoute } from './route.js';
import { adoptSockets, createForwardListener } from './forward-listener.js';
import { createGuestHttpServer } from './guest-http.js';
import type { EdgeContext } from './options.js';
import { handleErrors, refuseHttp } from './refuse.js';
import type { TlsTarget } from './tls-passthrough.js';
import { transparentRoute, tunnelRoute } from './transparent-http.js';

const REFUSALS = {
  client_forbidden: { code: 'ERR_CLIENT_FORBIDDEN', text: 'this network is not allowed to use the proxy' },
  connections: { code: 'ERR_LIMIT', text: 'too many connections, try again shortly' },
  connections_per_client: { code: 'ERR_LIMIT', text: 'too many connections from this device, try again shortly' },
} as const;

/** Loopback clients may mark a request as a self-test / health check (never a guest: guests are not on loopback). */
function selftestConn(conn: ConnInfo, req: IncomingMessage): ConnInfo {
  if (req.headers['x-safespot-selftest'] === undefined) return conn;
  return loopbackClient(conn.client) ? { ...conn, selftest: true } : conn;
}

/** Answer a socket refused at admission (client networks 403, connection limits 503). */
export function refuseAdmission(socket: Socket, why: keyof typeof REFUSALS): void {
  const r = REFUSALS[why];
  refuseHttp(socket, r.code, r.text);
}

/**
 * The forward (explicit proxy) or transparent HTTP listener. The transparent one is the node:http
 * server itself; the forward one is a TCP server that reads each connection's first head and runs a
 * CONNECT without node:http (proxy/forward-listener.ts), handing everything else to this server.
 */
export function createHttpListener(ctx: EdgeContext, listener: Exclude<ListenerName, 'tls'>, forwarder: HttpForwarder, tunnelHttp: TunnelHttp): ListenerServers {
  const server = createGuestHttpServer(ctx);
  const refused = new WeakSet<Socket>();
  if (listener === 'http') {
    // Runs before node:http's own connection listener, so a refused client never reaches the parser.
    server.prependListener('connection', (socket: Socket) => {
      handleErrors(socket);
      const admission = ctx.gate.admit(socket, listener);
      if (admission.ok) return;
      refused.add(socket);
      refuseAdmission(socket, admission.why);
    });
  }
  const connOf = (socket: Socket): ConnInfo | null => (refused.has(socket) ? null : (ctx.gate.connOf(socket) ?? null));

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const admitted = connOf(req.socket);
    if (!admitted) {
      // Refused at admission: the refusal is already written and the socket is closing.
      req.resume();
      return;
    }
    const conn = selftestConn(admitted, req);
    const route = listener === 'forward' ? routeAbsolute(req.url ?? '') : transparentRoute(req);
    if (!route) {
      forwarder.badRequest(res, listener === 'forward' ? 'this is a proxy: send absolute http:// URLs, or CONNECT for https' : 'no usable Host header');
      return;
    }
    forwarder.handle(req, res, conn, route);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const conn = connOf(socket);
    if (!conn) return; // refused at admission; already answered
    const route = listener === 'forward' ? routeAbsolute(req.url ?? '') : transparentRoute(req);
    if (!route) {
      refuseHttp(socket, 'ERR_BAD_REQUEST', 'cannot route this upgrade request');
      return;
    }
    void forwarder.upgrade(req, socket, head, conn, route).catch(() => socket.destroy());
  });
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const conn = connOf(socket);
    if (!conn) return; // refused at admission; already answered
    if (listener !== 'forward') {
      refuseHttp(socket, 'ERR_METHOD_NOT_ALLOWED', 'CONNECT is served on the explicit proxy listener only');
      return;
    }
    // A CONNECT that follows other requests on a keep-alive connection.
    handleConnect(ctx, req.url ?? '', socket, head, selftestConn(conn, req), tunnelHttp);
  });
  if (listener === 'http') return { listening: server, http: server };
  const outer = createForwardListener(ctx, server, refuseAdmission, (socket, authority, rest, conn) =>
    handleConnect(ctx, authority, socket, rest, conn, tunnelHttp),
  );
  return { listening: outer, http: server };
}

/** What a listener is made of: the server that listens, and the node:http server behind it. */
export interface ListenerServers {
  readonly listening: NetServer;
  readonly http: Server;
}

/**
 * Plain HTTP inside CONNECT tunnels: a node:http server that never listens; sockets are handed to
 * it with the bytes already read pushed back. Requests go to the tunnel's authority.
 */
export function createTunnelHttp(ctx: EdgeContext, forwarder: HttpForwarder): { serve: TunnelHttp; server: Server } {
  const server = createGuestHttpServer(ctx);
  const targets = new WeakMap<Socket, { target: TlsTarget; conn: ConnInfo }>();
  const routeOf = (req: IncomingMessage): { route: HttpRoute | 'misdirected' | null; conn: ConnInfo } | null => {
    const t = targets.get(req.socket);
    return t ? { route: tunnelRoute(req, t.target), conn: t.conn } : null;
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const r = routeOf(req);
    if (!r) return req.socket.destroy();
    if (!r.route) return forwarder.badRequest(res, 'cannot route this request');
    if (r.route === 'misdirected') return forwarder.misdirected(req, res);
    forwarder.handle(req, res, r.conn, r.route);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const r = routeOf(req);
    if (!r || !r.route) return refuseHttp(socket, 'ERR_BAD_REQUEST', 'cannot route this upgrade request');
    if (r.route === 'misdirected') return refuseHttp(socket, 'ERR_MISDIRECTED', 'this tunnel is for another host');
    void forwarder.upgrade(req, socket, head, r.conn, r.route).catch(() => socket.destroy());
  });
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    refuseHttp(socket, 'ERR_METHOD_NOT_ALLOWED', 'CONNECT inside a tunnel is not allowed');
  });
  const adopt = adoptSockets(server);
  const serve: TunnelHttp = (socket, bytes, target, conn) => {
    targets.set(socket, { target, conn });
    adopt(socket, bytes);
  };
  return { serve, server };
}
