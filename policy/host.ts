/**
 * Host canonicalisation for Safe Browsing v4 "URLs and Hashing", and the percent-coding primitives
 * that the host and the path share. Pure: no I/O, no clock. Everything works on bytes (UTF-8), as the
 * spec does, through module-level scratch buffers; no function here calls back into user code, so
 * sharing the scratch space between calls is safe in one thread.
 *
 * Host rules (https://developers.google.com/safe-browsing/v4/urls-hashing, "Canonicalization"):
 * unescape repeatedly, IDN to punycode, remove leading/trailing dots, collapse consecutive dots,
 * IPv4 in any legal encoding (decimal, octal, hex, fewer than four parts) to dotted decimal, lower
 * case, re-escape. Bracketed IPv6 is normalised as the v5 page of the same name specifies (RFC 5952
 * text form; IPv4-mapped `::ffff:a.b.c.d` and NAT64 `64:ff9b::/96` become the IPv4 address).
 */
import { parseIp } from './ip.js';

/** What kind of host a canonical host is. */
export type HostKind = 'name' | 'ipv4' | 'ipv6';

/** A canonical host and its kind. */
export interface CanonicalHost {
  readonly host: string;
  readonly hostKind: HostKind;
}

/** The longest URL (in bytes, after TAB/CR/LF removal and trimming) we canonicalise; longer → null. */
export const MAX_URL_BYTES = 16384;

// ---- byte tables -------------------------------------------------------------------------------

/** Hex digit value of a byte, or -1. */
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX_VALUE[0x41 + i] = 10 + i;
  HEX_VALUE[0x61 + i] = 10 + i;
}
const HEX_UPPER = new Uint8Array([...'0123456789ABCDEF'].map((c) => c.charCodeAt(0)));

/** Bytes the spec re-escapes everywhere: <= 0x20, >= 0x7f, '#', '%'. */
export const ESCAPE_PATH = new Uint8Array(256);
for (let b = 0; b < 256; b++) ESCAPE_PATH[b] = b <= 0x20 || b >= 0x7f || b === 0x23 || b === 0x25 ? 1 : 0;

/**
 * In a host we additionally escape the bytes that would split the authority differently when the
 * canonical URL is parsed again (`/ ? @ : [ ] \`). The spec is silent here (it says unescaping "may
 * render the URL invalid"); no DNS name holds these bytes, and escaping them keeps canonicalisation
 * idempotent.
 */
const ESCAPE_HOST = new Uint8Array(ESCAPE_PATH);
for (const c of '/?@:[]\\') ESCAPE_HOST[c.charCodeAt(0)] = 1;

// ---- scratch space (sized for MAX_URL_BYTES; escaping triples the length at most) ---------------

// (+8: canonicalizeHost may add brackets around a bare IPv6 address.)
const HOST_A = new Uint8Array(MAX_URL_BYTES + 8);
const HOST_B = new Uint8Array(MAX_URL_BYTES + 8);
const ESCAPED = new Uint8Array((MAX_URL_BYTES + 8) * 3);
const ASCII_DECODER = new TextDecoder('utf-8');
const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true });
const ENCODER = new TextEncoder();

// ---- percent coding ----------------------------------------------------------------------------

/**
 * Percent-unescape `src[start, end)` until no `%XX` is left, writing to `out` from `outStart`;
 * returns the index after the last byte written. One pass in linear time: bytes go onto `out` as onto a stack, and whenever the top three
 * form `%XX` they are replaced by the byte they encode (which may complete another escape below it).
 * `%XX` occurrences never overlap ('%' is not a hex digit), so the order of replacements does not
 * change the result: this gives exactly what repeated whole-string passes give, without their
 * quadratic worst case (`%252525…`).
 */
export function unescapeInto(src: Uint8Array, start: number, end: number, out: Uint8Array, outStart = 0): number {
  let n = outStart;
  for (let i = start; i < end; i++) {
    out[n++] = src[i]!;
    while (n - outStart >= 3 && out[n - 3] === 0x25) {
      const hi = HEX_VALUE[out[n - 2]!]!;
      const lo = HEX_VALUE[out[n - 1]!]!;
      if (hi < 0 || lo < 0) break;
      out[n - 3] = (hi << 4) | lo;
      n -= 2;
    }
  }
  return n;
}

