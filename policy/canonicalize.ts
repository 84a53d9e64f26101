/**
 * URL canonicalisation exactly as Google Safe Browsing v4 "URLs and Hashing" describes
 * (https://developers.google.com/safe-browsing/v4/urls-hashing, section "Canonicalization"):
 *
 *  1. remove TAB, CR and LF anywhere (not their escapes); trim leading/trailing spaces and controls;
 *  2. drop the fragment (from the first '#');
 *  3. no scheme → http (the official vectors expect `www.google.com` → `http://www.google.com/`);
 *  4. split scheme, authority (user info dropped, port kept aside), path and query;
 *  5. host rules (see host.ts); path: unescape repeatedly, then `//` → `/`, `/./` → `/`, `/../`
 *     removes the previous segment; query: unescape repeatedly, nothing else;
 *  6. re-escape bytes <= 0x20, >= 0x7f, '#' and '%' as `%XX` with upper-case hex.
 *
 * The canonical `href` never carries a port or user info (the v4 vectors drop `:1234`).
 *
 * Pure and bounded: inputs above MAX_URL_BYTES (16 KiB, after step 1) give null, and every step is
 * linear in the input, so the worst input costs tens of microseconds. `canonicalize` never throws.
 * Ordinary already-canonical ASCII URLs take a fast path: one scan that finds nothing to change,
 * and the result is built from slices of the input (canonicalize-fast.ts).
 */
import { canonicalHostBytes, canonicalHostInto, escapeInto, ESCAPE_PATH, HOST_KINDS, MAX_URL_BYTES, unescapeInto, type CanonicalHost, type HostKind } from './host.js';

export type { HostKind, CanonicalHost } from './host.js';
export { MAX_URL_BYTES } from './host.js';
import { fastHost, fastPath } from './canonicalize-fast.js';

/** A canonical URL, split into the parts that expressions and decisions need. */
export interface CanonicalUrl {
  /** Lower case, e.g. 'http'. */
  readonly scheme: string;
  /** Canonical host: lower case, punycode, dots collapsed, IPv4 dotted decimal, IPv6 `[…]` normalised. */
  readonly host: string;
  readonly hostKind: HostKind;
  /** Explicit non-default port, or null. */
  readonly port: number | null;
  /** Canonical path; starts with '/'. */
  readonly path: string;
  /** Canonical query without '?'; null when absent, '' for a bare '?'. */
  readonly query: string | null;
  /** The whole canonical URL as the official vectors show it (no port, no user info). */
  readonly href: string;
}

/** Input strings longer than this (UTF-16 code units) are rejected before any work. */
const MAX_INPUT_UNITS = MAX_URL_BYTES * 4;

/** Schemes with a default port; for these, extra slashes after `://` are skipped as browsers do. */
const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443, ws: 80, wss: 443, ftp: 21 };

// Scratch space: the UTF-8 input (3 bytes per code unit at most), unescaped and normalised parts.
const RAW = new Uint8Array(MAX_INPUT_UNITS * 3);
const PART_A = new Uint8Array(MAX_URL_BYTES + 8);
const PART_B = new Uint8Array(MAX_URL_BYTES + 8);
const SEGMENTS = new Int32Array(MAX_URL_BYTES);
/** The canonical URL is assembled here as bytes, decoded once, and its parts sliced from it. */
const OUT = new Uint8Array((MAX_URL_BYTES + 16) * 3);
const ENCODER = new TextEncoder();
const ASCII_DECODER = new TextDecoder('utf-8');

/** Canonicalise a URL given as text (non-ASCII characters count as their UTF-8 bytes). Never throws. */
export function canonicalize(input: string): CanonicalUrl | null {
  try {
    if (typeof input !== 'string' || input.length > MAX_INPUT_UNITS) return null;
    const fast = fastPath(input);
    if (fast !== null) return fast;
    const { written } = ENCODER.encodeInto(input, RAW);
    return canonicalizeRaw(written);
  } catch {
    // Not reachable by design; the promise "never throws" must hold even if a bug says otherwise.
    return null;
  }
}

/**
 * Canonicalise a URL given as raw bytes (for example a request target as it came off the wire,
 * where a byte 0x80 is the byte 0x80 and not U+0080). Never throws.
 */
export function canonicalizeBytes(input: Uint8Array): CanonicalUrl | null {
  try {
    if (!(input instanceof Uint8Array) || input.length > MAX_INPUT_UNITS) return null;
    RAW.set(input);
    return canonicalizeRaw(input.length);
  } catch {
    return null;
  }
}

