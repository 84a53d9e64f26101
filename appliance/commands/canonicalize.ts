/**
 * `safespot canonicalize [--json]`: URLs on stdin, one per line; their canonical form (Safe Browsing
 * v4) on stdout, one per line. A line that cannot be canonicalised gives an empty line (`null` with
 * --json) and a one-line note on stderr naming the line number; the exit status stays 0.
 *
 * Input is bytes. Without --json each line (up to LF, one CR before it dropped) is canonicalised
 * byte for byte, as a URL off the wire is: the byte 0x80 is the byte 0x80 (`%80`), never decoded as
 * UTF-8 first, so the official vector `http://\x01\x80.com/` gives `http://%01%80.com/`.
 * With --json each line is a JSON string (for URLs holding tabs, newlines or odd characters), and a
 * JSON string is Unicode text: every character, U+0080–U+00FF included, stands for its UTF-8 bytes
 * (`"\u0080"` is C2 80 → `%C2%80`, `"é"` → `%C3%A9`), as a browser sends typed text. A raw byte
 * 0x80–0xFF that is not UTF-8 is written as the lone surrogate U+DC80–U+DCFF (Python's
 * "surrogateescape", PEP 383: `"\u0001\udc80"` is the bytes 01 80); any other lone surrogate makes
 * the line an error. Output lines are JSON strings then; a canonical URL is always ASCII.
 */
import { canonicalize, canonicalizeBytes, type CanonicalUrl } from '../../policy/canonicalize.js';
import type { Command, Io } from '../io.js';
import { parseCommandArgs, readByteLines, writeOut } from '../io.js';

const USAGE = `safespot canonicalize [--json] < urls
  one URL per line, read as bytes (a byte 0x80 is %80, never decoded as UTF-8);
  --json: each line a JSON string, whose characters stand for their UTF-8 bytes
  (U+0080 is C2 80) and whose lone surrogates U+DC80-U+DCFF for raw bytes 0x80-0xFF`;

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const ENCODER = new TextEncoder();
/** A surrogate half without its partner. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * What a --json string stands for: the string itself when it is well-formed text (canonicalize()
 * encodes it as UTF-8), else its bytes: UTF-8 of the text with each lone surrogate U+DC80–U+DCFF as
 * the raw byte 0x80–0xFF; null for any other lone surrogate (it stands for no byte).
 */
export function jsonStringInput(text: string): string | Uint8Array | null {
  const parts: Uint8Array[] = [];
  let last = 0;
  for (const m of text.matchAll(LONE_SURROGATE)) {
    const unit = text.charCodeAt(m.index);
    if (unit < 0xdc80 || unit > 0xdcff) return null;
    parts.push(ENCODER.encode(text.slice(last, m.index)), Uint8Array.of(unit - 0xdc00));
    last = m.index + 1;
  }
  if (parts.length === 0) return text;
  parts.push(ENCODER.encode(text.slice(last)));
  return Buffer.concat(parts);
}

/**
 * The input lines of a canonicalize/expressions command, each canonicalised (null when it cannot be);
 * every null comes with its one-line note on stderr naming the line.
 */
export async function* inputCanonical(io: Io, json: boolean, command: string): AsyncGenerator<CanonicalUrl | null> {
  let lineNo = 0;
  for await (const line of readByteLines(io.stdin)) {
    lineNo++;
    const input = json ? jsonLine(line, io, command, lineNo) : line;
    if (input === null) {
      yield null;
      continue;
    }
    const c = typeof input === 'string' ? canonicalize(input) : canonicalizeBytes(input);
    if (c === null) io.stderr.write(`safespot ${command}: line ${lineNo}: cannot be canonicalised\n`);
    yield c;
  }
}

function jsonLine(line: Buffer, io: Io, command: string, lineNo: number): string | Uint8Array | null {
  let value: unknown;
  try {
    // RFC 8259 §8.1: JSON text is UTF-8; a line that is not is not JSON.
    value = JSON.parse(UTF8.decode(line));
  } catch {
    value = undefined;
  }
  if (typeof value !== 'string') {
    io.stderr.write(`safespot ${command}: line ${lineNo}: not a JSON string\n`);
    return null;
  }
  const input = jsonStringInput(value);
  if (input === null) io.stderr.write(`safespot ${command}: line ${lineNo}: a lone surrogate outside U+DC80-U+DCFF stands for no byte\n`);
  return input;
}

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, USAGE);
  const json = values.json === true;
  for await (const c of inputCanonical(io, json, 'canonicalize')) {
    const text = c === null ? (json ? 'null' : '') : json ? JSON.stringify(c.href) : c.href;
    await writeOut(io.stdout, `${text}\n`);
  }
  return 0;
};

