/**
 * The admin listener: `/metrics` (Prometheus text), `/healthz` (200 while the process is up),
 * `/readyz` (200, or 503 with the reasons as JSON), and whatever `extraRoutes` serve adds (block-page
 * assets, the CA download). Anything else is 404.
 *
 * With a token, every route except /healthz (and extra routes marked public) needs
 * `Authorization: Bearer <token>`, compared in constant time over SHA-256 digests (equal lengths,
 * so neither the content nor the length of the token leaks through timing). A route marked
 * `browser` (the venue's status page) also takes the token as the password of HTTP Basic
 * authentication, for GET and HEAD only, and its 401 asks for Basic, so a browser prompts for it:
 * a browser resends Basic credentials on its own, to any request to this origin, so a state-changing
 * route (POST /reload) must never accept them (a page elsewhere could post to it). Without a token the
 * listener must be on loopback. It never serves list content or client data: only the registry,
 * the readiness reasons and what extraRoutes serve.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ERRORS, SafespotError } from '../../policy/errors.js';

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => unknown;
/**
 * A handler (token-protected like /metrics), or one marked public (no token, e.g. the CA download),
 * or a read-only page marked browser (the token also as a Basic password, GET and HEAD only).
 */
export type Route = RouteHandler | { handler: RouteHandler; public: boolean; browser?: boolean };

export interface AdminOptions {
  host: string;
  port: number;
  /** Bearer token; required when host is not a loopback address. */
  token?: string;
  /** What /metrics serves: a registry, or (workers > 1) the cluster's merged view with the same two members. */
  registry: Pick<Registry, 'metrics' | 'contentType'>;
  isReady: () => { ready: boolean; reasons: string[] };
  extraRoutes?: Record<string, Route>;
}

export interface AdminServer {
  server: http.Server;
  port: number;
  close(): Promise<void>;
}
/** Same as AdminServer (the name serve.ts uses). */
export type AdminHandle = AdminServer;

/** Loopback names and addresses (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (h === '::1') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}

/** Read a bearer token file: one line, at least 16 characters, no white space inside. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new SafespotError('ERR_CONFIG_READ', `cannot read the admin token file ${path}: ${(cause as Error).message}`, { cause });
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token)) {
    // Never print the token itself.
    throw new SafespotError('ERR_CONFIG_INVALID', `the admin token file ${path} must hold one token of at least 16 characters without spaces`);
  }
  return token;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time check of an Authorization header against the token. */
export function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  // Compare a digest even when the header is absent, so both paths do the same work.
  const given = digest(m?.[1] ?? '');
  return timingSafeEqual(given, expected) && m !== null;
}

/**
 * Constant-time check of `Authorization: Basic base64(user:password)` whose password is the token
 * (any user name: the token is the secret). Malformed base64 or no colon never matches.
 */
export function basicMatches(header: string | undefined, expected: Buffer): boolean {
  const m = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header ?? '');
  const pair = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
  const colon = pair.indexOf(':');
  const given = digest(colon >= 0 ? pair.slice(colon + 1) : '');
  return timingSafeEqual(given, expected) && colon >= 0;
}

function send(res: http.ServerResponse, status: number, type: string, body: string, head: boolean, extra: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(head ? undefined : body);
}

export async function startAdmin(opts: AdminOptions): Promise<AdminServer> {
  if (!opts.token && !isLoopbackHost(opts.host)) {
    throw new SafespotError(
      'ERR_CONFIG_INVALID',
      `admin.host ${opts.host} is not a loopback address: set admin.tokenFile so /metrics and /readyz need a bearer token`,
    );
  }
  if (opts.token !== undefined && opts.token.length === 0) throw new SafespotError('ERR_CONFIG_INVALID', 'the admin token is empty');
  const expected = opts.token === undefined ? null : digest(opts.token);
  const extra = new Map<string, { handler: RouteHandler; public: boolean; browser?: boolean }>();
  for (const [path, route] of Object.entries(opts.extraRoutes ?? {})) {
    extra.set(path, typeof route === 'function' ? { handler: route, public: false } : route);
  }
  const authorized = (req: http.IncomingMessage, browser: boolean, expected: Buffer): boolean => {
    const auth = req.headers.authorization;
    if (bearerMatches(auth, expected)) return true;
    return browser && (req.method === 'GET' || req.method === 'HEAD') && basicMatches(auth, expected);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://admin.invalid').pathname;
    } catch {
      send(res, 400, 'text/plain; charset=utf-8', 'bad request\n', head);
      return;
    }
    const route = extra.get(path);
    const known = path === '/metrics' || path === '/healthz' || path === '/readyz' || route !== undefined;
    if (!known) {
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
      return;
    }
    const isPublic = path === '/healthz' || (route?.public ?? false);
    if (expected && !isPublic && !authorized(req, route?.browser ?? false, expected)) {
      // A browser page asks for Basic (the browser's own prompt: any user name, the token as password).
      const challenge = route?.browser ? 'Basic realm="safespot venue status", charset="UTF-8"' : 'Bearer realm="safespot-admin"';
      send(res, ERRORS.ERR_UNAUTHORIZED.http, 'text/plain; charset=utf-8', 'unauthorized\n', head, { 'www-authenticate': challenge });
      return;
    }
    if (route) {
      await route.handler(req, res);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', head, { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/healthz') {
      send(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
    } else if (path === '/readyz') {
      const r = opts.isReady();
      const body = `${JSON.stringify({ ready: r.ready, reasons: r.reasons })}\n`;
      send(res, r.ready ? 200 : 503, 'application/json', body, head);
    } else {
      const text = await opts.registry.metrics();
      send(res, 200, opts.registry.contentType, text, head);
    }
  };

  const server = http.createServer({ maxHeaderSize: 16384 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      process.stderr.write(`safespot: admin ${req.method ?? ''} failed: ${String((err as Error)?.message ?? err)}\n`);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', false);
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new SafespotError('ERR_CONFIG_INVALID', `cannot listen on admin ${opts.host}:${opts.port}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts.port, opts.host.replace(/^\[|\]$/g, ''), () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => process.stderr.write(`safespot: admin listener: ${err.message}\n`));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
