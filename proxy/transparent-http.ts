/**
 * Routes for requests on the transparent HTTP listener (traffic redirected from :80): the Host
 * header names the destination (port 80 unless it says otherwise), the full URL is
 * `http://{Host}{path}`. A request without a usable Host cannot be routed: 400.
 */
import type { IncomingMessage } from 'node:http';
import { bareHost, routeOrigin, type HttpRoute } from './route.js';

export function transparentRoute(req: IncomingMessage): HttpRoute | null {
  if (hostFields(req.rawHeaders) > 1) return null;
  return routeOrigin(req.url ?? '', req.headers.host, 80);
}

/**
 * How many Host fields a request has. node:http keeps the first and drops the others; a request
 * with more than one is ambiguous (RFC 9112 §3.2: answer 400), so it is never routed.
 */
function hostFields(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

/**
 * Route of a request found inside a CONNECT tunnel: the destination is the CONNECT authority
 * (already decided), and so is the host of the URL decided on. A Host header or absolute URI that
 * names another host or port is `misdirected` (421, RFC 9110 §15.5.20): deciding on the name it
 * claims while the bytes go to the tunnel's would let `Host: allowed.test` carry a listed path of
 * the tunnel's host past the URL lists.
 */
export function tunnelRoute(req: IncomingMessage, target: { host: string; port: number }): HttpRoute | 'misdirected' | null {
  if (hostFields(req.rawHeaders) > 1) return null;
  const authorityText = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  const r = routeOrigin(req.url ?? '', req.headers.host ?? authorityText, target.port);
  if (!r) return null;
  if (bareHost(r.host) !== bareHost(target.host) || r.port !== target.port) return 'misdirected';
  return { ...r, host: target.host, port: target.port };
}
