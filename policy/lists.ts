/**
 * URL list parsers: text (or bytes) in, entries and a report out. Pure: no fs, no network.
 *
 * - `domains`: one host per line; hosts-file lines (`0.0.0.0 a.test b.test`), adblock `||a.test^`,
 *   `*.a.test`; comments (`#`, `!`, `[Adblock …]`), blank lines, CRLF, a BOM, trailing dots, IDN
 *   (to punycode). The entry is the Safe Browsing expression `host/`, which matches the host and
 *   every subdomain.
 * - `urls`: one URL per line, with or without scheme; the entry is the canonical expression of the
 *   page itself (`host/path` or `host/path?query`).
 * - `hashed-urls`: hex SHA-256 of an expression, full (64 hex) or a prefix of 4..31 bytes.
 *
 * Malformed lines are counted with their line numbers; their text is never repeated (a hashed list
 * never appears in clear anywhere, and the same rule keeps the other kinds simple). A list that is
 * mostly garbage (more than half its entry lines malformed) or has no entry at all is refused with
 * ERR_LIST_INVALID.
 */
import { canonicalize, canonicalizeHost } from './canonicalize.js';
import { SafespotError } from './errors.js';
import { parseIp } from './ip.js';

export type UrlListKind = 'domains' | 'urls' | 'hashed-urls';
export const URL_KINDS: readonly UrlListKind[] = ['domains', 'urls', 'hashed-urls'];

/** How many malformed line numbers a report keeps. */
export const MAX_LINE_NUMBERS = 20;

export interface ListReport {
  /** Lines in the text. */
  readonly lines: number;
  /** Entries produced (a hosts-file line may give several), before duplicates are dropped. */
  readonly entries: number;
  /** Comments, blank lines, hosts-file boilerplate (localhost …). */
  readonly skipped: number;
  readonly malformed: number;
  /** The first line numbers (1-based) of malformed lines. */
  readonly malformedLines: readonly number[];
  /** hashed-urls: entries shorter than 8 bytes (matched on their 4..7 bytes only). */
  readonly shortPrefixes: number;
}

/** Hash prefixes of a hashed list: digest words 0 and 1 and the length in bytes (4..32). */
export interface HashPrefixes {
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly len: Uint8Array;
}

export interface ParsedUrlList {
  readonly kind: UrlListKind;
  /** Safe Browsing expressions (domains, urls); empty for hashed-urls. */
  readonly expressions: readonly string[];
  /** Digest prefixes (hashed-urls); empty otherwise. */
  readonly prefixes: HashPrefixes;
  readonly report: ListReport;
}

