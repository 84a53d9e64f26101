/**
 * What a command gets to talk to the world: the three standard streams (tests pass their own), and
 * small helpers shared by every command: argument parsing that fails with ERR_USAGE, reading
 * standard input line by line, reading a signing key, and writing a file atomically.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
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

/** The Ed25519 private key a command signs with (`flag` names its option); ERR_USAGE (exit 2) when it cannot be read or is not one. */
export function readSigningKey(path: string, flag: string, usage: string): KeyObject {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw new SafespotError('ERR_USAGE', `${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})\nusage: ${usage}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    // No detail from the parser: the file is a secret.
    throw new SafespotError('ERR_USAGE', `${flag}: ${path} is not a PEM private key\nusage: ${usage}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SafespotError('ERR_USAGE', `${flag}: ${path} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519\nusage: ${usage}`);
  return key;
}

/** Write a file whole or not at all (temporary file, then rename). */
export function writeAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, bytes, { mode: 0o644 });
  renameSync(tmp, path);
}
