/**
 * The upstream side of an intercepted connection: requests (and upgrades) to the real server over
 * TLS with full certificate-chain and host-name verification (RFC 9110 §4.3.4, RFC 6125), against
 * the trust anchors serve passes in (the system's roots plus `intercept.upstreamCa`).
 *
 * A server whose certificate fails (expired, not yet valid, wrong name, unknown or self-signed CA)
 * is never used: the guest gets an explanatory 502 page (in the guest's language, like the block
 * page: strings in proxy/locales/), and the failure counts as
 * `upstream_error{reason="tls"}`. There is no option to skip verification on purpose: a filtering
 * proxy that accepted any certificate would hide attacks from the guest, whose browser can no
 * longer see the real certificate.
 */
import { request as httpRequest, type ClientRequest, type RequestOptions, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, createSecureContext, type PeerCertificate, type SecureContext } from 'node:tls';
import { ERRORS, SafespotError } from '../policy/errors.js';
import { escapeHtml, guestPage, pickLanguage, type CertProblem } from './guest-page.js';
import { en } from './locales/en.js';
import type { EdgeContext } from './options.js';
import type { UpstreamTlsRoute } from './route.js';
import { handleErrors } from './refuse.js';


export interface UpstreamTlsOptions {
  /** PEM certificates trusted as roots; empty = Node's bundled Mozilla roots. */
  readonly ca: readonly string[];
  /** Idle keep-alive sockets are closed after this long. */
  readonly idleTimeoutMs: number;
}

/** One keep-alive pool and one trust store (a SecureContext built once, not per connection). */
export class UpstreamTls {
  readonly agent: HttpsAgent;
  readonly secureContext: SecureContext;

  constructor(opts: UpstreamTlsOptions) {
    // Parsing a root bundle costs milliseconds: do it once, and hand the context to every connection.
    this.secureContext = opts.ca.length > 0 ? createSecureContext({ ca: [...opts.ca] }) : createSecureContext();
    this.agent = new HttpsAgent({ keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo', timeout: opts.idleTimeoutMs, maxCachedSessions: 256 });
  }

  /** TLS options for a connection that must prove `name` (an IP literal is checked, never sent as SNI: RFC 6066 §3). */
  tlsOptions(name: string): { secureContext: SecureContext; rejectUnauthorized: true; servername?: string; checkServerIdentity?: (h: string, c: PeerCertificate) => Error | undefined } {
    const base = { secureContext: this.secureContext, rejectUnauthorized: true as const };
    if (isIP(name) === 0) return { ...base, servername: name };
    return { ...base, checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(name, cert) };
  }

  /** A TLS socket to `address:port`, verified for `name`; rejects with ERR_UPSTREAM_CERT for a bad certificate. */
  connect(address: string, port: number, name: string, timeoutMs: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: address, port, ALPNProtocols: ['http/1.1'], ...this.tlsOptions(name) });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new SafespotError('ERR_UPSTREAM_TIMEOUT', 'connecting to the upstream server timed out'));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(upstreamTlsFailure(err, name) ?? new SafespotError('ERR_UPSTREAM', 'cannot connect to the upstream server', { cause: err }));
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        handleErrors(socket);
        resolve(socket);
      });
    });
  }

  close(): void {
    this.agent.destroy();
  }
}


/** The kind of problem, per OpenSSL verification code (the codes Node puts on the error). */
const CERT_PROBLEMS: Readonly<Record<string, CertProblem>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'notYetValid',
  ERR_TLS_CERT_ALTNAME_INVALID: 'wrongName',
  HOSTNAME_MISMATCH: 'wrongName',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'selfSigned',
  SELF_SIGNED_CERT_IN_CHAIN: 'untrustedRoot',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'untrustedIssuer',
  UNABLE_TO_GET_ISSUER_CERT: 'untrustedIssuer',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'untrustedIssuer',
  CERT_UNTRUSTED: 'untrusted',
  CERT_REJECTED: 'rejected',
  CERT_REVOKED: 'revoked',
  CERT_SIGNATURE_FAILURE: 'badSignature',
  INVALID_CA: 'invalidAuthority',
  INVALID_PURPOSE: 'wrongPurpose',
  PATH_LENGTH_EXCEEDED: 'chainTooLong',
  CERT_CHAIN_TOO_LONG: 'chainTooLong',
  ERROR_IN_CERT_NOT_BEFORE_FIELD: 'malformed',
  ERROR_IN_CERT_NOT_AFTER_FIELD: 'malformed',
};

/**
 * A TLS failure talking to an intercepted upstream, as a SafespotError: ERR_UPSTREAM_CERT for a
 * certificate that fails verification, ERR_UPSTREAM for any other handshake failure (the server
 * does not speak TLS, no common version or cipher). null when `err` is not a TLS failure.
 */
