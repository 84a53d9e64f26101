#!/usr/bin/env node
/**
 * `safespot <command> …`: the command table and the one place where errors become exit statuses
 * (0 success, 2 bad usage or config with every problem printed, 1 otherwise). Each command lives in
 * its own `cmd-*.ts` file and is loaded only when called, so `safespot canonicalize` never loads the
 * proxy or sharp.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERRORS, SafespotError } from '../policy/errors.js';
import { HelpRequested, type Command, type Io } from './io.js';

interface Entry {
  readonly summary: string;
  readonly load: () => Promise<{ run: Command }>;
}

const COMMANDS: Record<string, Entry> = {
  serve: { summary: 'run the appliance (serve [--config FILE])', load: () => import('./commands/serve.js') },
  canonicalize: { summary: 'canonical Safe Browsing form of URLs on stdin ([--json])', load: () => import('./commands/canonicalize.js') },
  expressions: { summary: 'suffix/prefix expressions of URLs on stdin, a JSON array per line ([--json])', load: () => import('./commands/expressions.js') },
  certs: { summary: 'create, export or show the interception CA (certs init|export|show)', load: () => import('./commands/certs.js') },
  hash: { summary: 'exact and PDQ hashes of image files, a JSON line each (hash [--dihedral] FILE…)', load: () => import('./commands/hash.js') },
  audit: { summary: 'period report from the audit journal (audit report --config FILE --from ISO --to ISO --format json|csv|html)', load: () => import('./commands/audit.js') },
  check: { summary: 'verdicts for URLs/hosts as JSON lines on stdin (check --config FILE [--bundle FILE])', load: () => import('./commands/check.js') },
  compile: { summary: 'compile the lists of a config into a policy bundle (compile --config FILE -o FILE)', load: () => import('./commands/compile.js') },
  sign: { summary: 'sign a list for its publishers: FILE.sig naming the list and a version (sign --key KEY.pem --name NAME [--version N] FILE)', load: () => import('./commands/sign.js') },
  healthcheck: { summary: 'container health: /readyz and one canary decision through the proxy (healthcheck [--config FILE])', load: () => import('./commands/healthcheck.js') },
};

/** The command names, in the order `safespot --help` lists them. */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, e]) => `  ${name.padEnd(14)}${e.summary}`);
  return `usage: safespot <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

/** Run one command line; returns the exit status. Never throws. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.stdout.write(`${process.env.npm_package_version ?? '0.1.0'}\n`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.stderr.write(`safespot: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    const mod = await entry.load();
    return await mod.run(rest, io);
  } catch (err) {
    return reportError(err, io);
  }
}

/** Print an error (with every detail line) and give its exit status; a help request prints its usage on stdout (0). */
export function reportError(err: unknown, io: Io): number {
  if (err instanceof HelpRequested) {
    io.stdout.write(`usage: ${err.usage}\n`);
    return 0;
  }
  if (err instanceof SafespotError) {
    io.stderr.write(`safespot: ${err.code}: ${err.message}\n`);
    for (const d of err.details) io.stderr.write(`  - ${d}\n`);
    return ERRORS[err.code].exit;
  }
  io.stderr.write(`safespot: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      // serve keeps running on its own handles; other commands set the exit status and let output drain.
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`safespot: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
