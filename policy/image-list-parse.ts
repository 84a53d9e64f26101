/**
 * Image hash list files: the text form of the lists the matcher (image-lists.ts) is compiled from.
 *
 * List kinds (one entry per line; `#` starts a comment; blank lines, CRLF and a UTF-8 BOM are fine):
 * - `md5`, `sha1`, `sha256`: the hex digest of the file bytes (32, 40, 64 hex digits, any case).
 *   A line may carry more after whitespace (the `sha256sum` output form); only the digest is kept.
 * - `pdq`: 64 hex digits, optionally `,quality` (0..100); further comma fields are ignored (the
 *   reference `pdq-photo-hasher` prints `hash,quality,filename`). Entries whose quality is below
 *   `pdqMinQuality` are dropped and counted: PDQ of a flat image says nothing about the image.
 * A malformed line is counted and reported by line number only (never its content: lists stay
 * hashed and private). A list with more malformed lines than good ones, or with no entry line at
 * all, is refused with ERR_LIST_INVALID.
 */
import { SafespotError } from './errors.js';
import { pdqHexToWords } from './pdq.js';

export type ExactKind = 'md5' | 'sha1' | 'sha256';
export type ImageListKind = ExactKind | 'pdq';
export type ListMode = 'enforce' | 'monitor';

export const IMAGE_LIST_KINDS: readonly ImageListKind[] = ['md5', 'sha1', 'sha256', 'pdq'];
/** Digest length in bytes per exact kind. */
export const DIGEST_BYTES: Readonly<Record<ExactKind, number>> = { md5: 16, sha1: 20, sha256: 32 };

/** How a parse went; line numbers only, never content. */
export interface ImageListReport {
  /** Lines in the text. */
  readonly lines: number;
  /** Entries kept (after dropping duplicates and low-quality PDQ). */
  readonly entries: number;
  readonly duplicates: number;
  readonly malformed: number;
  /** The first (at most 20) malformed line numbers, 1-based. */
  readonly malformedLines: readonly number[];
  /** PDQ entries dropped for quality below pdqMinQuality. */
  readonly lowQuality: number;
}

/** A parsed list: exact digests (entries × digest bytes) or PDQ hashes (entries × 8 words). */
export interface ParsedImageList {
  readonly kind: ImageListKind;
  readonly count: number;
  /** For md5/sha1/sha256: sorted concatenated digests. */
  readonly digests?: Uint8Array;
  /** For pdq: 8 uint32 words per hash (pdqHexToWords form). */
  readonly pdq?: Uint32Array;
  readonly report: ImageListReport;
}

const MAX_REPORTED_LINES = 20;
/** Hex digits only (the length is checked apart). */
export const HEX = /^[0-9a-fA-F]+$/;

/** Parse one list's text. Throws ERR_LIST_INVALID when the list is mostly garbage or empty. */
export function parseImageList(text: string, kind: ImageListKind, opts: { pdqMinQuality?: number } = {}): ParsedImageList {
  const minQuality = opts.pdqMinQuality ?? 50;
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lines = body.split('\n');
  const hexLen = kind === 'pdq' ? 64 : DIGEST_BYTES[kind] * 2;
  const seen = new Set<string>();
  const malformedLines: number[] = [];
  let malformed = 0;
  let lowQuality = 0;
  let duplicates = 0;
  let dataLines = 0;
  lines.forEach((raw, i) => {
    const hashAt = raw.indexOf('#');
    const line = (hashAt >= 0 ? raw.slice(0, hashAt) : raw).trim();
    if (line === '') return;
    dataLines++;
    const parsed = kind === 'pdq' ? parsePdqLine(line) : parseExactLine(line, hexLen);
    if (parsed === null) {
      malformed++;
      if (malformedLines.length < MAX_REPORTED_LINES) malformedLines.push(i + 1);
      return;
    }
    if (parsed.quality !== undefined && parsed.quality < minQuality) {
      lowQuality++;
      return;
    }
    if (seen.has(parsed.hex)) duplicates++;
    else seen.add(parsed.hex);
  });
  const lineCount = body.endsWith('\n') ? lines.length - 1 : lines.length;
  const report = { lines: lineCount, entries: seen.size, duplicates, malformed, malformedLines, lowQuality };
  if (dataLines === 0) throw new SafespotError('ERR_LIST_INVALID', `${kind} list has no entries`);
  if (malformed > dataLines - malformed) {
    throw new SafespotError('ERR_LIST_INVALID', `${kind} list: ${malformed} of ${dataLines} lines are malformed`, {
      details: [`malformed lines: ${malformedLines.join(', ')}${malformed > malformedLines.length ? ', …' : ''}`],
    });
  }
  const hexes = [...seen].sort();
  if (kind === 'pdq') {
    const pdq = new Uint32Array(hexes.length * 8);
    hexes.forEach((h, i) => pdqHexToWords(h, pdq, i * 8));
    return { kind, count: hexes.length, pdq, report };
  }
  const width = DIGEST_BYTES[kind];
  const digests = new Uint8Array(hexes.length * width);
  hexes.forEach((h, i) => digests.set(Buffer.from(h, 'hex'), i * width));
  return { kind, count: hexes.length, digests, report };
}

function parseExactLine(line: string, hexLen: number): { hex: string; quality?: number } | null {
  const token = line.split(/\s/, 1)[0] ?? '';
  if (token.length !== hexLen || !HEX.test(token)) return null;
  return { hex: token.toLowerCase() };
}

function parsePdqLine(line: string): { hex: string; quality?: number } | null {
  const fields = line.split(',');
  const hex = (fields[0] ?? '').trim();
  if (hex.length !== 64 || !HEX.test(hex)) return null;
  if (fields.length === 1) return { hex: hex.toLowerCase() };
  const q = (fields[1] ?? '').trim();
  if (!/^\d{1,3}$/.test(q) || Number(q) > 100) return null;
  return { hex: hex.toLowerCase(), quality: Number(q) };
}