/**
 * Canonical host for an SNI name, a CONNECT authority or a Host header. A `:port` is accepted and
 * dropped; IPv6 must be bracketed when it carries a port (`[::1]:443`), a bare IPv6 is accepted
 * without one. Anything with user info, a path, a query, a fragment or whitespace inside is null.
 */
export function canonicalizeHost(input: string): CanonicalHost | null {
  try {
    if (typeof input !== 'string' || input.length > MAX_INPUT_UNITS) return null;
    const fast = fastHost(input);
    if (fast !== null) return fast;
    let len = ENCODER.encodeInto(input, RAW).written;
    len = stripTabsAndNewlines(len);
    let s = 0;
    let e = len;
    while (s < e && RAW[s]! <= 0x20) s++;
    while (e > s && RAW[e - 1]! <= 0x20) e--;
    if (e === s || e - s > MAX_URL_BYTES) return null;
    let colons = 0;
    for (let i = s; i < e; i++) {
      const b = RAW[i]!;
      if (b <= 0x20 || b === 0x2f || b === 0x3f || b === 0x23 || b === 0x40) return null; // space / ? # @
      if (b === 0x3a) colons++;
    }
    let hostEnd = e;
    if (RAW[s] === 0x5b) {
      let rb = s;
      while (rb < e && RAW[rb] !== 0x5d) rb++;
      if (rb === e) return null;
      hostEnd = rb + 1;
      if (hostEnd < e && (RAW[hostEnd] !== 0x3a || parsePort(hostEnd + 1, e) < -1)) return null;
    } else if (colons === 1) {
      hostEnd = s;
      while (RAW[hostEnd] !== 0x3a) hostEnd++;
      if (parsePort(hostEnd + 1, e) < -1) return null;
    } else if (colons > 1) {
      // A bare IPv6 address: bracket it so the host rules see the literal form.
      if (e + 2 > RAW.length) return null;
      RAW.copyWithin(s + 1, s, e);
      RAW[s] = 0x5b;
      RAW[e + 1] = 0x5d;
      hostEnd = e + 2;
    }
    return canonicalHostBytes(RAW, s, hostEnd);
  } catch {
    return null;
  }
}

// ---- the general path, on bytes in RAW[0, len) -------------------------------------------------

function stripTabsAndNewlines(len: number): number {
  let o = 0;
  for (let i = 0; i < len; i++) {
    const b = RAW[i]!;
    if (b !== 0x09 && b !== 0x0a && b !== 0x0d) RAW[o++] = b;
  }
  return o;
}

function isAlpha(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a);
}

function isSchemeByte(b: number): boolean {
  return isAlpha(b) || (b >= 0x30 && b <= 0x39) || b === 0x2b || b === 0x2d || b === 0x2e;
}

/** Port in RAW[s, e): -1 when empty, the number when 0..65535 decimal, -2 when malformed. */
function parsePort(s: number, e: number): number {
  if (s === e) return -1;
  if (e - s > 5) {
    while (s < e - 5 && RAW[s] === 0x30) s++; // leading zeros are harmless
    if (e - s > 5) return -2;
  }
  let v = 0;
  for (let i = s; i < e; i++) {
    const b = RAW[i]!;
    if (b < 0x30 || b > 0x39) return -2;
    v = v * 10 + (b - 0x30);
  }
  return v <= 65535 ? v : -2;
}

