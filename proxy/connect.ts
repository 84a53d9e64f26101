/**
 * CONNECT on the explicit proxy (RFC 9110 §9.3.6):
 * 1. the authority must be `host:port` with a port in upstream.ports (else 403);
 * 2. onConnect decides on the authority (blocked: 403 with a short text body, then close);
 * 3. the destination is resolved and checked (refused: 403; unresolvable: 502);
 * 4. `200 Connection Established`, then the TLS step reads the ClientHello and decides on the SNI
 *    (with the authority, so that a disagreement is a policy input), then splices or sends an alert.
 *
 * Bytes after the 200 that are not TLS: when they look like an HTTP request (plain HTTP through
 * CONNECT, typically to port 80) the tunnel is served as plain HTTP, so every request gets its own
 * full-URL decision and block page, and goes to the CONNECT authority. Anything else follows
 * tls.notTls: `block` closes, `allow` splices to the authority (already decided in step 2).
 */
import type { Socket } from 'node:net';
import { connectRefusal } from './block-page.js';
import type { ConnInfo, Verdict } from './hooks.js';
import { parseAuthority } from './route.js';
import { HOOK_FAILED, type EdgeContext } from './options.js';
import { endWith, handleErrors, rawHttpResponse, refuseHttp } from './refuse.js';
import { connectTarget, passTls, type TlsTarget } from './tls-passthrough.js';
import { splice } from './tunnel.js';
import type { Resolved } from './resolver.js';
import { EarlyConnect, upstreamReason } from './upstream.js';

/** Serves plain HTTP found inside a tunnel (the socket is handed over with the bytes already read). */
export type TunnelHttp = (socket: Socket, bytes: Buffer, target: TlsTarget, conn: ConnInfo) => void;

/** First bytes of an HTTP/1 request line: a method token then a space (or not enough bytes yet). */
export function looksLikeHttp(bytes: Buffer): boolean {
  return /^[A-Z]{1,16}(?: |$)/.test(bytes.subarray(0, 17).toString('latin1'));
}

const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

/** `authority`: the request target of the CONNECT, as received. `head`: bytes after the request head. */
export function handleConnect(ctx: EdgeContext, authority: string, socket: Socket, head: Buffer, conn: ConnInfo, tunnelHttp: TunnelHttp): void {
  handleErrors(socket);
  // Default port 0 is out of range, so an authority without a port is refused here with the rest.
  const target = parseAuthority(authority, 0);
  if (!target) {
    refuseHttp(socket, 'ERR_BAD_REQUEST', 'CONNECT needs host:port');
    return;
  }
  if (!ctx.opts.upstream.ports.includes(target.port)) {
    ctx.observer.upstreamError('refused_destination');
    refuseHttp(socket, 'ERR_DESTINATION_FORBIDDEN', `port ${target.port} is not allowed`);
    return;
  }
  let verdict: Verdict;
  try {
    verdict = ctx.hooks.onConnect(target, conn);
  } catch {
    verdict = { decision: HOOK_FAILED };
  }
  // A blocked host for a profile that intercepts: answer 200 anyway, so the TLS step can show the
  // block page over TLS (onClientHello blocks again and intercepts) instead of a bare 403.
  const pageOverTls = verdict.decision.action === 'block' && verdict.intercept === true && ctx.interception !== undefined;
  if (verdict.decision.action === 'block' && !pageOverTls) {
    const r = connectRefusal(verdict.decision);
    endWith(socket, rawHttpResponse(r.status, r.body));
    return;
  }
  if (pageOverTls) {
    established(ctx, socket, head, conn, target, verdict, tunnelHttp);
    return;
  }
  // Check the destination before answering 200 (resolved address, RFC 1918, loopback, this
  // appliance…), so a refused destination is a clear 403/502 rather than a tunnel that dies after
  // the ClientHello. The resolver caches, so the later connect does not resolve again. Names that
  // need no DNS query are checked at once, without a turn of the event loop.
  const host = verdict.connectHost ?? target.host;
  const refused = (err: unknown): void => {
    const reason = upstreamReason(err);
    ctx.observer.upstreamError(reason);
    const forbidden = reason === 'refused_destination';
    refuseHttp(socket, forbidden ? 'ERR_DESTINATION_FORBIDDEN' : 'ERR_RESOLVE', forbidden ? 'the destination is not allowed' : 'the destination could not be resolved');
  };
  let now: Resolved | null;
  try {
    now = ctx.upstream.destinationNow(host, target.port);
  } catch (err) {
    refused(err);
    return;
  }
  if (now !== null) {
    established(ctx, socket, head, conn, { ...target, checked: { host, resolved: now } }, verdict, tunnelHttp);
    return;
  }
  ctx.upstream.destination(host, target.port).then(
    (resolved) => established(ctx, socket, head, conn, { ...target, checked: { host, resolved } }, verdict, tunnelHttp),
    refused,
  );
}

/** After the checks: `200 Connection Established`, then the TLS step (or plain HTTP in the tunnel). */
function established(ctx: EdgeContext, socket: Socket, head: Buffer, conn: ConnInfo, target: TlsTarget, verdict: Verdict, tunnelHttp: TunnelHttp): void {
  if (socket.destroyed) return;
  socket.write(ESTABLISHED);
  // The checked destination is connected to while the client sends its ClientHello; nothing is
  // written on that connection before the SNI is decided (proxy/upstream.ts, EarlyConnect).
  if (target.checked !== undefined) target = { ...target, early: new EarlyConnect(ctx.upstream, target.checked.resolved) };
  const notTls = (bytes: Buffer): boolean => {
    if (looksLikeHttp(bytes)) {
      tunnelHttp(socket, bytes, target, conn);
      return true;
    }
    if (ctx.opts.tls.notTls !== 'allow' || verdict.decision.action === 'block') return false;
    connectTarget(ctx, verdict.connectHost ?? target.host, target.port, target, (err, up) => {
      if (err || up === undefined) {
        ctx.observer.upstreamError(upstreamReason(err));
        socket.destroy();
        return;
      }
      if (socket.destroyed) return void up.destroy();
      try {
        splice(socket, up, bytes, { idleTimeoutMs: ctx.opts.limits.idleTimeout, onIdle: () => ctx.observer.limitHit('idle_timeout') });
      } catch {
        // A bug in a step must cost this connection only, never the process.
        socket.destroy();
        up.destroy();
      }
    });
    return true;
  };
  passTls(ctx, socket, head, conn, target, notTls);
}
