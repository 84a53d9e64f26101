/**
 * The explicit proxy listener: a plain TCP server in front of node:http. Each admitted connection's
 * first request head is looked at here (proxy/connect-head.ts): a CONNECT goes straight to the
 * CONNECT step without node:http (most of a tunnel's cost was node:http's, not ours), anything else
 * is handed to the node:http server with the bytes already read, and node:http serves it and every
 * later request on that connection (a CONNECT after a keep-alive GET included, through its own
 * `connect` event).
 *
 * Limits while the first head is read: the headers timeout (408, counted as `headers_timeout`) and
 * the header size (431, `header_size`), the same answers node:http gives for later requests. A
 * request handed over gets node:http's headers timeout from then on, so a head trickled from the
 * first byte is cut off within twice the timeout at most.
 */
import type { Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { readConnectHead } from './connect-head.js';
import { loopbackClient, type ConnInfo } from './hooks.js';
import type { EdgeContext } from './options.js';
import { handleErrors, refuseHttp } from './refuse.js';

/** Takes a CONNECT over: the authority text and the bytes the client sent after the head. */
export type ConnectHandler = (socket: Socket, authority: string, rest: Buffer, conn: ConnInfo) => void;

/** The answer for a socket refused at admission. */
export type AdmissionRefusal = (socket: Socket, why: 'client_forbidden' | 'connections' | 'connections_per_client') => void;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

/**
 * Make node:http serve sockets it did not accept. Its connection tracking (the headers timeout
 * checks, closeIdleConnections) starts on `listening`; the outer server's listening is its own.
 */
export function adoptSockets(http: HttpServer): (socket: Socket, bytes: Buffer) => void {
  http.emit('listening');
  return (socket, bytes) => {
    if (bytes.length > 0) socket.unshift(bytes);
    http.emit('connection', socket);
    socket.resume();
  };
}

export function createForwardListener(ctx: EdgeContext, http: HttpServer, refuse: AdmissionRefusal, onConnect: ConnectHandler): Server {
  // The options node:http gives its own net.Server, since the sockets may end up there. No TCP
  // keepalive (see serverOptions in http-server.ts): limits.idleTimeout ends quiet connections.
  const server = createServer({ allowHalfOpen: true, noDelay: true });
  const handOver = adoptSockets(http);
  server.on('connection', (socket: Socket) => {
    handleErrors(socket);
    const admission = ctx.gate.admit(socket, 'forward');
    if (!admission.ok) return refuse(socket, admission.why);
    firstHead(ctx, socket, admission.conn, handOver, onConnect);
  });
  server.on('error', () => {}); // listen errors are reported by listen(); accept errors must not crash
  return server;
}

function firstHead(
  ctx: EdgeContext,
  socket: Socket,
  conn: ConnInfo,
  handOver: (socket: Socket, bytes: Buffer) => void,
  onConnect: ConnectHandler,
): void {
  const max = ctx.opts.limits.maxHeaderBytes;
  let bytes: Buffer = EMPTY;
  const stop = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('close', stop);
    socket.pause();
  };
  const onData = (chunk: Buffer): void => {
    const before = bytes.length;
    bytes = before === 0 ? chunk : Buffer.concat([bytes, chunk]);
    // Past the method, look again only once the head is complete or too large (linear in the bytes).
    if (before >= 8 && bytes.length < max && bytes.indexOf(CRLFCRLF, Math.max(0, before - 3)) < 0) return;
    const head = readConnectHead(bytes, max);
    switch (head.kind) {
      case 'need-more':
        return;
      case 'other':
        stop();
        handOver(socket, bytes);
        return;
      case 'connect':
        stop();
        // The self-test's CONNECT probe, marked like its HTTP requests (loopback only: hooks.ts).
        onConnect(socket, head.authority, bytes.subarray(head.length), head.selftest && loopbackClient(conn.client) ? { ...conn, selftest: true } : conn);
        return;
      case 'invalid':
        stop();
        if (head.status === 431) ctx.observer.limitHit('header_size');
        refuseHttp(socket, head.status === 431 ? 'ERR_HEADERS_TOO_LARGE' : 'ERR_BAD_REQUEST', head.reason);
        return;
    }
  };
  const onEnd = (): void => {
    stop();
    if (bytes.length === 0) socket.destroy();
    else refuseHttp(socket, 'ERR_BAD_REQUEST', 'incomplete request head');
  };
  const timer = setTimeout(() => {
    stop();
    ctx.observer.limitHit('headers_timeout');
    refuseHttp(socket, 'ERR_REQUEST_TIMEOUT', 'request headers not received in time');
  }, ctx.opts.limits.headersTimeout);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', stop); // a reset while waiting: let go of the timer (and the socket) at once
}
