/**
 * Run the built `safespot` binary from tests: `serve` as a real child process (ports read from its
 * "safespot serving" log line, so configs can ask for port 0), and one-shot commands.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'appliance', 'cli.js');
export const CLI_DEMO_DIR = join(ROOT, 'appliance', 'demo');

export interface Running {
  child: ChildProcess;
  forward: number;
  admin: number;
  /** Every listener's bound port, by name. */
  ports: Record<string, number>;
  log: () => string;
  exited: Promise<number | null>;
}

/**
 * Start `safespot serve --config FILE` and resolve once it logs its bound addresses; `nodeArgs` go
 * before the script (e.g. `--require` of a probe), `env` is added to the test's environment.
 */
export async function serve(config: string, opts: { nodeArgs?: readonly string[]; env?: Record<string, string> } = {}): Promise<Running> {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, 'serve', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  let log = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolvePorts, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${log}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      for (const line of log.split('\n')) {
        if (!line.includes('"safespot serving"')) continue;
        const j = JSON.parse(line) as { listeners: Record<string, { port: number }>; admin: string | null };
        clearTimeout(timer);
        const ports = Object.fromEntries(Object.entries(j.listeners).map(([k, v]) => [k, v.port]));
        resolvePorts({
          child,
          forward: ports.forward ?? 0,
          admin: j.admin ? Number(j.admin.split(':').pop()) : 0,
          ports,
          log: () => log,
          exited,
        });
        return;
      }
    });
    void exited.then((code) => {
      clearTimeout(timer); // a serve that exits before serving must not keep the test alive 20 s more
      reject(new Error(`serve exited ${code}:\n${log}`));
    });
  });
}

/** Run one command of the built binary to completion; `input` (text or raw bytes) is its stdin. */
export function runCli(args: string[], input?: string | Uint8Array): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((r) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => r({ code, stdout, stderr }));
    c.stdin.end(input ?? '');
  });
}

/**
 * A config file for `serve` in a temporary folder removed at teardown: the given lines, plus the
 * journal and state inside that folder so tests never share or leave behind evidence.
 */
export function tempConfig(t: { teardown(fn: () => void): void }, prefix: string, lines: readonly string[]): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), `safespot-${prefix}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [...lines, `journal: { path: ${join(dir, 'journal.db')} }`, `state: { dir: ${join(dir, 'state')} }`, ''].join('\n'));
  return { dir, config };
}
