/**
 * The streaming compile of one URL list: its bytes in, hash prefixes into a store builder, and the
 * same report parseUrlList (lists.ts) gives, without ever holding the list as strings (issue 23: a
 * router-class box runs out of memory long before it runs out of time). One pass over the bytes,
 * line by line; the only strings made are those of the odd lines below.
 *
 * - `domains`: a line of only `[A-Za-z0-9_.-]` (the shape of nearly every line of a blocklist) is
 *   canonicalised here, byte by byte into a scratch buffer, and its expression `host/` hashed from
 *   there. Such a line is a single token, so the only rules that apply are listHost's: lower case,
 *   dots collapsed and trimmed, at most 260 characters written and 253 canonical, labels of 1..63
 *   characters not starting or ending with `-`. A line that could be an IPv4 address in any of its
 *   encodings (only `0-9 a-f x .`), and every other line (comments, hosts-file and adblock lines,
 *   `*.`, escapes, IDN, whitespace, invalid UTF-8), is decoded alone and given to parseDomainLine.
 * - `urls`: every line is decoded alone and given to parseUrlLine.
 * - `hashed-urls`: a line of hex digits only is parsed here; any other line goes to parseHashedLine.
 *
 * Lines are what parseUrlList's split gives: separated by LF, one CR before it dropped (clear
 * lists; a hashed line trims it), a UTF-8 BOM at the start skipped; a decoded line is decoded alone,
 * which gives what decoding the whole text gives (an LF byte is never inside a UTF-8 sequence, so a
 * broken sequence ends at it either way). test/unit/compile-lists.test.ts compares the two parsers'
 * entries, reports and errors on a corpus of edge cases and on fuzzed lists.
 */
import { SafespotError } from './errors.js';
import {
  MAX_LINE_NUMBERS,
  parseDomainLine,
  parseHashedLine,
  parseUrlLine,
  refuseIfGarbage,
  type Collector,
  type LineResult,
  type ListReport,
  type UrlListKind,
} from './lists.js';
import { sha256PrefixWords, sha256StringWords } from './sha256.js';

/** Where the entries go: a HashStoreBuilder with the list open. */
export interface EntrySink {
  add(h0: number, h1: number, len: number): void;
}

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const DASH = 0x2d;

/** Byte classes of the domains fast path: 0 other, 1 name byte, 2 upper case letter, 3 dot. */
const CLASS = new Uint8Array(256);
for (let b = 0x61; b <= 0x7a; b++) CLASS[b] = 1;
for (let b = 0x30; b <= 0x39; b++) CLASS[b] = 1;
CLASS[0x5f] = 1; // _
CLASS[DASH] = 1;
for (let b = 0x41; b <= 0x5a; b++) CLASS[b] = 2;
CLASS[DOT] = 3;

/** Bytes an IPv4 address may be written with (decimal, octal, hex parts): `0-9 a-f x .`, lower case. */
const IPV4_BYTE = new Uint8Array(256);
for (const c of '0123456789abcdefx.') IPV4_BYTE[c.charCodeAt(0)] = 1;

/** Hex digit values (-1 = not hex). */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[0x41 + i] = 10 + i;
  HEX[0x61 + i] = 10 + i;
}

/** listHost's bound on the token as written (policy/lists.ts). */
const MAX_TOKEN = 260;
/** A canonical name holds at most 253 characters. */
const MAX_NAME = 253;

// The canonical host plus '/', at most MAX_TOKEN + 1 bytes (dots only ever shrink it).
const SCRATCH = new Uint8Array(MAX_TOKEN + 8);
const WORDS = new Uint32Array(8);
// ignoreBOM: a BOM inside the list is a character of its line, as when the whole text is decoded.
const LINE_DECODER = new TextDecoder('utf-8', { ignoreBOM: true });
const ENCODER = new TextEncoder();

const SLOW = -2;
const MALFORMED = -1;

/**
 * The expression of a fast-path domains line `bytes[start, end)` written into SCRATCH: its length,
 * MALFORMED, or SLOW when the line needs the full parser.
 */
function fastDomain(bytes: Uint8Array, start: number, end: number): number {
  const length = end - start;
  let m = 0;
  let maybeIpv4 = true;
  for (let i = start; i < end; i++) {
    let b = bytes[i]!;
    const c = CLASS[b]!;
    if (c === 0) return SLOW;
    if (length > MAX_TOKEN) continue; // malformed whatever it holds; only the class of each byte matters
    if (c === 3) {
      if (m === 0 || SCRATCH[m - 1] === DOT) continue;
    } else if (c === 2) b += 0x20;
    if (IPV4_BYTE[b] === 0) maybeIpv4 = false;
    SCRATCH[m++] = b;
  }
  if (length > MAX_TOKEN) return MALFORMED;
  if (m > 0 && SCRATCH[m - 1] === DOT) m--;
  if (m === 0) return MALFORMED;
  if (maybeIpv4) return SLOW;
  if (m > MAX_NAME) return MALFORMED;
  let labelStart = 0;
  for (let i = 0; i <= m; i++) {
    if (i < m && SCRATCH[i] !== DOT) continue;
    // Labels are never empty here (dots collapsed and trimmed).
    if (i - labelStart > 63 || SCRATCH[labelStart] === DASH || SCRATCH[i - 1] === DASH) return MALFORMED;
    labelStart = i + 1;
  }
  SCRATCH[m] = 0x2f; // '/'
  return m + 1;
}