const HOSTS_BOILERPLATE = new Set([
  'localhost',
  'localhost.localdomain',
  'local',
  'broadcasthost',
  'ip6-localhost',
  'ip6-loopback',
  'ip6-localnet',
  'ip6-mcastprefix',
  'ip6-allnodes',
  'ip6-allrouters',
  'ip6-allhosts',
  '0.0.0.0',
]);

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A canonical host that is a plausible DNS name (punycode) or an IP literal; else null. */
export function listHost(token: string): string | null {
  if (token.length === 0 || token.length > 260 || /[\s/\\@?#:]/.test(token.replace(/^\[.*\]$/, ''))) return null;
  const c = canonicalizeHost(token);
  if (!c) return null;
  if (c.hostKind !== 'name') return c.host;
  if (c.host.length === 0 || c.host.length > 253) return null;
  for (const label of c.host.split('.')) if (!LABEL.test(label)) return null;
  return c.host;
}

/** Text of a list: bytes are decoded as UTF-8 (invalid bytes become U+FFFD); a BOM is dropped. */
function toText(input: string | Uint8Array): string {
  if (typeof input === 'string') return input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  return new TextDecoder('utf-8').decode(input);
}

/** Drop a `#` comment that follows whitespace (hosts files put them at the end of lines). */
function stripInlineComment(line: string): string {
  const m = /\s#/.exec(line);
  return (m ? line.slice(0, m.index) : line).trim();
}

function isCommentLine(line: string): boolean {
  return line.startsWith('#') || line.startsWith('!') || line.startsWith('[');
}

/** What one line of a clear-text list gives: its expressions, nothing (comment, blank), or a malformed line. */
export type LineResult = { readonly entries: readonly string[] } | 'skip' | 'malformed';

/** One line (no line break) of a `domains` list. */
export function parseDomainLine(raw: string): LineResult {
  const line = stripInlineComment(raw);
  if (line === '' || isCommentLine(line)) return 'skip';
  if (line.startsWith('||')) {
    // Adblock network rule for a whole domain; anything with options, paths or wildcards is not.
    const m = /^\|\|([^/^$*|]+)\^?\|?$/.exec(line);
    const host = m ? listHost(m[1]!) : null;
    return host ? { entries: [`${host}/`] } : 'malformed';
  }
  const tokens = line.split(/\s+/);
  if (tokens.length > 1) {
    // hosts-file line: an address, then one or more names.
    if (parseIp(tokens[0]!) === null) return 'malformed';
    const out: string[] = [];
    for (const name of tokens.slice(1)) {
      if (HOSTS_BOILERPLATE.has(name.toLowerCase())) continue;
      const host = listHost(name);
      if (!host) return 'malformed';
      out.push(`${host}/`);
    }
    return out.length ? { entries: out } : 'skip';
  }
  const token = tokens[0]!.startsWith('*.') ? tokens[0]!.slice(2) : tokens[0]!;
  const host = listHost(token);
  return host ? { entries: [`${host}/`] } : 'malformed';
}

/** The page expression of a URL: host, path and query as canonicalised, without scheme or port. */
export function pageExpression(input: string): string | null {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(input) ? input : `http://${input}`;
  const c = canonicalize(withScheme);
  if (!c) return null;
  if (c.hostKind === 'name' && listHost(c.host) === null) return null;
  return `${c.host}${c.path}${c.query === null ? '' : `?${c.query}`}`;
}

/** One line (no line break) of a `urls` list. */
export function parseUrlLine(raw: string): LineResult {
  const line = raw.trim();
  if (line === '' || isCommentLine(line)) return 'skip';
  if (/\s/.test(line)) return 'malformed';
  const e = pageExpression(line);
  return e ? { entries: [e] } : 'malformed';
}

/** Line counts of a parse, for its report. */
export interface Collector {
  lines: number;
  skipped: number;
  malformed: number;
  malformedLines: number[];
}

/** Refuse a list with no entry, or with more malformed entry lines than good ones (ERR_LIST_INVALID). */
export function refuseIfGarbage(kind: UrlListKind, id: string, c: Collector, entries: number, entryLines: number): void {
  const where = c.malformedLines.length ? ` (first at line ${c.malformedLines.slice(0, 5).join(', ')})` : '';
  if (entries === 0) {
    throw new SafespotError(
      'ERR_LIST_INVALID',
      `list "${id}" (${kind}) has no valid entry: ${c.lines} line(s), ${c.malformed} malformed${where}`,
    );
  }
  if (c.malformed * 2 > entryLines) {
    throw new SafespotError(
      'ERR_LIST_INVALID',
      `list "${id}" (${kind}) is mostly malformed: ${c.malformed} of ${entryLines} entry lines${where}; is its kind right?`,
    );
  }
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

const EMPTY_PREFIXES: HashPrefixes = { hi: new Uint32Array(0), lo: new Uint32Array(0), len: new Uint8Array(0) };

function parseClearList(kind: 'domains' | 'urls', text: string, id: string): ParsedUrlList {
  const parseLine = kind === 'domains' ? parseDomainLine : parseUrlLine;
  const lines = splitLines(text);
  const c: Collector = { lines: lines.length, skipped: 0, malformed: 0, malformedLines: [] };
  const expressions: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const r = parseLine(line);
    if (r === 'skip') c.skipped++;
    else if (r === 'malformed') {
      c.malformed++;
      if (c.malformedLines.length < MAX_LINE_NUMBERS) c.malformedLines.push(i + 1);
    } else for (const e of r.entries) expressions.push(e);
  }
  refuseIfGarbage(kind, id, c, expressions.length, lines.length - c.skipped);
  return {
    kind,
    expressions,
    prefixes: EMPTY_PREFIXES,
    report: { ...c, entries: expressions.length, shortPrefixes: 0 },
  };
}

const HEX = /^[0-9a-fA-F]+$/;

/** One hash prefix of a `hashed-urls` line: digest words 0 and 1 (the second zero-padded) and the length in bytes. */
export interface HashedEntry {
  readonly hi: number;
  readonly lo: number;
  readonly len: number;
}

/** One line of a `hashed-urls` list (a trailing CR is whitespace and trimmed). */
export function parseHashedLine(raw: string): HashedEntry | 'skip' | 'malformed' {
  const line = raw.trim();
  if (line === '' || isCommentLine(line)) return 'skip';
  if (line.length < 8 || line.length > 64 || line.length % 2 !== 0 || !HEX.test(line)) return 'malformed';
  return { hi: parseInt(line.slice(0, 8), 16), lo: parseInt(line.slice(8, 16).padEnd(8, '0'), 16), len: line.length / 2 };
}

function parseHashedList(text: string, id: string): ParsedUrlList {
  const lines = splitLines(text);
  const c: Collector = { lines: lines.length, skipped: 0, malformed: 0, malformedLines: [] };
  const hi = new Uint32Array(lines.length);
  const lo = new Uint32Array(lines.length);
  const len = new Uint8Array(lines.length);
  let n = 0;
  let shortPrefixes = 0;
  for (let i = 0; i < lines.length; i++) {
    const r = parseHashedLine(lines[i]!);
    if (r === 'skip') {
      c.skipped++;
      continue;
    }
    if (r === 'malformed') {
      c.malformed++;
      if (c.malformedLines.length < MAX_LINE_NUMBERS) c.malformedLines.push(i + 1);
      continue;
    }
    hi[n] = r.hi;
    lo[n] = r.lo;
    len[n] = r.len;
    if (r.len < 8) shortPrefixes++;
    n++;
  }
  refuseIfGarbage('hashed-urls', id, c, n, lines.length - c.skipped);
  return {
    kind: 'hashed-urls',
    expressions: [],
    prefixes: { hi: hi.subarray(0, n), lo: lo.subarray(0, n), len: len.subarray(0, n) },
    report: { ...c, entries: n, shortPrefixes },
  };
}

/**
 * Parse a URL list of `kind`. Throws only SafespotError: ERR_LIST_INVALID when the list is mostly
 * malformed or empty (the message names `id`, counts and line numbers, never line text).
 */
export function parseUrlList(kind: UrlListKind, input: string | Uint8Array, id = 'list'): ParsedUrlList {
  const text = toText(input);
  switch (kind) {
    case 'domains':
    case 'urls':
      return parseClearList(kind, text, id);
    case 'hashed-urls':
      return parseHashedList(text, id);
    default:
      throw new SafespotError('ERR_LIST_INVALID', `list "${id}": kind "${String(kind)}" is not a URL list kind`);
  }
}
