/**
 * The one node:http server shape for what guests send: the forward and transparent HTTP
 * listeners, plain HTTP inside CONNECT tunnels, and HTTP inside intercepted TLS all parse heads
 * with the same limits, so no layer is softer than another (issue 19: interception once had no
 * headers timeout, Node's 2,000-field cap and TCP keepalive).
 *
 * Limits: header size (`maxHeaderSize` -> 431), headers timeout (408), idle timeout (close), every
 * header field kept (bounded in bytes, never cut at a count), no TCP keepalive.
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { EdgeContext } from './options.js';
import { refuseHttp } from './refuse.js';

function serverOptions(ctx: EdgeContext) {
  const { limits } = ctx.opts;
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeout,
    requestTimeout: 0, // slow bodies are bounded by the idle timeout instead
    // Node checks the headers timeout on this interval; keep it well under the timeout itself.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeout / 4))),
    // `keepAlive` here is TCP keepalive (HTTP keep-alive is always on). With no initial delay the
    // kernel's two hours apply, far past limits.idleTimeout, which already ends a quiet
    // connection: it only cost two setsockopt calls per connection (one refused: TCP_KEEPIDLE 0).
    keepAlive: false,
  };
}

/** 431 / 408 / 400 for what the parser refused, counted; a dead socket (or a TLS failure) is just destroyed. */
function onClientError(ctx: EdgeContext, err: NodeJS.ErrnoException, socket: Socket): void {
  // A refusal already on its way (the parser reports the same overflow again as more bytes come):
  // let it be written; destroying now would drop it unsent (under TLS the write is still queued).
  // endWith's grace timer ends the socket.
  if (socket.writableEnded && !socket.destroyed) return;
  const busy = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (err.code === 'ECONNRESET' || (err.code ?? '').startsWith('ERR_SSL') || !socket.writable || busy) {
    socket.destroy();
    return;
  }
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      ctx.observer.limitHit('header_size');
      refuseHttp(socket, 'ERR_HEADERS_TOO_LARGE', 'request headers too large');
      return;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      ctx.observer.limitHit('headers_timeout');
      refuseHttp(socket, 'ERR_REQUEST_TIMEOUT', 'request headers not received in time');
      return;
    default:
      refuseHttp(socket, 'ERR_BAD_REQUEST', 'malformed request');
  }
}

/** A node:http server with the guest limits; the caller adds 'request', 'upgrade' and 'connect'. */
export function createGuestHttpServer(ctx: EdgeContext): Server {
  const server = createServer(serverOptions(ctx));
  // Node keeps only the first 2000 entries of rawHeaders by default and drops the rest silently: the
  // request forwarded would not be the one received. The head is bounded in bytes (maxHeaderSize).
  server.maxHeadersCount = 0;
  server.timeout = ctx.opts.limits.idleTimeout;
  server.on('timeout', (socket: Socket) => {
    // A keep-alive connection waiting for its next request is closed quietly (normal operation);
    // one with a request in progress that went silent is a limit hit.
    if ((socket as Socket & { _httpMessage?: unknown })._httpMessage) ctx.observer.limitHit('idle_timeout');
    socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => onClientError(ctx, err, socket));
  server.on('error', () => {}); // listen errors are reported by listen(); nothing else may crash us
  return server;
}
