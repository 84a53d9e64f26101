/**
 * TLS interception, for the profiles that turn it on (policy/intercept.ts decides which
 * connections; onClientHello puts the answer in `Verdict.intercept`). The TLS step hands such a
 * connection here after the ClientHello decision:
 *
 * 1. A leaf for the guest's SNI (else the CONNECT host) is minted from the appliance CA (certs/,
 *    cached per host, one mint in flight per host). A failed mint is counted and refused with an
 *    `internal_error` alert: never spliced, because splicing would skip the page-level decisions
 *    this profile asked for (fail closed).
 * 2. TLS is terminated with that leaf; ALPN offers `http/1.1` only (RFC 7301), so no client
 *    negotiates h2 with us. A client that does not trust the CA fails its handshake: counted as
 *    `client_handshake_failed`, and it never sees content.
 * 3. HTTP/1.1 inside is served by an unlistened node:http server and the ordinary HttpForwarder:
 *    every request is decided on its full `https://` URL (onRequest), blocked ones get the block
 *    page over TLS, allowed ones go to the real server over verified TLS (proxy/upstream-tls.ts)
 *    through the same forwarding path as plain HTTP (headers, streaming, image tap).
 * 4. A host that was blocked at the ClientHello gets the block page for that decision on every
 *    request (instead of the access_denied alert a non-intercepting profile gets).
 *
 * A request whose Host names another server than the TLS name gets 421 Misdirected Request
 * (RFC 9110 §15.5.20): one TLS connection is for one host, as the certificate says.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Decision } from '../policy/decision.js';
import { blockPage } from './block-page.js';
import type { ClientHelloInfo, ConnInfo, Verdict } from './hooks.js';
import type { HttpForwarder } from './http-forward.js';
import { bareHost, parseAuthority, requestPath, type HttpRoute } from './route.js';
import { clientKey } from './limits.js';
import { createGuestHttpServer } from './guest-http.js';
import type { EdgeContext } from './options.js';
import { endWith, handleErrors, rawHttpResponse, refuseHttp, refuseTls } from './refuse.js';
import type { TlsTarget } from './tls-passthrough.js';
import { UpstreamTls } from './upstream-tls.js';

/** What mints the per-host certificates (certs/LeafMinter). */
export interface CertMinter {
  getSecureContext(host: string): Promise<SecureContext>;
  /** Whether getSecureContext(host) would be served without minting (a cached, fresh leaf). */
  cached?(host: string): boolean;
}

/** ProxyOptions.intercept: present when serve loaded a CA because some profile intercepts. */
export interface InterceptEdgeOptions {
  readonly minter: CertMinter;
  /** PEM root certificates trusted for upstream servers (system roots plus `intercept.upstreamCa`); empty = Node's bundled roots. */
  readonly upstreamCa: readonly string[];
  /**
   * New leaves (names not cached) one client may have minted per minute (intercept.mintsPerMinute):
   * a mint is ~2 ms of CPU, so one guest sending thousands of made-up SNIs would take a core from
   * everyone. Past it the connection is refused (TLS alert), counted `mint_budget`. Absent: no limit.
   */
  readonly mintsPerMinute?: number;
}