/** Escape `buf[0, len)` with a table (1 = `%XX`, upper-case hex) into `out` from `o`; returns the new end. */
export function escapeInto(buf: Uint8Array, len: number, table: Uint8Array, out: Uint8Array, o: number): number {
  for (let i = 0; i < len; i++) {
    const b = buf[i]!;
    if (table[b] === 1) {
      out[o++] = 0x25;
      out[o++] = HEX_UPPER[b >> 4]!;
      out[o++] = HEX_UPPER[b & 15]!;
    } else {
      out[o++] = b;
    }
  }
  return o;
}

/** Write an ASCII string into `out` from `o`; returns the new end. */
function asciiInto(text: string, out: Uint8Array, o: number): number {
  for (let i = 0; i < text.length; i++) out[o++] = text.charCodeAt(i);
  return o;
}

// ---- IPv4 --------------------------------------------------------------------------------------

/**
 * Parse a host (already lower case, dots collapsed) as IPv4 the way inet_aton does: one to four
 * dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last part fills the
 * remaining bytes. Returns the address as an unsigned 32-bit number, or -1 when it is not IPv4.
 */
function parseIpv4Bytes(buf: Uint8Array, len: number): number {
  if (len === 0) return -1;
  let parts = 0;
  let high = 0; // value of the parts before the last, already shifted into place
  let i = 0;
  while (i < len) {
    let base = 10;
    let j = i;
    if (buf[j] === 0x30 && j + 1 < len && buf[j + 1] !== 0x2e) {
      if (buf[j + 1] === 0x78) {
        base = 16;
        j += 2;
      } else {
        base = 8;
        j += 1;
      }
    }
    let value = 0;
    let digits = 0;
    for (; j < len && buf[j] !== 0x2e; j++, digits++) {
      const d = HEX_VALUE[buf[j]!]!;
      if (d < 0 || d >= base) return -1;
      value = value * base + d;
      if (value > 0xffffffff) return -1;
    }
    if (digits === 0 && base !== 16) return -1; // empty part ("0x" alone is 0, as in WHATWG)
    parts++;
    if (parts > 4) return -1;
    if (j === len) {
      const remaining = 5 - parts; // bytes the last part may fill
      if (value >= 2 ** (8 * remaining)) return -1;
      return high + value;
    }
    if (value > 255) return -1;
    high += value * 2 ** (8 * (4 - parts));
    i = j + 1;
  }
  return -1; // ended on a dot (cannot happen once trailing dots are removed)
}

function ipv4Text(v: number): string {
  return `${Math.floor(v / 0x1000000) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

// ---- IPv6 --------------------------------------------------------------------------------------

/** Canonical form of a bracketed IPv6 literal (text without brackets), or null when it is not one. */
function canonicalIpv6(text: string): CanonicalHost | null {
  if (!text.includes(':')) return null;
  const a = parseIp(text); // accepts a zone id (dropped) and a trailing dotted IPv4
  if (a === null) return null;
  let zero10 = true;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) zero10 = false;
  const mapped = zero10 && a[10] === 0xff && a[11] === 0xff;
  let nat64 = a[0] === 0x00 && a[1] === 0x64 && a[2] === 0xff && a[3] === 0x9b;
  for (let i = 4; nat64 && i < 12; i++) if (a[i] !== 0) nat64 = false;
  if (mapped || nat64) return { host: `${a[12]}.${a[13]}.${a[14]}.${a[15]}`, hostKind: 'ipv4' };
  // RFC 5952 §4: lower-case hex, no leading zeros, the longest run (>= 2) of zero words as "::",
  // the first one on a tie.
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((a[2 * i]! << 8) | a[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += words[i]!.toString(16);
  }
  return { host: `[${out}]`, hostKind: 'ipv6' };
}

// ---- IDN ---------------------------------------------------------------------------------------

/** ASCII bytes that may sit beside non-ASCII ones in a host we hand to the IDN step. */
function idnSafeAscii(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f;
}

/**
 * IDN to punycode (UTS #46 through the WHATWG URL host parser, which is what browsers send).
 * Writes the ASCII result into `out` and returns its length, or -1 when the bytes are not valid
 * UTF-8 or not a valid IDN; the caller then keeps (and escapes) the bytes as they are.
 */
function idnToAscii(buf: Uint8Array, len: number, out: Uint8Array): number {
  for (let i = 0; i < len; i++) {
    const b = buf[i]!;
    if (b < 0x80 && !idnSafeAscii(b)) return -1;
  }
  let text: string;
  try {
    text = UTF8_STRICT.decode(buf.subarray(0, len));
  } catch {
    return -1;
  }
  let ascii: string;
  try {
    ascii = new URL(`http://${text}/`).hostname;
  } catch {
    return -1;
  }
  if (ascii === '' || ascii.startsWith('[')) return -1;
  const r = ENCODER.encodeInto(ascii, out);
  return r.read === ascii.length ? r.written : -1;
}

