/**
 * Plain HTTP: one request in, the full-URL decision, then the block page or the request forwarded
 * upstream with a streaming body both ways. Used by the explicit proxy (absolute-URI requests), the
 * transparent HTTP listener (Host header) and plain HTTP inside a CONNECT tunnel.
 *
 * Headers (RFC 9110 §7.6): hop-by-hop fields (Connection and every field it names, Keep-Alive,
 * Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Transfer-Encoding,
 * Upgrade) are not forwarded; Host is the target's authority (RFC 9112 §3.2.2); Via is appended
 * (RFC 9110 §7.6.3). Body framing is Node's: a Content-Length is kept, anything else is re-chunked.
 * WebSocket (and any Upgrade) requests are decided like other requests, and spliced only once the
 * upstream has answered 101 for the protocol asked for; any other answer is relayed and the
 * connection closed, so no later request on it goes upstream undecided.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, SafespotError } from '../policy/errors.js';
import { blockPage } from './block-page.js';
import type { ConnInfo, Verdict } from './hooks.js';
import { pipeResponse } from './pipe-response.js';
import { fieldsObject } from './fields.js';
import { clientRange, tapImage, wholeRequestHeaders, type ClientRange } from './image-tap.js';
import { HOOK_FAILED, type EdgeContext } from './options.js';
import { endWith, handleErrors, rawHttpResponse, refuseHttp, refuseResponse } from './refuse.js';
import { splice } from './tunnel.js';
import type { Resolved } from './resolver.js';
import { upstreamReason } from './upstream.js';
import { connectUpstream, failUpstreamTls, openUpstreamRequest } from './upstream-tls.js';
import { ambiguousPath, type HttpRoute } from './route.js';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Methods node:http frames with chunked encoding when no length is given (the others get none). */
const BODY_BY_DEFAULT_EXCEPT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * End-to-end fields of a message, flat as node:http takes them (`[name, value, name, value, ...]`,
 * the order and spelling kept, repeated fields repeated), with `Via` appended and, when `host` is
 * given, `Host` first. `keepUpgrade` passes Upgrade (WebSocket). One pass over the fields; the
 * names a Connection header lists (RFC 9110 §7.6.1) are taken out afterwards, which only clients
 * naming other fields than the hop-by-hop ones need. A flat array goes to the wire without the
 * per-field setHeader an object costs node:http.
 */
