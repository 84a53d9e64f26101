/**
 * Idle memory of `safespot serve` with the embedded default (no --config: the demo lists, the
 * forward listener on 127.0.0.1:3128, admin on 127.0.0.1:9090; issue 23's "idle ≤ 64 MiB"), for
 * builds and Node flags side by side, alternating so the machine's load falls on each alike:
 *
 *   node dist/bench/idle-memory.js --variant before=/tmp/ss-head/dist --variant after=dist \
 *     [--variant 'semi=dist:--max-semi-space-size=1'] [--variant 'je=dist:LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2']
 *     [--rounds 4] [--settle 5,30] [--load 20000]
 *
 * Each run is a fresh process in a fresh working directory (the default's state dir is relative to
 * it): time to /readyz 200 from spawn, then at each `settle` time (seconds after ready) VmRSS and VmHWM from
 * /proc/PID/status and Pss and Anonymous from /proc/PID/smaps_rollup. Figures are medians over the
 * rounds (min–max beside). `--load N`: then N blocked plain-HTTP requests through the forward
 * listener (6 keep-alive connections), the serve's CPU time per 1,000 of them (utime + stime: what a
 * malloc setting costs) and the same memory figures 2 s after the burst. The fixed ports mean one
 * serve at a time; nothing else may hold them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { isMain, printResults, type BenchResult } from './common.js';

interface Variant {
  readonly label: string;
  readonly dist: string;
  readonly flags: readonly string[];
  /** Environment variables for this variant (LD_PRELOAD, MALLOC_CONF...). */
  readonly env: Readonly<Record<string, string>>;
}

interface Figures {
  readyMs: number;
  rss: number;
  hwm: number;
  pss: number;
  anon: number;
  /** With `load`: the serve's CPU time (user + system) per 1,000 requests of the burst. */
  cpuPer1k: number;
}

function kib(text: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** The serve's own CPU time so far (utime + stime from /proc/PID/stat), in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // fields 14 and 15, in clock ticks of 1/100 s
}

/**
 * `n` plain-HTTP GETs of http://blocked.test/ through the forward listener on 6 keep-alive
 * connections: the block path (parse, decide, block page, journal row, metrics), no upstream needed.
 */
async function blockBurst(n: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 6 });
  let sent = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: 3128, path: 'http://blocked.test/', headers: { host: 'blocked.test' }, agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 403 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  const worker = async (): Promise<void> => {
    while (sent < n) {
      sent++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  agent.destroy();
}

async function once(v: Variant, settleMs: readonly number[], load: number): Promise<Figures[]> {
  const cwd = mkdtempSync(join(tmpdir(), 'ss-idle-'));
  const t0 = performance.now();
  const p = spawn(process.execPath, [...v.flags, join(v.dist, 'appliance/cli.js'), 'serve'], { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...v.env } });
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
    const out: Figures[] = [];
    let waited = 0;
    for (const ms of settleMs) {
      await new Promise((r) => setTimeout(r, ms - waited));
      waited = ms;
      const status = readFileSync(`/proc/${p.pid}/status`, 'utf8');
      const rollup = readFileSync(`/proc/${p.pid}/smaps_rollup`, 'utf8');
      out.push({ readyMs, rss: kib(status, 'VmRSS'), hwm: kib(status, 'VmHWM'), pss: kib(rollup, 'Pss'), anon: kib(rollup, 'Anonymous'), cpuPer1k: NaN });
    }
    if (load > 0) {
      const c0 = cpuMs(p.pid!);
      await blockBurst(load);
      const cpu = ((cpuMs(p.pid!) - c0) * 1000) / load;
      await new Promise((r) => setTimeout(r, 2000));
      const status = readFileSync(`/proc/${p.pid}/status`, 'utf8');
      const rollup = readFileSync(`/proc/${p.pid}/smaps_rollup`, 'utf8');
      out.push({ readyMs, rss: kib(status, 'VmRSS'), hwm: kib(status, 'VmHWM'), pss: kib(rollup, 'Pss'), anon: kib(rollup, 'Anonymous'), cpuPer1k: cpu });
    }
    return out;
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

/** `settleMs`: when to read, in ms after ready (ascending; one row set each). */
export async function bench(opts: { variants: readonly Variant[]; rounds?: number; settleMs?: readonly number[]; load?: number }): Promise<BenchResult[]> {
  const rounds = opts.rounds ?? 4;
  const load = opts.load ?? 0;
  const settle = opts.settleMs ?? [5000];
  // The figures after the burst are read as one more settle point, 2 s after it ends.
  const points = load > 0 ? [...settle, -1] : settle;
  const runs = new Map<string, Figures[][]>(opts.variants.map((v) => [v.label, []]));
  for (let r = 0; r < rounds; r++) {
    // Alternate the order each round too, so neither variant always runs first.
    const order = r % 2 ? [...opts.variants].reverse() : opts.variants;
    for (const v of order) runs.get(v.label)!.push(await once(v, settle, load));
  }
  const base = opts.variants[0]!.label;
  const results: BenchResult[] = [];
  const mib = (k: number): number => k / 1024;
  for (const [i, ms] of points.entries()) for (const v of opts.variants) {
    const f = runs.get(v.label)!.map((r) => r[i]!);
    const row = (name: string, pick: (x: Figures) => number, unit = 'MiB', scale = mib): void => {
      const xs = f.map(pick).map(scale);
      const b = runs.get(base)!.map((r) => pick(r[i]!)).map(scale);
      results.push({
        name: `${v.label}, ${ms < 0 ? `${load} requests` : `${ms / 1000} s`}: ${name}`,
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
    if (i === 0) row('ready from spawn', (x) => x.readyMs, 'ms', (x) => x);
    if (ms < 0) row('serve CPU per 1,000 requests', (x) => x.cpuPer1k, 'ms', (x) => x);
  }
  return results;
}

if (isMain(import.meta.url)) {
  const argv = process.argv.slice(2);
  const variants: Variant[] = [];
  let rounds = 4;
  let settle = [5];
  let load = 0;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--variant') {
      const [label, rest] = argv[++i]!.split(/=(.*)/s) as [string, string];
      // label=dist[:words]: words like NAME=value are environment variables, the others node flags.
      const [dist, ...more] = rest.split(':');
      const words = more.join(':').split(' ').filter(Boolean);
      const env = Object.fromEntries(words.filter((w) => /^[A-Z_]+=/.test(w)).map((w) => w.split(/=(.*)/s).slice(0, 2) as [string, string]));
      variants.push({ label, dist: resolve(dist!), flags: words.filter((w) => !/^[A-Z_]+=/.test(w)), env });
    } else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else if (argv[i] === '--load') load = Number(argv[++i]);
    else if (argv[i] === '--settle') settle = argv[++i]!.split(',').map(Number);
  }
  if (variants.length === 0) variants.push({ label: 'this build', dist: resolve('dist'), flags: [], env: {} });
  printResults(await bench({ variants, rounds, settleMs: settle.map((s) => s * 1000), load }), 1);
}
