/**
 * What a command gets to talk to the world: the three standard streams (tests pass their own), and
 * small helpers shared by every command: argument parsing that fails with ERR_USAGE, and reading
 * standard input line by line.
 */
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SafespotError } from '../policy/errors.js';

export interface Io {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
}

/** A command: arguments after the command name in, exit status out. */
export type Command = (args: string[], io: Io) => Promise<number>;

/** node:util parseArgs, strict, with failures turned into ERR_USAGE (exit 2). */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  usage: string,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (cause) {
    throw new SafespotError('ERR_USAGE', `${(cause as Error).message}\nusage: ${usage}`, { cause });
  }
}

/** Lines of a stream (LF or CRLF), without their line ends. */
export async function* readLines(input: Readable): AsyncGenerator<string> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) yield line;
}

/** Write and respect back-pressure. */
export async function writeOut(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', resolve));
}