export function endToEndFields(rawHeaders: readonly string[], httpVersion: string, host?: string, keepUpgrade = false): string[] {
  const out: string[] = host === undefined ? [] : ['Host', host];
  let named: string[] | null = null;
  let via: string | null = null;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (lower === 'connection') {
      for (const t of value.split(',')) {
        const token = t.trim().toLowerCase();
        if (token !== '' && !HOP_BY_HOP.has(token)) (named ??= []).push(token);
      }
      continue;
    }
    if (HOP_BY_HOP.has(lower) && !(keepUpgrade && lower === 'upgrade')) continue;
    if (lower === 'host') continue;
    if (lower === 'via') {
      via = via === null ? value : `${via}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (named !== null) {
    if (named.includes('via')) via = null;
    const start = host === undefined ? 0 : 2;
    let w = start;
    for (let r = start; r < out.length; r += 2) {
      if (named.includes(out[r]!.toLowerCase())) continue;
      out[w++] = out[r]!;
      out[w++] = out[r + 1]!;
    }
    out.length = w;
  }
  out.push('Via', via === null ? `${httpVersion} safespot` : `${via}, ${httpVersion} safespot`);
  return out;
}

export class HttpForwarder {
  constructor(private readonly ctx: EdgeContext) {}

  decide(url: string, conn: ConnInfo): Verdict {
    try {
      return this.ctx.hooks.onRequest(url, conn);
    } catch {
      return { decision: HOOK_FAILED };
    }
  }

  /** A request that cannot be routed (bad URL or Host): 400 with a short reason, connection closed. */
  badRequest(res: ServerResponse, why: string): void {
    refuseResponse(res, 'ERR_BAD_REQUEST', why);
  }

  /** A request for another host than its connection's (tunnel or intercepted TLS): 421, closed. */
  misdirected(req: IncomingMessage, res: ServerResponse): void {
    refuseResponse(res, 'ERR_MISDIRECTED', 'this connection is for another host');
    req.resume();
  }

  /** A path origins may read more than one way, under requests.ambiguousPaths: refuse (the default): why, else null. */
  ambiguous(route: HttpRoute): string | null {
    if (this.ctx.opts.requests?.ambiguousPaths === 'decide') return null;
    const why = ambiguousPath(route.path);
    if (why !== null) this.ctx.observer.limitHit('ambiguous_path');
    return why;
  }

  /** Decide, then answer with the block page or forward. */
  handle(req: IncomingMessage, res: ServerResponse, conn: ConnInfo, route: HttpRoute): void {
    const ambiguous = this.ambiguous(route);
    if (ambiguous !== null) {
      refuseResponse(res, 'ERR_BAD_REQUEST', `${ambiguous}: origins read it more than one way, so it is not forwarded`);
      req.resume();
      return;
    }
    const verdict = this.decide(route.url, conn);
    if (this.ctx.draining) res.shouldKeepAlive = false;
    if (verdict.decision.action === 'block') {
      const page = blockPage(verdict.decision, req.headers['accept-language'], this.ctx.opts.blockPage);
      // A refused request's body is not wanted: read and drop it (closing with unread bytes would
      // reset the connection and lose the page), and do not keep such a connection alive.
      if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.shouldKeepAlive = false;
      res.writeHead(page.status, page.headers);
      res.end(page.body);
      req.resume();
      return;
    }
    this.forward(req, res, route, verdict.connectHost ?? route.host, conn);
  }

  private fail(res: ServerResponse, err: unknown, tlsName?: string): void {
    if (failUpstreamTls(this.ctx, res, err, tlsName)) return; // bad upstream certificate: counted, explanatory page
    this.ctx.observer.upstreamError(upstreamReason(err));
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = err instanceof SafespotError ? ERRORS[err.code].http : 502;
    res.shouldKeepAlive = false;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
    res.end(`safespot: ${err instanceof SafespotError ? err.message : 'the upstream server failed'}\n`);
  }

  /**
   * Resolve and check the destination, then send. Without waiting when the name needs no DNS query
   * (upstream.hosts, an IP literal, a fresh cached answer): no promise per request.
   */
  private forward(req: IncomingMessage, res: ServerResponse, route: HttpRoute, connectHost: string, conn: ConnInfo): void {
    let now: Resolved | null;
    try {
      now = this.ctx.upstream.destinationNow(connectHost, route.port);
    } catch (err) {
      req.resume();
      return this.fail(res, err);
    }
    if (now !== null) {
      if (!res.destroyed) this.sendChecked(req, res, route, now, conn);
      return;
    }
    this.ctx.upstream.destination(connectHost, route.port).then(
      (dest) => {
        if (!res.destroyed) this.sendChecked(req, res, route, dest, conn);
      },
      (err: unknown) => {
        req.resume();
        this.fail(res, err);
      },
    );
  }

  private sendChecked(req: IncomingMessage, res: ServerResponse, route: HttpRoute, dest: Resolved, conn: ConnInfo): void {
    try {
      this.sendFirst(req, res, route, dest, conn);
    } catch (err) {
      this.fail(res, err);
    }
  }

  private sendFirst(req: IncomingMessage, res: ServerResponse, route: HttpRoute, dest: Resolved, conn: ConnInfo): void {
    const headers = endToEndFields(req.rawHeaders, req.httpVersion, route.authority);
    // No length and no chunks: no body (RFC 9112 §6.3). node:http would chunk an empty body for
    // POST and the like, where an object of headers got `Content-Length: 0`: the same here.
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined && !BODY_BY_DEFAULT_EXCEPT.has(req.method ?? 'GET')) {
      headers.push('Content-Length', '0');
    }
    this.send(req, res, route, dest, headers, conn, null);
  }

  /**
   * One upstream request and its answer. `whole` is set on the image tap's second request for a
   * ranged image (proxy/image-tap.ts, "Ranges"): the client's Range, to be served from the scanned
   * whole; it has no body to send, and is never re-sent again.
   */
  private send(
    req: IncomingMessage,
    res: ServerResponse,
    route: HttpRoute,
    dest: { address: string; port: number },
    headers: OutgoingHttpHeaders | string[],
    conn: ConnInfo,
    whole: ClientRange | null,
  ): void {
    const { ctx } = this;
    const upReq = openUpstreamRequest(ctx, route, {
      host: dest.address,
      port: dest.port,
      method: req.method,
      path: route.path,
      headers,
      agent: ctx.agent,
      setHost: false,
    });
    let failed = false;
    const onUpstreamError = (err: unknown): void => {
      if (failed) return;
      failed = true;
      if (whole === null) {
        req.unpipe(upReq);
        req.resume();
      }
      this.fail(res, err, route.tls?.servername);
    };
    upReq.on('error', onUpstreamError);
    upReq.on('socket', (s: Socket) => {
      if (!s.connecting) return;
      const t = setTimeout(
        () => upReq.destroy(new SafespotError('ERR_UPSTREAM_TIMEOUT', 'connecting to the upstream server timed out')),
        ctx.opts.upstream.connectTimeoutMs,
      );
      s.once('connect', () => clearTimeout(t));
      s.once('close', () => clearTimeout(t));
    });
    // Both agents (ctx.agent, UpstreamTls) give their sockets limits.idleTimeout and node:http passes
    // the socket's timeout on as the request's: a listener, rather than re-arming the socket's
    // timer with setTimeout on every request.
    upReq.on('timeout', () => upReq.destroy(new SafespotError('ERR_UPSTREAM_TIMEOUT', 'the upstream server did not answer in time')));
    // The client went away: stop the upstream request too.
    const onClose = (): void => {
      if (!res.writableFinished) upReq.destroy();
    };
    res.on('close', onClose);
    if (whole === null && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)) {
      req.on('error', () => upReq.destroy());
      req.pipe(upReq);
    } else {
      // No body (RFC 9112 §6.3: neither length nor chunks), or the tap's refetch: the request is
      // complete with its head, so no pipe (its half-dozen listeners per request). node:http drains
      // the request itself when the response finishes; a client that goes away closes `res`.
      upReq.end();
    }
    upReq.on('response', (upRes) => {
      if (ctx.draining) res.shouldKeepAlive = false;
      const resHeaders = endToEndFields(upRes.rawHeaders, upRes.httpVersion);
      // A ranged answer the tap must see whole: this exchange is dropped and the object asked for
      // again without Range and validators (GET only, once).
      const again =
        whole === null && req.method === 'GET'
          ? (): void => {
              failed = true; // this exchange's end is not the client's answer
              res.off('close', onClose);
              req.unpipe(upReq);
              req.resume();
              upRes.resume();
              upReq.destroy();
              this.send(req, res, route, dest, wholeRequestHeaders(Array.isArray(headers) ? fieldsObject(headers) : headers), conn, clientRange(req));
            }
          : undefined;
      // Images are held, hashed and released or replaced by the image tap (proxy/image-tap.ts).
      if (tapImage(ctx, { req, upReq, upRes, res, headers: resHeaders, conn, url: route.url, ...(again ? { again } : {}), ...(whole ? { range: whole } : {}) })) return;
      if (upRes.statusMessage) res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, resHeaders);
      else res.writeHead(upRes.statusCode ?? 502, resHeaders);
      pipeResponse(upReq, upRes, res);
    });
  }

  /** An Upgrade request (WebSocket): decide, then splice the raw connection to the upstream server. */
  async upgrade(req: IncomingMessage, socket: Socket, head: Buffer, conn: ConnInfo, route: HttpRoute): Promise<void> {
    handleErrors(socket);
    const ambiguous = this.ambiguous(route);
    if (ambiguous !== null) return refuseHttp(socket, 'ERR_BAD_REQUEST', `${ambiguous}: origins read it more than one way, so it is not forwarded`);
    const verdict = this.decide(route.url, conn);
    if (verdict.decision.action === 'block') {
      const page = blockPage(verdict.decision, req.headers['accept-language'], this.ctx.opts.blockPage);
      endWith(socket, rawHttpResponse(page.status, page.body, page.headers));
      return;
    }
    let up: Socket;
    try {
      up = await connectUpstream(this.ctx, route, verdict.connectHost ?? route.host);
    } catch (err) {
      this.ctx.observer.upstreamError(upstreamReason(err));
      refuseHttp(socket, err instanceof SafespotError ? err.code : 'ERR_UPSTREAM', 'the upstream server could not be reached');
      return;
    }
    if (socket.destroyed) {
      up.destroy();
      return;
    }
    const fields = endToEndFields(req.rawHeaders, req.httpVersion, route.authority, true);
    const lines = [`${req.method} ${route.path} HTTP/1.1`, 'Connection: Upgrade'];
    for (let i = 0; i < fields.length; i += 2) lines.push(`${fields[i]}: ${fields[i + 1]}`);
    // Nothing the client sends after the request head goes upstream until the upstream has
    // accepted the upgrade: a server that answers anything but 101 is still speaking HTTP, and
    // spliced bytes would be requests nobody decided (RFC 9110 §7.8: the switch happens only with
    // the 101). The client's socket stays paused while the answer's head is read.
    socket.pause();
    up.write(lines.join('\r\n') + '\r\n\r\n', 'latin1');
    awaitUpgradeAnswer(up, this.ctx.opts.limits.maxHeaderBytes, upgradeTokens(req.headers.upgrade), (answer) => {
      if (socket.destroyed) return void up.destroy();
      if (answer.kind === 'switched' && head.length === 0 && socket.readableLength === 0) {
        socket.write(answer.head);
        if (answer.rest.length > 0) up.unshift(answer.rest);
        splice(socket, up, head, {
          idleTimeoutMs: this.ctx.opts.limits.idleTimeout,
          onIdle: () => this.ctx.observer.limitHit('idle_timeout'),
        });
        socket.resume();
        return;
      }
      if (answer.kind === 'switched' || answer.kind === 'bad') {
        // A 101 for a protocol not asked for, a head past the bound, garbage, or a client that sent
        // bytes before the switch: refuse, and never splice.
        up.destroy();
        refuseHttp(socket, 'ERR_UPSTREAM', 'the upstream server did not accept this upgrade');
        return;
      }
      // Any other answer: relayed as it comes, then the connection ends. The upstream's write side
      // is ended at once, so nothing more of the client's reaches it; what the client sends is dropped.
      up.end();
      socket.on('data', () => {});
      socket.resume();
      socket.write(answer.head);
      if (answer.rest.length > 0) socket.write(answer.rest);
      up.on('data', (chunk: Buffer) => socket.write(chunk));
      up.once('end', () => socket.end());
      up.once('close', () => socket.end());
      socket.once('close', () => up.destroy());
      up.setTimeout(this.ctx.opts.limits.idleTimeout, () => {
        up.destroy();
        socket.destroy();
      });
      up.resume();
    });
  }
}

/** The protocols an Upgrade header asks for, lower case, versions kept (RFC 9110 §7.8). */
function upgradeTokens(value: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const t of (value ?? '').split(',')) {
    const token = t.trim().toLowerCase();
    if (token) out.add(token);
  }
  return out;
}

type UpgradeAnswer =
  | { readonly kind: 'switched' | 'other'; readonly head: Buffer; readonly rest: Buffer }
  | { readonly kind: 'bad' };

/**
 * Read the head of the upstream's answer to an upgrade request, at most `maxBytes`: `switched` for
 * a 101 whose Upgrade names a protocol the client asked for, `other` for any other status, `bad`
 * for a 101 naming another protocol, a head past the bound, or a connection that ended first.
 */
export function awaitUpgradeAnswer(up: Socket, maxBytes: number, asked: ReadonlySet<string>, done: (a: UpgradeAnswer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (a: UpgradeAnswer): void => {
    if (finished) return;
    finished = true;
    up.off('data', onData);
    up.off('end', onGone);
    up.off('close', onGone);
    up.pause();
    done(a);
  };
  const onGone = (): void => finish({ kind: 'bad' });
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > maxBytes) finish({ kind: 'bad' });
      return;
    }
    if (end > maxBytes) return finish({ kind: 'bad' });
    const head = buf.subarray(0, end + 4);
    const rest = buf.subarray(end + 4);
    const text = head.toString('latin1');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    if (status === null) return finish({ kind: 'bad' });
    if (status[1] !== '101') return finish({ kind: 'other', head, rest });
    const upgrade = /\r\nupgrade:[ \t]*([^\r]*)/i.exec(text);
    const offered = upgradeTokens(upgrade?.[1]);
    const ok = offered.size === 1 && asked.has([...offered][0]!);
    finish(ok ? { kind: 'switched', head, rest } : { kind: 'bad' });
  };
  up.on('data', onData);
  up.once('end', onGone);
  up.once('close', onGone);
}