export function upstreamTlsFailure(err: unknown, name: string): SafespotError | null {
  if (err instanceof SafespotError) return err.code === 'ERR_UPSTREAM_CERT' ? err : null;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string') return null;
  const problem = CERT_PROBLEMS[code];
  if (problem !== undefined) {
    // The message is English, for operators and tests; the guest's page is worded from the locale files.
    return new SafespotError('ERR_UPSTREAM_CERT', `the server for ${name} could not prove its identity: ${en.upstreamTls.problems[problem]} (${code})`, { cause: err });
  }
  if (code.startsWith('ERR_SSL_') || code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || code === 'EPROTO') {
    return new SafespotError('ERR_UPSTREAM', `the secure connection to the server for ${name} failed (${code})`, { cause: err });
  }
  return null;
}

/** The OpenSSL or Node code behind a failure, when it is a plain word (it is shown on the page). */
function failureCode(err: SafespotError): string | undefined {
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : undefined;
}

/**
 * The explanatory page for a failed upstream certificate (or TLS handshake), in the guest's
 * language: Accept-Language against `languages`, chosen as for the block page. Like the block
 * page it holds no personal data and neither the URL nor the host name; only the kind of problem
 * and its OpenSSL code.
 */
export function upstreamTlsErrorPage(
  err: SafespotError,
  acceptLanguage: string | undefined,
  languages: readonly string[],
): { status: number; headers: Record<string, string>; body: Buffer } {
  const locale = pickLanguage(acceptLanguage, languages);
  const s = locale.upstreamTls;
  const code = failureCode(err);
  const cert = err.code === 'ERR_UPSTREAM_CERT';
  const heading = cert ? s.certHeading : s.tlsHeading;
  const problem = code === undefined ? undefined : CERT_PROBLEMS[code];
  const sentence = !cert ? s.tlsFailed : problem === undefined ? s.certFailedUnknown : s.certFailed.split('{problem}').join(s.problems[problem]);
  const reason = code === undefined ? `${sentence}.` : `${sentence} (${code}).`;
  return guestPage({
    lang: locale.lang,
    title: heading,
    main: [`<h1>${escapeHtml(heading)}</h1>`, `<p>${escapeHtml(reason)}</p>`, `<p>${escapeHtml(s.explanation)}</p>`].join('\n'),
    status: ERRORS.ERR_UPSTREAM_CERT.http,
    headers: { connection: 'close' },
  });
}

/**
 * For HttpForwarder.fail: when `err` is a TLS failure of an intercepted upstream, count it
 * (`tls`), answer with the explanatory page (or cut the response if it already started) and
 * return true; otherwise return false and let the caller handle it.
 */
export function failUpstreamTls(ctx: EdgeContext, res: ServerResponse, err: unknown, name: string | undefined): boolean {
  if (name === undefined) return false;
  const failure = upstreamTlsFailure(err, name);
  if (failure === null) return false;
  ctx.observer.upstreamError('tls');
  if (res.headersSent) {
    res.destroy();
    return true;
  }
  // res.req is the request this response answers: its Accept-Language picks the page's language.
  const page = upstreamTlsErrorPage(failure, res.req.headers['accept-language'], ctx.opts.blockPage.languages);
  res.shouldKeepAlive = false;
  res.writeHead(page.status, page.headers);
  res.end(page.body);
  return true;
}

/** node:http for plain upstreams; node:https with verification for an intercepted route. */
export function openUpstreamRequest(ctx: EdgeContext, route: { readonly tls?: UpstreamTlsRoute }, options: RequestOptions): ClientRequest {
  if (!route.tls) return httpRequest(options);
  const up = ctx.interception?.upstreamTls;
  if (!up) throw new SafespotError('ERR_INTERNAL', 'an intercepted request without interception configured');
  return httpsRequest({ ...options, agent: up.agent, ...up.tlsOptions(route.tls.servername) });
}

/** A connected socket for an upgrade: plain TCP, or verified TLS for an intercepted route. */
export async function connectUpstream(ctx: EdgeContext, route: { readonly port: number; readonly tls?: UpstreamTlsRoute }, host: string): Promise<Socket> {
  if (!route.tls) return ctx.upstream.connect(host, route.port);
  const up = ctx.interception?.upstreamTls;
  if (!up) throw new SafespotError('ERR_INTERNAL', 'an intercepted request without interception configured');
  const dest = await ctx.upstream.destination(host, route.port);
  return up.connect(dest.address, dest.port, route.tls.servername, ctx.opts.upstream.connectTimeoutMs);
}
