/**
 * `safespot canonicalize [--json]`: URLs on stdin, one per line; their canonical form (Safe Browsing
 * v4) on stdout, one per line. With --json each input line and each output line is a JSON string,
 * for URLs holding tabs or odd characters. A line that cannot be canonicalised gives an empty line
 * (`null` with --json) and a one-line note on stderr naming the line number; the exit status stays 0.
 */
import { canonicalize } from '../policy/canonicalize.js';
import type { Command, Io } from './io.js';
import { parseCommandArgs, readLines, writeOut } from './io.js';

/** Read the input lines of a canonicalize/expressions command, turning each into a URL or null. */
export async function* inputUrls(io: Io, json: boolean, command: string): AsyncGenerator<string | null> {
  let lineNo = 0;
  for await (const line of readLines(io.stdin)) {
    lineNo++;
    if (!json) {
      yield line;
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    if (typeof value === 'string') {
      yield value;
    } else {
      io.stderr.write(`safespot ${command}: line ${lineNo}: not a JSON string\n`);
      yield null;
    }
  }
}

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, 'safespot canonicalize [--json] < urls');
  const json = values.json === true;
  let lineNo = 0;
  for await (const url of inputUrls(io, json, 'canonicalize')) {
    lineNo++;
    const c = url === null ? null : canonicalize(url);
    if (c === null && url !== null) io.stderr.write(`safespot canonicalize: line ${lineNo}: cannot be canonicalised\n`);
    const text = c === null ? (json ? 'null' : '') : json ? JSON.stringify(c.href) : c.href;
    await writeOut(io.stdout, `${text}\n`);
  }
  return 0;
};
