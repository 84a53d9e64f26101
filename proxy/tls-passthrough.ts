/**
 * The TLS step shared by CONNECT tunnels and the transparent TLS listener: read the ClientHello
 * (bounded), count what it was, ask onClientHello, then connect upstream and splice the untouched
 * bytes, or refuse with a fatal TLS alert (unrecognized_name when there was no SNI, access_denied
 * for a policy block, decode_error for malformed bytes, handshake_failure on timeout) and close.
 */
import type { Socket } from 'node:net';
import { SafespotError } from '../policy/errors.js';
import { loopbackClient, SELFTEST_ALPN, type ClientHelloInfo, type ConnInfo } from './hooks.js';
import { readClientHello, type HelloOutcome } from './hello-reader.js';
import { HOOK_FAILED, type EdgeContext } from './options.js';
import { endWith, handleErrors, refuseTls } from './refuse.js';
import { splice } from './tunnel.js';
import { upstreamReason, type EarlyConnect } from './upstream.js';
import type { Resolved } from './resolver.js';
import type { Verdict } from './hooks.js';

export interface TlsTarget {
  /** The CONNECT authority. */
  readonly host: string;
  readonly port: number;
  /** The destination the CONNECT step already resolved and checked (for `host`, or its connectHost). */
  readonly checked?: { readonly host: string; readonly resolved: Resolved };
  /** A connection to `checked` opened while the ClientHello is read: taken for the splice, or dropped. */
  readonly early?: EarlyConnect;
}

/** Connect to host:port, reusing the CONNECT step's check when it was for the same host. */
export function connectTarget(ctx: EdgeContext, host: string, port: number, target: TlsTarget | undefined, done: (err: unknown, socket?: Socket) => void): void {
  const checked = target?.checked;
  if (checked && checked.host === host && port === target.port) {
    if (target.early) target.early.take(done);
    else ctx.upstream.connectChecked(checked.resolved, done);
    return;
  }
  ctx.upstream.connect(host, port, true).then((socket) => done(null, socket), done); // for the splice
}

/** When the bytes are not TLS: return true when the caller took the socket over. */
export type NotTlsHandler = (bytes: Buffer) => boolean;


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
 * Callbacks rather than async steps: this runs once per tunnel, and each await was a promise and a
 * microtask turn more.
 */
export function passTls(
  ctx: EdgeContext,
  socket: Socket,
  head: Buffer,
  conn: ConnInfo,
  target: TlsTarget | undefined,
  onNotTls?: NotTlsHandler,
): void {
  handleErrors(socket);
  // The ClientHello has its own timer; the tunnel sets the idle timeout. (A CONNECT read by the
  // forward listener never had a socket timeout: skip the timer-list work then.)
  if ((socket as Socket & { timeout?: number }).timeout) socket.setTimeout(0);
  readClientHello(socket, head, { maxBytes: ctx.opts.tls.clientHelloMaxBytes, timeoutMs: ctx.opts.tls.clientHelloTimeout }, (outcome) => {
    try {
      if (outcome.kind === 'parsed') afterHello(ctx, socket, outcome.hello, outcome.bytes, conn, target);
      else refuseHello(ctx, socket, outcome, onNotTls);
    } catch {
      // A bug in a step must cost this connection only, never the process.
      socket.destroy();
    } finally {
      // Whatever the steps did: an early connection the splice did not take is closed unused.
      target?.early?.drop();
    }
  });
}

/** Every outcome of the ClientHello read but a parsed hello: counted, then refused (or handed on). */
function refuseHello(ctx: EdgeContext, socket: Socket, outcome: Exclude<HelloOutcome, { kind: 'parsed' }>, onNotTls?: NotTlsHandler): void {
  const { observer } = ctx;
  switch (outcome.kind) {
    case 'closed':
      if (outcome.bytes.length > 0) observer.clientHello('malformed');
      socket.destroy();
      return;
    case 'timeout':
      observer.clientHello('timeout');
      observer.limitHit('client_hello_timeout');
      refuseTls(socket, 'ERR_CLIENT_HELLO_TIMEOUT');
      return;
    case 'malformed':
    case 'too-large':
      observer.clientHello('malformed');
      refuseTls(socket, 'ERR_CLIENT_HELLO_MALFORMED');
      return;
    case 'not-tls':
      observer.clientHello('not_tls');
      if (onNotTls?.(outcome.bytes)) return;
      refuseTls(socket, 'ERR_CLIENT_HELLO_MALFORMED');
      return;
  }
}

/** A parsed ClientHello: decide, then intercept, refuse with an alert, or connect and splice. */
function afterHello(ctx: EdgeContext, socket: Socket, hello: ClientHelloInfo, bytes: Buffer, guest: ConnInfo, target: TlsTarget | undefined): void {
  const { observer } = ctx;
  observer.clientHello(hello.ech ? 'ech' : hello.sni === null ? 'no_sni' : 'sni');
  const conn = hello.alpn.length > 0 && hello.alpn.includes(SELFTEST_ALPN) && loopbackClient(guest.client) ? { ...guest, selftest: true } : guest;
  const verdict = decide(ctx, hello, conn, target);
  if (verdict.intercept && ctx.interception) {
    // This client's profile intercepts this host: a block page or filtered HTTPS instead of an alert or a splice.
    ctx.interception.handle(socket, bytes, hello, verdict, conn, target).catch(() => socket.destroy());
    return;
  }
  if (verdict.decision.action === 'block') {
    refuseTls(socket, hello.sni === null ? 'ERR_NO_SNI' : 'ERR_BLOCKED', hello.legacyVersion);
    return;
  }
  const host = verdict.connectHost ?? target?.host ?? hello.sni;
  if (host === null) {
    // No SNI on the transparent listener: there is nowhere to route (no SO_ORIGINAL_DST by design).
    refuseTls(socket, 'ERR_NO_SNI', hello.legacyVersion);
    return;
  }
  connectTarget(ctx, host, target?.port ?? 443, target, (err, upstream) => {
    try {
      spliceOrRefuse(ctx, socket, hello, bytes, err, upstream);
    } catch {
      socket.destroy();
      upstream?.destroy();
    }
  });
}

/** After the upstream connect: splice the tunnel, or refuse with the alert that fits the failure. */
function spliceOrRefuse(ctx: EdgeContext, socket: Socket, hello: ClientHelloInfo, bytes: Buffer, err: unknown, upstream: Socket | undefined): void {
  const { observer } = ctx;
  if (err || upstream === undefined) {
    observer.upstreamError(upstreamReason(err));
    refuseTls(socket, err instanceof SafespotError ? err.code : 'ERR_UPSTREAM', hello.legacyVersion);
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
