/**
 * Where a guest's request goes: authorities (`host[:port]`, CONNECT targets, Host headers), request
 * targets (absolute-form and origin-form, RFC 9112 §3.2) and the route made of them, for the plain
 * HTTP forwarder, CONNECT, the transparent listener and interception alike. Pure: no sockets.
 */
/** Set on an HttpRoute of an intercepted request: the upstream is TLS and must prove `servername`. */
export interface UpstreamTlsRoute {
  /** The name the server's certificate must carry (the guest's SNI, else the CONNECT host). */
  readonly servername: string;
}

/** Where a request goes and what is decided on. */
export interface HttpRoute {
  /** Host to connect to (a name or an IP literal without brackets). */
  readonly host: string;
  readonly port: number;
  /** Value of the Host header sent upstream (`name` or `name:port`). */
  readonly authority: string;
  /** Request target sent upstream (origin-form: `/path?query`). */
  readonly path: string;
  /** The full URL the policy decides on. */
  readonly url: string;
  /** Intercepted HTTPS (proxy/intercept.ts): the upstream is TLS, verified for this name. */
  readonly tls?: UpstreamTlsRoute;
}

/**
 * The common authority: an ASCII DNS name (letters, digits, '-', dots between labels) and an
 * optional port. Its last label must not read as a number (WHATWG URL turns `2130706433`, `0x7f`
 * or `1.2.3.4` into IPv4 addresses), and no label may be punycode (`xn--`, which URL validates).
 */
const PLAIN_AUTHORITY = /^((?:[A-Za-z0-9-]+\.)*([A-Za-z0-9-]+))(?::(\d{1,5}))?$/;
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/i;

/** A host as compared for "the same host": lower case, no brackets, no trailing dot. */
export function bareHost(host: string): string {
  const h = host.toLowerCase();
  const unbracketed = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
  return unbracketed.endsWith('.') ? unbracketed.slice(0, -1) : unbracketed;
}

/**
 * Split `host[:port]` / `[v6][:port]`; null when it is not a valid authority. Plain DNS names (the
 * authority of nearly every CONNECT) are split here; everything else goes through WHATWG URL, whose
 * host parser normalises IPv4 in decimal, octal or hex, IPv6 and IDNA (parseAuthorityByUrl; the
 * two agree on every plain name, test/unit/authority.test.ts).
 */
export function parseAuthority(text: string, defaultPort: number): { host: string; port: number } | null {
  const m = PLAIN_AUTHORITY.exec(text);
  if (m === null || text.length > 260 || NUMERIC_LABEL.test(m[2]!) || /(?:^|\.)xn--/i.test(m[1]!)) return parseAuthorityByUrl(text, defaultPort);
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1]!.toLowerCase(), port };
}

/** parseAuthority for any authority, through WHATWG URL. */
export function parseAuthorityByUrl(text: string, defaultPort: number): { host: string; port: number } | null {
  if (text.length === 0 || text.length > 260 || /[\s@/?#\\]/.test(text)) return null;
  let url: URL;
  try {
    url = new URL(`http://${text}`);
  } catch {
    return null;
  }
  if (url.username || url.password || url.pathname !== '/') return null;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (!host) return null;
  // An explicit port equal to the default disappears in url.port; read it from the text.
  const m = /:(\d{1,5})$/.exec(text);
  const port = m && !text.endsWith(']') ? Number(m[1]) : defaultPort;
  if (port < 1 || port > 65535) return null;
  return { host, port };
}

/**
 * The request target as sent upstream and decided on: without a fragment (never part of a request,
 * RFC 9112 §3.2; an origin may read `#` as a path byte while the decision drops what follows it),
 * and null when its path holds a backslash, which WHATWG URL parsers and some origins (IIS) read
 * as `/` and others as a byte: two readings, so no routing (400).
 */
export function requestPath(target: string): string | null {
  const hash = target.indexOf('#');
  const path = hash === -1 ? target : target.slice(0, hash);
  const query = path.indexOf('?');
  if ((query === -1 ? path : path.slice(0, query)).includes('\\')) return null;
  return path;
}

/** Route of an absolute-form request target (`http://host[:port]/path?q`, RFC 9112 §3.2.2). */
/**
 * Why a request path (before `?`) can be read more than one way by origins, or null: an escaped
 * `?`, `#`, `/`, `\` or NUL (`%3F`, `%23`, `%2F`, `%5C`, `%00`: a byte to some origins, a delimiter
 * to others), an escaped dot (`%2E`), or a dot segment in a path that also holds escapes (origins
 * resolve `..` before or after decoding). The policy decides on every reading it knows
 * (policy/readings.ts); `requests.ambiguousPaths: refuse` (the default) does not guess at all.
 */
export function ambiguousPath(path: string): string | null {
  const q = path.indexOf('?');
  const p = q === -1 ? path : path.slice(0, q);
  if (!p.includes('%')) return null;
  const m = /%(3f|23|2f|5c|00|2e)/i.exec(p);
  if (m) return `an escaped ${({ '3f': '?', '23': '#', '2f': '/', '5c': '\\', '00': 'NUL', '2e': 'dot' } as Record<string, string>)[m[1]!.toLowerCase()]} in the path`;
  if (/\/\.\.?(?:\/|$)/.test(p)) return 'a dot segment in a path that holds escapes';
  return null;
}

/** Route of an absolute-form request target (`http://host[:port]/path?q`, RFC 9112 §3.2.2). */
export function routeAbsolute(target: string): HttpRoute | null {
  const m = /^http:\/\/([^/?#]*)([^#]*)/i.exec(target);
  if (!m) return null;
  const authority = m[1]!;
  const a = parseAuthority(authority, 80);
  if (!a) return null;
  let path = requestPath(m[2]!);
  if (path === null) return null;
  if (path === '') path = '/';
  else if (path.startsWith('?')) path = '/' + path;
  const hostPart = authority.toLowerCase();
  return { host: a.host, port: a.port, authority: hostPart, path, url: `http://${hostPart}${path}` };
}

/** Route of an origin-form target with a Host header (transparent HTTP; HTTP inside CONNECT). */
export function routeOrigin(target: string, hostHeader: string | undefined, defaultPort: number): HttpRoute | null {
  if (target.startsWith('http://') || target.startsWith('HTTP://')) return routeAbsolute(target);
  if (!target.startsWith('/') || hostHeader === undefined) return null;
  const path = requestPath(target);
  if (path === null) return null;
  const a = parseAuthority(hostHeader, defaultPort);
  if (!a) return null;
  const authority = hostHeader.toLowerCase();
  return { host: a.host, port: a.port, authority, path, url: `http://${authority}${path}` };
}