function canonicalizeRaw(rawLen: number): CanonicalUrl | null {
  const len = stripTabsAndNewlines(rawLen);
  let s = 0;
  let e = len;
  while (s < e && RAW[s]! <= 0x20) s++;
  while (e > s && RAW[e - 1]! <= 0x20) e--;
  if (e === s || e - s > MAX_URL_BYTES) return null;
  for (let i = s; i < e; i++) {
    if (RAW[i] === 0x23) {
      e = i; // the fragment goes, from the first '#'
      break;
    }
  }

  // Scheme: letters, digits, + - . followed by "://"; otherwise http.
  let o = 0; // write position in OUT
  let p = s;
  if (isAlpha(RAW[s]!)) {
    let j = s + 1;
    while (j < e && isSchemeByte(RAW[j]!)) j++;
    if (j + 2 < e && RAW[j] === 0x3a && RAW[j + 1] === 0x2f && RAW[j + 2] === 0x2f) {
      for (let k = s; k < j; k++) OUT[o++] = RAW[k]! | (isAlpha(RAW[k]!) ? 0x20 : 0);
      p = j + 3;
    }
  }
  const schemeLen = o === 0 ? 4 : o;
  if (o === 0) o = writeAscii('http', 0);
  const defaultPort = schemeDefaultPort(schemeLen);
  o = writeAscii('://', o);
  if (p === s || defaultPort !== undefined) while (p < e && RAW[p] === 0x2f) p++;

  // Authority: up to the first '/' or '?'; user info before the last '@' is dropped.
  let a = p;
  let at = -1;
  while (a < e && RAW[a] !== 0x2f && RAW[a] !== 0x3f) {
    if (RAW[a] === 0x40) at = a;
    a++;
  }
  const hs = at >= 0 ? at + 1 : p;
  let hostEnd: number;
  let portStart: number;
  if (RAW[hs] === 0x5b && hs < a) {
    let rb = hs;
    while (rb < a && RAW[rb] !== 0x5d) rb++;
    if (rb === a) return null;
    hostEnd = rb + 1;
    if (hostEnd < a && RAW[hostEnd] !== 0x3a) return null;
    portStart = hostEnd < a ? hostEnd + 1 : a;
  } else {
    hostEnd = hs;
    while (hostEnd < a && RAW[hostEnd] !== 0x3a) hostEnd++;
    portStart = hostEnd < a ? hostEnd + 1 : a;
  }
  const portValue = parsePort(portStart, a);
  if (portValue < -1) return null;
  const port = portValue < 0 || portValue === defaultPort ? null : portValue;
  const hostStart = o;
  const h = canonicalHostInto(RAW, hs, hostEnd, OUT, o);
  if (h < 0) return null;
  o = h >> 2;
  const hostEndOut = o;

  // Path up to the first '?', then the query. The spec unescapes the whole URL before splitting it,
  // so a '?' that only appears once the path is unescaped (from %3F) starts the query too.
  let q = a;
  while (q < e && RAW[q] !== 0x3f) q++;
  const pn = unescapeInto(RAW, a, q, PART_A);
  let split = 0;
  while (split < pn && PART_A[split] !== 0x3f) split++;
  o = canonicalPathInto(split, o);
  const pathEnd = o;
  const hasQuery = split < pn || q < e;
  if (hasQuery) {
    let qn = 0;
    for (let i = split + 1; i < pn; i++) PART_B[qn++] = PART_A[i]!;
    if (split < pn && q < e) PART_B[qn++] = 0x3f;
    if (q < e) qn = unescapeInto(RAW, q + 1, e, PART_B, qn);
    OUT[o++] = 0x3f;
    o = escapeInto(PART_B, qn, ESCAPE_PATH, OUT, o);
  }
  // Everything in OUT is printable ASCII now, so one decode gives the href and slices the parts.
  const href = ASCII_DECODER.decode(OUT.subarray(0, o));
  return {
    scheme: href.slice(0, schemeLen),
    host: href.slice(hostStart, hostEndOut),
    hostKind: HOST_KINDS[h & 3]!,
    port,
    path: href.slice(hostEndOut, pathEnd),
    query: hasQuery ? href.slice(pathEnd + 1) : null,
    href,
  };
}

function writeAscii(text: string, o: number): number {
  for (let i = 0; i < text.length; i++) OUT[o++] = text.charCodeAt(i);
  return o;
}

/** Default port of the (lower-case) scheme in OUT[0, len), or undefined. */
function schemeDefaultPort(len: number): number | undefined {
  if (len > 5) return undefined;
  let name = '';
  for (let i = 0; i < len; i++) name += String.fromCharCode(OUT[i]!);
  return DEFAULT_PORTS[name];
}

/**
 * The unescaped path PART_A[0, n) (empty, or starting with '/'): slash runs collapsed, "." segments
 * dropped, ".." removing the previous segment, then re-escaped into OUT from `out`; returns the end.
 */
function canonicalPathInto(n: number, out: number): number {
  let o = 0;
  let depth = 0;
  PART_B[o++] = 0x2f;
  let i = 0;
  while (i < n) {
    if (PART_A[i] === 0x2f) {
      i++;
      continue;
    }
    let j = i;
    while (j < n && PART_A[j] !== 0x2f) j++;
    const segLen = j - i;
    if (segLen === 1 && PART_A[i] === 0x2e) {
      // "/./" → "/"
    } else if (segLen === 2 && PART_A[i] === 0x2e && PART_A[i + 1] === 0x2e) {
      if (depth > 0) o = SEGMENTS[--depth]!; // "/../" removes the previous segment
    } else {
      SEGMENTS[depth++] = o;
      for (let k = i; k < j; k++) PART_B[o++] = PART_A[k]!;
      if (j < n) PART_B[o++] = 0x2f;
    }
    i = j;
  }
  return escapeInto(PART_B, o, ESCAPE_PATH, OUT, out);
}
