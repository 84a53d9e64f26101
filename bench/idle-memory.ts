/**
 * Idle memory of `safespot serve` with the embedded default (no --config: the demo lists, the
 * forward listener on 127.0.0.1:3128, admin on 127.0.0.1:9090; issue 23's "idle ≤ 64 MiB"), for
 * builds and Node flags side by side, alternating so the machine's load falls on each alike:
 *
 *   node dist/bench/idle-memory.js --variant before=/tmp/ss-head/dist --variant after=dist \
 *     [--variant 'semi=dist:--max-semi-space-size=1'] [--rounds 4] [--settle 5]
 *
 * Each run is a fresh process in a fresh working directory (the default's state dir is relative to
 * it): time to /readyz 200 from spawn, then `settle` seconds idle, then VmRSS and VmHWM from
 * /proc/PID/status and Pss and Anonymous from /proc/PID/smaps_rollup. Figures are medians over the
 * rounds (min–max beside). The fixed ports mean one serve at a time; nothing else may hold them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isMain, printResults, type BenchResult } from './common.js';

interface Variant {
  readonly label: string;
  readonly dist: string;
  readonly flags: readonly string[];
}

interface Figures {
  readyMs: number;
  rss: number;
  hwm: number;
  pss: number;
  anon: number;
}

function kib(text: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function once(v: Variant, settleMs: number, env: Record<string, string>): Promise<Figures> {
  const cwd = mkdtempSync(join(tmpdir(), 'ss-idle-'));
  const t0 = performance.now();
  const p = spawn(process.execPath, [...v.flags, join(v.dist, 'appliance/cli.js'), 'serve'], { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  try {
    let readyMs = NaN;
    const deadline = Date.now() + 30_000;
    while (Number.isNaN(readyMs) && Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`serve exited: ${err.slice(-800)}`);
      if (err.includes('safespot serving') && (await fetch('http://127.0.0.1:9090/readyz').then((r) => r.status === 200, () => false))) readyMs = performance.now() - t0;
      else await new Promise((r) => setTimeout(r, 10));
    }
    if (Number.isNaN(readyMs)) throw new Error(`serve not ready in 30 s: ${err.slice(-800)}`);
    await new Promise((r) => setTimeout(r, settleMs));
    const status = readFileSync(`/proc/${p.pid}/status`, 'utf8');
    const rollup = readFileSync(`/proc/${p.pid}/smaps_rollup`, 'utf8');
    return { readyMs, rss: kib(status, 'VmRSS'), hwm: kib(status, 'VmHWM'), pss: kib(rollup, 'Pss'), anon: kib(rollup, 'Anonymous') };
  } finally {
    p.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function bench(opts: { variants: readonly Variant[]; rounds?: number; settleMs?: number; env?: Record<string, string> }): Promise<BenchResult[]> {
  const rounds = opts.rounds ?? 4;
  const runs = new Map<string, Figures[]>(opts.variants.map((v) => [v.label, []]));
  for (let r = 0; r < rounds; r++) {
    // Alternate the order each round too, so neither variant always runs first.
    const order = r % 2 ? [...opts.variants].reverse() : opts.variants;
    for (const v of order) runs.get(v.label)!.push(await once(v, opts.settleMs ?? 5000, opts.env ?? {}));
  }
  const base = opts.variants[0]!.label;
  const results: BenchResult[] = [];
  const mib = (k: number): number => k / 1024;
  for (const v of opts.variants) {
    const f = runs.get(v.label)!;
    const row = (name: string, pick: (x: Figures) => number, unit = 'MiB', scale = mib): void => {
      const xs = f.map(pick).map(scale);
      const b = runs.get(base)!.map(pick).map(scale);
      results.push({
        name: `${v.label}: ${name}`,
        value: median(xs),
        unit,
        ...(v.label === base ? {} : { baseline: median(b) }),
        note: `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`,
      });
    };
    row('idle RSS', (x) => x.rss);
    row('peak RSS (VmHWM)', (x) => x.hwm);
    row('idle PSS', (x) => x.pss);
    row('idle anonymous', (x) => x.anon);
    row('ready from spawn', (x) => x.readyMs, 'ms', (x) => x);
  }
  return results;
}

if (isMain(import.meta.url)) {
  const argv = process.argv.slice(2);
  const variants: Variant[] = [];
  let rounds = 4;
  let settle = 5;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--variant') {
      const [label, rest] = argv[++i]!.split(/=(.*)/s) as [string, string];
      const [dist, ...flags] = rest.split(':');
      variants.push({ label, dist: resolve(dist!), flags: flags.join(':').split(' ').filter(Boolean) });
    } else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else if (argv[i] === '--settle') settle = Number(argv[++i]);
  }
  if (variants.length === 0) variants.push({ label: 'this build', dist: resolve('dist'), flags: [] });
  printResults(await bench({ variants, rounds, settleMs: settle * 1000 }), 1);
}