// ---- the host pipeline -------------------------------------------------------------------------

/** Host kinds by the code that canonicalHostInto returns in its low two bits. */
export const HOST_KINDS: readonly HostKind[] = ['name', 'ipv4', 'ipv6'];

/**
 * Canonicalise the host bytes `src[start, end)` (as they appear in the URL: escaped, maybe in
 * brackets, no port, no user info) and write the canonical host into `out` from `o` (room for
 * three times the input is needed). Returns `(newEnd << 2) | kindCode` (kindCode indexes
 * HOST_KINDS), or -1 when the host is empty or a malformed IPv6 literal.
 */
export function canonicalHostInto(src: Uint8Array, start: number, end: number, out: Uint8Array, o: number): number {
  // Brackets are syntax: decided on the host as written, so an escaped "%5B" stays a name byte.
  if (end > start && src[start] === 0x5b /* [ */) {
    if (end - start < 2 || src[end - 1] !== 0x5d /* ] */) return -1;
    const n = unescapeInto(src, start + 1, end - 1, HOST_A);
    const v6 = canonicalIpv6(ASCII_DECODER.decode(HOST_A.subarray(0, n)));
    if (v6 === null) return -1;
    return (asciiInto(v6.host, out, o) << 2) | (v6.hostKind === 'ipv4' ? 1 : 2);
  }
  let len = unescapeInto(src, start, end, HOST_A);
  let buf = HOST_A;
  let nonAscii = false;
  for (let i = 0; i < len; i++) if (buf[i]! >= 0x80) nonAscii = true;
  if (nonAscii) {
    const n = idnToAscii(buf, len, HOST_B);
    if (n >= 0) {
      buf = HOST_B;
      len = n;
    }
  }
  // Dots (leading/trailing removed, runs collapsed) and ASCII lower case, in one pass.
  const lower = buf === HOST_A ? HOST_B : HOST_A;
  let m = 0;
  for (let i = 0; i < len; i++) {
    let b = buf[i]!;
    if (b === 0x2e && (m === 0 || lower[m - 1] === 0x2e)) continue;
    if (b >= 0x41 && b <= 0x5a) b += 0x20;
    lower[m++] = b;
  }
  if (m > 0 && lower[m - 1] === 0x2e) m--;
  if (m === 0) return -1;
  const v4 = parseIpv4Bytes(lower, m);
  if (v4 >= 0) return (asciiInto(ipv4Text(v4), out, o) << 2) | 1;
  return escapeInto(lower, m, ESCAPE_HOST, out, o) << 2;
}

/** canonicalHostInto, as a string: for host-only callers (SNI, CONNECT, Host header). */
export function canonicalHostBytes(src: Uint8Array, start: number, end: number): CanonicalHost | null {
  const r = canonicalHostInto(src, start, end, ESCAPED, 0);
  if (r < 0) return null;
  return { host: ASCII_DECODER.decode(ESCAPED.subarray(0, r >> 2)), hostKind: HOST_KINDS[r & 3]! };
}
