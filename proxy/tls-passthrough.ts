/**
 * The TLS step shared by CONNECT tunnels and the transparent TLS listener: read the ClientHello
 * (bounded), count what it was, ask onClientHello, then connect upstream and splice the untouched
 * bytes, or refuse with a fatal TLS alert (unrecognized_name when there was no SNI, access_denied
 * for a policy block, decode_error for malformed bytes, handshake_failure on timeout) and close.
 */
import type { Socket } from 'node:net';
import { ERRORS, SafespotError, type TlsAlertName } from '../policy/errors.js';
import type { ClientHelloInfo, ConnInfo } from './hooks.js';
import { readClientHello } from './hello-reader.js';
import { HOOK_FAILED, type EdgeContext } from './options.js';
import { endWith, handleErrors } from './refuse.js';
import { tlsAlertRecord } from './tls-alert.js';
import { splice } from './tunnel.js';
import { upstreamReason } from './upstream.js';
import type { Resolved } from './resolver.js';
import type { Verdict } from './hooks.js';

export interface TlsTarget {
  /** The CONNECT authority. */
  readonly host: string;
  readonly port: number;
  /** The destination the CONNECT step already resolved and checked (for `host`, or its connectHost). */
  readonly checked?: { readonly host: string; readonly resolved: Resolved };
}

/** Connect to host:port, reusing the CONNECT step's check when it was for the same host. */
export function connectTarget(ctx: EdgeContext, host: string, port: number, target: TlsTarget | undefined): Promise<Socket> {
  const checked = target?.checked;
  return checked && checked.host === host && port === target.port ? ctx.upstream.connectChecked(checked.resolved) : ctx.upstream.connect(host, port);
}

/** When the bytes are not TLS: return true when the caller took the socket over. */
export type NotTlsHandler = (bytes: Buffer) => boolean;

export function refuseTls(socket: Socket, alert: TlsAlertName, legacyVersion?: number): void {
  endWith(socket, tlsAlertRecord(alert, legacyVersion));
}

function decide(ctx: EdgeContext, hello: ClientHelloInfo, conn: ConnInfo, target: TlsTarget | undefined): Verdict {
  try {
    return ctx.hooks.onClientHello(hello, conn, target?.host);
  } catch {
    return { decision: HOOK_FAILED };
  }
}

/**
 * Handle the TLS bytes of one connection. `head`: bytes already read. `target`: the CONNECT
 * authority (absent on the transparent listener, where the SNI is the destination, port 443).
 */
export async function passTls(
  ctx: EdgeContext,
  socket: Socket,
  head: Buffer,
  conn: ConnInfo,
  target: TlsTarget | undefined,
  onNotTls?: NotTlsHandler,
): Promise<void> {
  const { observer } = ctx;
  handleErrors(socket);
  // The ClientHello has its own timer; the tunnel sets the idle timeout. (A CONNECT read by the
  // forward listener never had a socket timeout: skip the timer-list work then.)
  if ((socket as Socket & { timeout?: number }).timeout) socket.setTimeout(0);
  const outcome = await readClientHello(socket, head, {
    maxBytes: ctx.opts.tls.clientHelloMaxBytes,
    timeoutMs: ctx.opts.tls.clientHelloTimeout,
  });
  switch (outcome.kind) {
    case 'closed':
      if (outcome.bytes.length > 0) observer.clientHello('malformed');
      socket.destroy();
      return;
    case 'timeout':
      observer.clientHello('timeout');
      observer.limitHit('client_hello_timeout');
      refuseTls(socket, 'handshake_failure');
      return;
    case 'malformed':
    case 'too-large':
      observer.clientHello('malformed');
      refuseTls(socket, 'decode_error');
      return;
    case 'not-tls':
      observer.clientHello('not_tls');
      if (onNotTls?.(outcome.bytes)) return;
      refuseTls(socket, 'decode_error');
      return;
    case 'parsed':
      break;
  }
  const { hello, bytes } = outcome;
  observer.clientHello(hello.ech ? 'ech' : hello.sni === null ? 'no_sni' : 'sni');
  const verdict = decide(ctx, hello, conn, target);
  if (verdict.intercept && ctx.interception) {
    // This client's profile intercepts this host: a block page or filtered HTTPS instead of an alert or a splice.
    await ctx.interception.handle(socket, bytes, hello, verdict, conn, target);
    return;
  }
  if (verdict.decision.action === 'block') {
    refuseTls(socket, hello.sni === null ? 'unrecognized_name' : 'access_denied', hello.legacyVersion);
    return;
  }
  const host = verdict.connectHost ?? target?.host ?? hello.sni;
  if (host === null) {
    // No SNI on the transparent listener: there is nowhere to route (no SO_ORIGINAL_DST by design).
    refuseTls(socket, 'unrecognized_name', hello.legacyVersion);
    return;
  }
  const port = target?.port ?? 443;
  let upstream: Socket;
  try {
    upstream = await connectTarget(ctx, host, port, target);
  } catch (err) {
    observer.upstreamError(upstreamReason(err));
    const alert = err instanceof SafespotError ? ERRORS[err.code].tls : 'internal_error';
    refuseTls(socket, alert, hello.legacyVersion);
    return;
  }
  if (socket.destroyed) {
    upstream.destroy();
    return;
  }
  splice(socket, upstream, bytes, {
    idleTimeoutMs: ctx.opts.limits.idleTimeout,
    onIdle: () => observer.limitHit('idle_timeout'),
  });
}
