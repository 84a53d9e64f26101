/**
 * Ending a connection with a last message: an HTTP response written on the raw socket (before or
 * outside the HTTP server's parser: admission refusals, CONNECT refusals) or a TLS alert record. The
 * socket is half-closed after the message, what the client still sends is read and dropped (closing
 * with unread data would send a RST that can destroy the message in flight), and a short grace timer
 * destroys it if the client never closes: a refusal is fast and never hangs.
 */
import type { Socket } from 'node:net';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { ERRORS, type ErrorCode } from '../policy/errors.js';
import { tlsAlertRecord } from './tls-alert.js';

const GRACE_MS = 2000;

/**
 * Give a socket its one error listener (errors then end the socket instead of the process). Each
 * step calls this on the sockets it touches; the listener is added once, however many steps do.
 * (Looked up among the socket's own listeners rather than kept in a WeakSet: two sockets per
 * tunnel went through the GC's ephemeron tables for it.)
 */
export function handleErrors(socket: Socket): void {
  if (socket.listenerCount('error', ignore) > 0) return;
  socket.on('error', ignore);
}

function ignore(): void {}

export function endWith(socket: Socket, message: Buffer | string): void {
  if (socket.destroyed) return;
  handleErrors(socket);
  const timer = setTimeout(() => socket.destroy(), GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.setTimeout(0);
  socket.end(message);
  socket.resume();
}

/** A complete HTTP/1.1 response with `Connection: close`, as bytes. */
export function rawHttpResponse(status: number, body: string | Buffer, headers: Readonly<Record<string, string>> = {}): Buffer {
  const bodyBytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`];
  const all: Record<string, string> = {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
    'content-length': String(bodyBytes.length),
    connection: 'close',
  };
  for (const [k, v] of Object.entries(all)) lines.push(`${k}: ${v}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bodyBytes]);
}

// ---- refusals from the error table ----------------------------------------------------------------
// Every refusal at the edge goes through one of these three, so the status or alert a guest gets is
// the one policy/errors.ts (and docs/errors.md, kept equal by a test) says for its code.

/** Refuse on a raw socket: the table's HTTP status for `code`, `message` as the body, then close. */
export function refuseHttp(socket: Socket, code: ErrorCode, message: string, headers: Readonly<Record<string, string>> = {}): void {
  endWith(socket, rawHttpResponse(ERRORS[code].http, `safespot: ${message}\n`, headers));
}

/** Refuse a node:http exchange: the table's status for `code`, `message` as the body, no keep-alive. */
export function refuseResponse(res: ServerResponse, code: ErrorCode, message: string): void {
  res.shouldKeepAlive = false;
  res.writeHead(ERRORS[code].http, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
  res.end(`safespot: ${message}\n`);
}

/** Refuse a TLS connection before its handshake: the table's alert for `code`, then close. */
export function refuseTls(socket: Socket, code: ErrorCode, legacyVersion?: number): void {
  endWith(socket, tlsAlertRecord(ERRORS[code].tls, legacyVersion));
}
