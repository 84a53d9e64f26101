/**
 * What a command gets to talk to the world: the three standard streams (tests pass their own), and
 * small helpers shared by every command: argument parsing that fails with ERR_USAGE and answers
 * `--help`/`-h`, reading standard input line by line (as text or as bytes), reading a signing key,
 * and writing a file atomically.
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

/**
 * Thrown by parseCommandArgs when the arguments ask for help: cli.ts prints `usage` on stdout and
 * exits 0. Not a SafespotError, because asking for help is not a failure.
 */
export class HelpRequested extends Error {
  readonly usage: string;
  constructor(usage: string) {
    super('help requested');
    this.name = 'HelpRequested';
    this.usage = usage;
  }
}

/** True when `--help` or `-h` comes before any `--` (after it, they are positionals). */
export function asksForHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/**
 * node:util parseArgs, strict, with failures turned into ERR_USAGE (exit 2). `--help` or `-h`
 * anywhere before `--` wins over everything else and throws HelpRequested with `usage`, so every
 * command answers it the same way, whatever else is on the line.
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  usage: string,
  allowPositionals = false,
) {
  if (asksForHelp(args)) throw new HelpRequested(usage);
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

/**
 * Lines of a stream as raw bytes: a line ends at LF, and one CR before the LF is dropped; a last
 * line without LF counts. Nothing is decoded, so a byte 0x80 stays the byte 0x80 (a URL on stdin
 * is bytes, and UTF-8 decoding would turn that byte into U+FFFD).
 */
export async function* readByteLines(input: Readable): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  for await (const chunk of input) {
    const buf: Buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
    let start = 0;
    for (let lf = buf.indexOf(0x0a); lf !== -1; lf = buf.indexOf(0x0a, start)) {
      pending.push(buf.subarray(start, lf));
      yield withoutCr(Buffer.concat(pending));
      pending = [];
      start = lf + 1;
    }
    if (start < buf.length) pending.push(buf.subarray(start));
  }
  if (pending.length > 0) yield withoutCr(Buffer.concat(pending));
}

const withoutCr = (line: Buffer): Buffer => (line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line);

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
