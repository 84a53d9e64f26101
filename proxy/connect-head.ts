/**
 * The request head of a CONNECT on the explicit proxy listener, read without node:http.
 *
 * Why: node:http costs about half of a bare forwarder's CPU per CONNECT on its own (a parser from
 * the pool, an IncomingMessage, header objects, the connection tracking list), and a tunnel only
 * needs the authority (BENCHMARKS.md, "Proxy (network edge)"). Every other request (absolute-URI
 * GETs, POSTs, upgrades) is handed to node:http with the bytes read so far.
 *
 * The grammar is RFC 9112 §3 and §5 read strictly, never more leniently than node:http's own
 * parser (test/unit/connect-head.test.ts compares the two on generated and mutated heads):
 * - the request line is exactly `CONNECT SP authority SP HTTP/1.0|1.1 CRLF` (methods are case-sensitive);
 * - every line ends in CRLF: a bare LF or a bare CR is refused;
 * - field lines are `token ":" OWS value OWS`; no whitespace before the colon, no obs-fold (a line
 *   that starts with SP or HTAB), no control characters in values except HTAB;
 * - a CONNECT has no content (RFC 9110 §9.3.6): Transfer-Encoding, or a Content-Length other than 0,
 *   is refused rather than guessed at (bytes after the head belong to the tunnel);
 * - the head, request line included, is at most `maxBytes` (then 431, as node:http's maxHeaderSize).
 *
 * The authority itself is checked by the caller (parseAuthority: host:port, a port in the list).
 *
 * readConnectHead looks at the whole buffer each time; the socket reader (forward-listener.ts) calls
 * it only once the head is complete or too large, so a head trickled a byte at a time costs linear
 * time, not quadratic.
 */

export type ConnectHead =
  /** Not enough bytes yet to tell. */
  | { readonly kind: 'need-more' }
  /** Not a CONNECT: hand the bytes to the HTTP server. */
  | { readonly kind: 'other' }
  /** A complete CONNECT head of `length` bytes (the tunnel's bytes start after it). */
  | {
      readonly kind: 'connect';
      readonly authority: string;
      readonly length: number;
      /** An `X-Safespot-Selftest` field is present (believed from loopback only: the caller checks). */
      readonly selftest: boolean;
    }
  | { readonly kind: 'invalid'; readonly status: 400 | 431; readonly reason: string };

const METHOD = Buffer.from('CONNECT ', 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;

/** RFC 9110 §5.6.2 tchar, as a lookup table over bytes. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/**
 * Bytes allowed in a CONNECT authority: unreserved, sub-delims, ':', '[', ']' and '%' (RFC 3986
 * authority without userinfo). Anything else (space, controls, '/', '@', non-ASCII) is refused here.
 */
const AUTHORITY = new Uint8Array(256);
for (const c of "-._~!$&'()*+,;=:[]%") AUTHORITY[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) AUTHORITY[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) AUTHORITY[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) AUTHORITY[c] = 1;

const invalid = (reason: string): ConnectHead => ({ kind: 'invalid', status: 400, reason });

/** Look at the bytes read so far from a new connection on the forward listener. */
export function readConnectHead(bytes: Buffer, maxBytes: number): ConnectHead {
  const n = Math.min(bytes.length, METHOD.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== METHOD[i]) return { kind: 'other' };
  if (bytes.length < METHOD.length) return { kind: 'need-more' };
  // Bare LF or CR anywhere in what we have of the head is refused as soon as it is seen.
  const searchEnd = Math.min(bytes.length, maxBytes);
  const end = bytes.indexOf(CRLFCRLF);
  const headEnd = end < 0 ? searchEnd : Math.min(end + 4, searchEnd);
  for (let i = 0; i < headEnd; i++) {
    const b = bytes[i]!;
    if (b === LF && (i === 0 || bytes[i - 1] !== CR)) return invalid('bare LF in the request head');
    if (b === CR && i + 1 < bytes.length && bytes[i + 1] !== LF) return invalid('bare CR in the request head');
  }
  if (end < 0 || end + 4 > maxBytes) {
    if (bytes.length >= maxBytes) return { kind: 'invalid', status: 431, reason: 'request head too large' };
    return { kind: 'need-more' };
  }
  return parseHead(bytes, end);
}

/** The complete head: bytes[0, end) is the request line and field lines, CRLF-separated. */
function parseHead(bytes: Buffer, end: number): ConnectHead {
  const lineEnd = bytes.indexOf('\r\n', 0, 'latin1');
  // Request line: "CONNECT " authority " HTTP/1.x"
  let i = METHOD.length;
  const authorityStart = i;
  while (i < lineEnd && AUTHORITY[bytes[i]!] === 1) i++;
  if (i === authorityStart) return invalid('CONNECT without an authority');
  if (bytes[i] !== SP) return invalid('malformed CONNECT request line');
  const authority = bytes.toString('latin1', authorityStart, i);
  const version = bytes.toString('latin1', i + 1, lineEnd);
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') return invalid('unsupported HTTP version');
  // Field lines.
  let contentLength: string | null = null;
  let selftest = false;
  let pos = lineEnd + 2;
  while (pos < end + 2) {
    const next = bytes.indexOf('\r\n', pos, 'latin1');
    const problem = checkField(bytes, pos, next);
    if (problem !== null) return invalid(problem);
    const colon = bytes.indexOf(0x3a, pos);
    const name = bytes.toString('latin1', pos, colon).toLowerCase();
    if (name === 'transfer-encoding') return invalid('a CONNECT request has no content (Transfer-Encoding)');
    if (name === 'x-safespot-selftest') selftest = true;
    if (name === 'content-length') {
      const value = bytes.toString('latin1', colon + 1, next).trim();
      if (contentLength !== null && contentLength !== value) return invalid('conflicting Content-Length');
      contentLength = value;
      if (!/^0+$/.test(value)) return invalid('a CONNECT request has no content (Content-Length)');
    }
    pos = next + 2;
  }
  return { kind: 'connect', authority, length: end + 4, selftest };
}

/** One field line bytes[start, stop): null when well-formed, else why not. */
function checkField(bytes: Buffer, start: number, stop: number): string | null {
  const first = bytes[start];
  if (first === SP || first === HTAB) return 'obsolete line folding in the request head';
  let i = start;
  while (i < stop && TCHAR[bytes[i]!] === 1) i++;
  if (i === start) return 'empty or malformed header name';
  if (bytes[i] !== 0x3a) return 'malformed header line';
  for (i++; i < stop; i++) {
    const b = bytes[i]!;
    if ((b < SP && b !== HTAB) || b === 0x7f) return 'control character in a header value';
  }
  return null;
}