function addExpression(sink: EntrySink | null, e: string): void {
  if (sink === null) return;
  sha256StringWords(e, WORDS);
  sink.add(WORDS[0]!, WORDS[1]!, 32);
}

/** Hex value of `bytes[at, at + n)` (all hex digits, n <= 8), as an unsigned number. */
function hexWord(bytes: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 16 + HEX[bytes[at + i]!]!;
  return v;
}

/**
 * Scan a URL list and add each entry to `sink`; returns the list's report (the same, key for key,
 * as parseUrlList's). Throws only SafespotError ERR_LIST_INVALID (no entry, mostly malformed), as
 * parseUrlList does; the entries added before are then the caller's to drop. With a null sink
 * nothing is hashed: the report alone (the refresher's entry count before a compile).
 */
export function scanUrlList(kind: UrlListKind, input: string | Uint8Array, id: string, sink: EntrySink | null): ListReport {
  if (kind !== 'domains' && kind !== 'urls' && kind !== 'hashed-urls') {
    throw new SafespotError('ERR_LIST_INVALID', `list "${id}": kind "${String(kind)}" is not a URL list kind`);
  }
  const bytes = typeof input === 'string' ? ENCODER.encode(input) : input;
  const total = bytes.length;
  let pos = total >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  const c: Collector = { lines: 0, skipped: 0, malformed: 0, malformedLines: [] };
  let entries = 0;
  let shortPrefixes = 0;
  const malformed = (): void => {
    c.malformed++;
    if (c.malformedLines.length < MAX_LINE_NUMBERS) c.malformedLines.push(c.lines);
  };
  const clear = (r: LineResult): void => {
    if (r === 'skip') c.skipped++;
    else if (r === 'malformed') malformed();
    else
      for (const e of r.entries) {
        addExpression(sink, e);
        entries++;
      }
  };
  while (pos < total) {
    let end = bytes.indexOf(LF, pos);
    if (end < 0) end = total;
    const next = end + 1;
    c.lines++;
    if (kind === 'hashed-urls') {
      hashedLine(bytes, pos, end);
    } else {
      if (end > pos && bytes[end - 1] === CR) end--;
      if (end === pos) c.skipped++;
      else if (kind === 'domains') {
        const n = fastDomain(bytes, pos, end);
        if (n === SLOW) clear(parseDomainLine(LINE_DECODER.decode(bytes.subarray(pos, end))));
        else if (n === MALFORMED) malformed();
        else {
          if (sink !== null) {
            sha256PrefixWords(SCRATCH, n, WORDS);
            sink.add(WORDS[0]!, WORDS[1]!, 32);
          }
          entries++;
        }
      } else clear(parseUrlLine(LINE_DECODER.decode(bytes.subarray(pos, end))));
    }
    pos = next;
  }
  refuseIfGarbage(kind, id, c, entries, c.lines - c.skipped);
  return { ...c, entries, shortPrefixes };

  function hashedLine(b: Uint8Array, start: number, stop: number): void {
    let e = stop;
    if (e > start && b[e - 1] === CR) e--;
    let hex = e > start;
    for (let i = start; hex && i < e; i++) if (HEX[b[i]!]! < 0) hex = false;
    let hi: number;
    let lo: number;
    let len: number;
    if (hex) {
      const n = e - start;
      if (n < 8 || n > 64 || n % 2 !== 0) {
        malformed();
        return;
      }
      const loDigits = Math.min(n, 16) - 8;
      hi = hexWord(b, start, 8);
      lo = hexWord(b, start + 8, loDigits) * 2 ** (4 * (8 - loDigits));
      len = n / 2;
    } else {
      const r = parseHashedLine(LINE_DECODER.decode(b.subarray(start, stop)));
      if (r === 'skip') {
        c.skipped++;
        return;
      }
      if (r === 'malformed') {
        malformed();
        return;
      }
      ({ hi, lo, len } = r);
    }
    if (len < 8) shortPrefixes++;
    sink?.add(hi, lo, len);
    entries++;
  }
}

/** Lines in a list (an upper bound of its entries but for hosts-file lines naming several hosts): the builder's first size. */
export function countLines(input: string | Uint8Array): number {
  if (typeof input === 'string') {
    let n = 0;
    for (let i = input.indexOf('\n'); i >= 0; i = input.indexOf('\n', i + 1)) n++;
    return n + 1;
  }
  let n = 0;
  for (let i = input.indexOf(LF); i >= 0; i = input.indexOf(LF, i + 1)) n++;
  return n + 1;
}