/** Per-client token buckets for new mints, bounded in size (the oldest client is forgotten first). */
class MintBudget {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Take one mint for this client; false when its budget is spent. */
  take(client: string): boolean {
    const t = this.now();
    let b = this.#buckets.get(client);
    if (b === undefined) {
      if (this.#buckets.size >= 4096) this.#buckets.delete(this.#buckets.keys().next().value as string);
      b = { tokens: this.perMinute, at: t };
    } else this.#buckets.delete(client); // re-inserted below: the most recent at the end
    b.tokens = Math.min(this.perMinute, b.tokens + ((t - b.at) * this.perMinute) / 60_000);
    b.at = t;
    this.#buckets.set(client, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** One intercepted connection. */
interface Session {
  readonly conn: ConnInfo;
  /** The name the guest asked for (SNI, else the CONNECT host), lower case: what our leaf carries. */
  readonly tlsName: string;
  /** Where requests go (SafeSearch front end, CONNECT authority or SNI) and on which port. */
  readonly host: string;
  readonly port: number;
  /** The ClientHello decision when it was a block: every request gets its page. */
  readonly blocked: Decision | null;
}

const bare = bareHost;

/**
 * The route of a request inside an intercepted connection: origin-form (`/path`) or absolute-form
 * (`https://host/path`, RFC 9112 §3.2.2), the Host header naming the TLS name. `misdirected` when
 * it names another host; null when it cannot be routed.
 */
export function interceptedRoute(target: string, hostHeader: string | undefined, s: Pick<Session, 'tlsName' | 'host' | 'port'>): HttpRoute | 'misdirected' | null {
  let authority = hostHeader ?? s.tlsName;
  let path = target;
  const abs = /^https:\/\/([^/?#]*)([^#]*)$/i.exec(target);
  if (abs) {
    authority = abs[1]!;
    path = abs[2]! === '' ? '/' : abs[2]!.startsWith('?') ? `/${abs[2]!}` : abs[2]!;
  } else if (!target.startsWith('/')) return null;
  const clean = requestPath(path);
  if (clean === null) return null;
  path = clean;
  const a = parseAuthority(authority, s.port);
  if (!a) return null;
  if (bare(a.host) !== bare(s.tlsName)) return 'misdirected';
  const auth = authority.toLowerCase();
  return { host: s.host, port: s.port, authority: auth, path, url: `https://${auth}${path}`, tls: { servername: s.tlsName } };
}

export class Interception {
  readonly upstreamTls: UpstreamTls;
  readonly #server: Server;
  readonly #sessions = new WeakMap<Socket, Session>();
  readonly #mintBudget: MintBudget | undefined;

  constructor(
    private readonly ctx: EdgeContext,
    private readonly forwarder: HttpForwarder,
    private readonly opts: InterceptEdgeOptions,
  ) {
    this.upstreamTls = new UpstreamTls({ ca: opts.upstreamCa, idleTimeoutMs: ctx.opts.limits.idleTimeout });
    this.#mintBudget = opts.mintsPerMinute === undefined ? undefined : new MintBudget(opts.mintsPerMinute);
    // The same limits as every other guest HTTP layer; it never listens, so its connection tracking
    // (the headers timeout checks) is started by hand, as proxy/forward-listener.ts adoptSockets does.
    this.#server = createGuestHttpServer(ctx);
    this.#server.emit('listening');
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#request(req, res));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrade(req, socket, head));
    this.#server.on('connect', (_req: IncomingMessage, socket: Socket) => {
      refuseHttp(socket, 'ERR_METHOD_NOT_ALLOWED', 'CONNECT inside a TLS connection is not allowed');
    });
  }

  /**
   * Take over a connection whose ClientHello verdict says intercept. `bytes`: every byte read so
   * far (the ClientHello), handed back to the TLS layer. `target`: the CONNECT authority, if any.
   */
  async handle(socket: Socket, bytes: Buffer, hello: ClientHelloInfo, verdict: Verdict, conn: ConnInfo, target: TlsTarget | undefined): Promise<void> {
    const { observer } = this.ctx;
    const name = hello.sni ?? (target ? bare(target.host) : null);
    if (name === null) {
      refuseTls(socket, 'ERR_NO_SNI', hello.legacyVersion);
      return;
    }
    if (this.#mintBudget && this.opts.minter.cached?.(name) === false && !this.#mintBudget.take(clientKey(conn.client, this.ctx.opts.limits.clientIpv6Prefix ?? 64))) {
      observer.interception?.('mint_budget');
      refuseTls(socket, 'ERR_LIMIT', hello.legacyVersion);
      return;
    }
    let secureContext: SecureContext;
    try {
      secureContext = await this.opts.minter.getSecureContext(name);
    } catch {
      observer.interception?.('mint_failed');
      refuseTls(socket, 'ERR_CERT', hello.legacyVersion);
      return;
    }
    if (socket.destroyed) return;
    socket.unshift(bytes);
    const tls = new TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
    handleErrors(tls);
    let secured = false;
    // The handshake is bounded like the ClientHello (tls.clientHelloTimeout), not by the idle
    // timeout: a guest that reads our flight and stalls must not hold the connection for minutes.
    const handshake = setTimeout(() => {
      observer.limitHit('client_hello_timeout');
      tls.destroy();
    }, this.ctx.opts.tls.clientHelloTimeout);
    tls.once('secure', () => {
      secured = true;
      clearTimeout(handshake);
      observer.interception?.('intercepted');
    });
    tls.once('close', () => {
      clearTimeout(handshake);
      if (!secured) observer.interception?.('client_handshake_failed');
      socket.destroy();
    });
    this.#sessions.set(tls, {
      conn,
      tlsName: name,
      host: verdict.connectHost ?? target?.host ?? name,
      port: target?.port ?? 443,
      blocked: verdict.decision.action === 'block' ? verdict.decision : null,
    });
    this.#server.emit('connection', tls);
  }

  /** Close idle keep-alive connections (drain). */
  closeIdle(): void {
    this.#server.closeIdleConnections();
  }

  close(): void {
    this.upstreamTls.close();
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    const s = this.#sessions.get(req.socket);
    if (!s) return void req.socket.destroy();
    if (s.blocked) {
      const page = blockPage(s.blocked, req.headers['accept-language'], this.ctx.opts.blockPage);
      if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.shouldKeepAlive = false;
      if (this.ctx.draining) res.shouldKeepAlive = false;
      res.writeHead(page.status, page.headers);
      res.end(page.body);
      req.resume();
      return;
    }
    const route = interceptedRoute(req.url ?? '', req.headers.host, s);
    if (route === 'misdirected') return this.forwarder.misdirected(req, res);
    if (!route) return this.forwarder.badRequest(res, 'cannot route this request');
    this.forwarder.handle(req, res, s.conn, route);
  }

  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const s = this.#sessions.get(socket);
    if (!s) return void socket.destroy();
    if (s.blocked) {
      const page = blockPage(s.blocked, req.headers['accept-language'], this.ctx.opts.blockPage);
      endWith(socket, rawHttpResponse(page.status, page.body, page.headers));
      return;
    }
    const route = interceptedRoute(req.url ?? '', req.headers.host, s);
    if (route === null || route === 'misdirected') {
      refuseHttp(socket, route === null ? 'ERR_BAD_REQUEST' : 'ERR_MISDIRECTED', 'cannot route this upgrade request');
      return;
    }
    void this.forwarder.upgrade(req, socket, head, s.conn, route).catch(() => socket.destroy());
  }
}
