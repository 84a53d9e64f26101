/**
 * `safespot expressions [--json]`: URLs on stdin, one per line (JSON strings with --json); for each,
 * one line on stdout with the JSON array of its Safe Browsing suffix/prefix expressions, most
 * specific first. A line that cannot be canonicalised gives `null` and a one-line note on stderr.
 */
import { canonicalize } from '../policy/canonicalize.js';
import { urlExpressions } from '../policy/expressions.js';
import { inputUrls } from './cmd-canonicalize.js';
import type { Command } from './io.js';
import { parseCommandArgs, writeOut } from './io.js';

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, 'safespot expressions [--json] < urls');
  let lineNo = 0;
  for await (const url of inputUrls(io, values.json === true, 'expressions')) {
    lineNo++;
    const c = url === null ? null : canonicalize(url);
    if (c === null && url !== null) io.stderr.write(`safespot expressions: line ${lineNo}: cannot be canonicalised\n`);
    await writeOut(io.stdout, `${c === null ? 'null' : JSON.stringify(urlExpressions(c))}\n`);
  }
  return 0;
};
