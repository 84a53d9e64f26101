/**
 * `safespot expressions [--json]`: URLs on stdin, one per line (JSON strings with --json); for each,
 * one line on stdout with the JSON array of its Safe Browsing suffix/prefix expressions, most
 * specific first. A line that cannot be canonicalised gives `null` and a one-line note on stderr.
 * Lines are read as bytes, and --json strings stand for bytes, exactly as for `canonicalize`
 * (commands/canonicalize.ts says how).
 */
import { urlExpressions } from '../../policy/expressions.js';
import { inputCanonical } from './canonicalize.js';
import type { Command } from '../io.js';
import { parseCommandArgs, writeOut } from '../io.js';

const USAGE = `safespot expressions [--json] < urls
  one URL per line, read as bytes; --json: each line a JSON string, read as for canonicalize --json`;

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, USAGE);
  for await (const c of inputCanonical(io, values.json === true, 'expressions')) {
    await writeOut(io.stdout, `${c === null ? 'null' : JSON.stringify(urlExpressions(c))}\n`);
  }
  return 0;
};
