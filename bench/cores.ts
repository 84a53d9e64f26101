/**
 * All cores: the same plain-HTTP forward load against `safespot serve` with `workers: 1` and with
 * `workers: 2`, in the same run, rounds interleaved (w1, w2, w2, w1, …) so both meet the same
 * neighbours on a shared machine. Figures: requests per second, and the CPU of every process
 * involved per request: safespot (for workers: 2 the primary plus both workers), the load
 * generator (bench/proxy-load.ts, its own process) and the upstream (this process).
 *
 * On a 2-core machine this cannot show clean scaling: the load generator and the upstream need
 * cores too, so safespot with two workers competes with them for the same two. The per-process
 * CPU shares say where the cores went; read the request rate with them.
 *
 *   npm run build && node dist/bench/cores.js [--quick]
 *
 * Figures only, never pass/fail. Every child process and temp file is removed, also on error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLoad } from './load-child.js';
import { type BenchResult, isMain, printResults } from './common.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'appliance', 'cli.js');
const HOSTS = Array.from({ length: 100 }, (_, i) => `p${i}.cores.test`);

/** On-CPU seconds of all threads of a process (/proc/PID/task/TID/schedstat, ns); 0 when it is gone. */
function cpuSeconds(pid: number): number {
  let ns = 0;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // thread ended
    }
  }
  return ns / 1e9;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Safespot {
  child: ChildProcess;
  forward: number;
  /** The primary and, with workers, every worker. */
  pids: number[];
}

function startSafespot(config: string, children: ChildProcess[]): Promise<Safespot> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let log = '';
  let started = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`safespot did not start:\n${log.slice(-2000)}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`safespot exited ${code}:\n${log.slice(-2000)}`)));
    child.stderr!.on('data', (d: Buffer) => {
      if (started) return; // keep draining the pipe, stop keeping the text
      log += d.toString();
      const line = log.split('\n').find((l) => l.includes('"safespot serving"'));
      if (!line) return;
      clearTimeout(timer);
      started = true;
      const j = JSON.parse(line) as { listeners: { forward: { port: number } }; workers?: number[] };
      resolve({ child, forward: j.listeners.forward.port, pids: [child.pid!, ...(j.workers ?? [])] });
    });
  });
}

function startUpstream(): Promise<Server> {
  const server = createServer({ keepAliveTimeout: 30_000 }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function writeConfig(dir: string, name: string, workers: number, upstreamPort: number): string {
  const list = join(dir, 'adult.txt');
  writeFileSync(list, 'blocked.cores.test\n');
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    [
      `workers: ${workers}`,
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'upstream:',
      `  hosts: { ${HOSTS.map((h) => `${h}: "127.0.0.1:${upstreamPort}"`).join(', ')} }`,
      'lists:',
      `  - { id: bench-adult, category: adult, kind: domains, source: ${list} }`,
      `journal: { path: ${join(dir, `${name}-journal.db`)} }`,
      `state: { dir: ${join(dir, `${name}-state`)} }`,
      '',
    ].join('\n'),
  );
  return path;
}

export async function bench(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const rounds = quick ? 2 : 5;
  const n = quick ? 2000 : 6000;
  const concurrency = 16;
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-cores-'));
  const children: ChildProcess[] = [];
  const killAll = (): void => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL'));
  process.once('exit', killAll);
  let upstream: Server | null = null;
  try {
    upstream = await startUpstream();
    const up = (upstream.address() as { port: number }).port;
    const targets = {
      w1: await startSafespot(writeConfig(dir, 'w1', 1, up), children),
      w2: await startSafespot(writeConfig(dir, 'w2', 2, up), children),
    };
    const load = startLoad(children);
    const samples: Record<string, Record<'rps' | 'cpu' | 'primary' | 'load' | 'up' | 'busy', number[]>> = {};
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? (['w1', 'w2'] as const) : (['w2', 'w1'] as const);
      for (const name of order) {
        const s = targets[name];
        const c0 = sum(s.pids.map(cpuSeconds));
        const p0 = cpuSeconds(s.pids[0]!);
        const l0 = cpuSeconds(load.pid);
        const u0 = cpuSeconds(process.pid);
        const x = await load.run({ op: 'http', via: { kind: 'proxy', port: s.forward }, hosts: HOSTS, n, concurrency });
        if (x.errors > 0) throw new Error(`${name}: ${x.errors} failed requests (${x.firstError})`);
        const cpu = sum(s.pids.map(cpuSeconds)) - c0;
        const pc = cpuSeconds(s.pids[0]!) - p0;
        const lc = cpuSeconds(load.pid) - l0;
        const uc = cpuSeconds(process.pid) - u0;
        const wall = x.wallMs / 1000;
        const m = (samples[name] ??= { rps: [], cpu: [], primary: [], load: [], up: [], busy: [] });
        m.rps.push(n / wall);
        m.cpu.push((cpu / n) * 1000);
        m.primary.push((pc / n) * 1000);
        m.load.push(lc / wall);
        m.up.push(uc / wall);
        m.busy.push((cpu + lc + uc) / wall);
      }
    }
    const w1 = samples.w1!;
    const w2 = samples.w2!;
    const cores = availableParallelism();
    const note = `${cores} cores; load generator and upstream share them`;
    return [
      { name: 'plain HTTP forward, keep-alive, 16 at a time, workers: 1', value: median(w1.rps), unit: 'req/s' },
      { name: 'plain HTTP forward, keep-alive, 16 at a time, workers: 2', value: median(w2.rps), unit: 'req/s', baseline: median(w1.rps), note },
      { name: 'workers 2 / workers 1, request rate', value: median(w2.rps) / median(w1.rps), unit: '×', note: `rounds: ${w2.rps.map((v, i) => (v / w1.rps[i]!).toFixed(2)).join(', ')}` },
      { name: 'safespot CPU per request, workers: 1', value: median(w1.cpu), unit: 'ms' },
      { name: 'safespot CPU per request, workers: 2 (primary + workers)', value: median(w2.cpu), unit: 'ms', baseline: median(w1.cpu) },
      { name: '— of which the primary (accepts, hands connections out)', value: median(w2.primary), unit: 'ms' },
      { name: 'requests per safespot CPU-second, workers: 1 / 2', value: median(w1.cpu.map((c) => 1000 / c)), unit: 'req', note: `workers 2: ${median(w2.cpu.map((c) => 1000 / c)).toFixed(0)}` },
      { name: 'safespot cores busy, workers: 1', value: median(w1.cpu.map((c, i) => (c / 1000) * w1.rps[i]!)), unit: 'cores' },
      { name: 'safespot cores busy, workers: 2', value: median(w2.cpu.map((c, i) => (c / 1000) * w2.rps[i]!)), unit: 'cores' },
      { name: 'load generator cores busy, workers: 1 / 2', value: median(w1.load), unit: 'cores', note: `workers 2: ${median(w2.load).toFixed(2)}` },
      { name: 'upstream cores busy, workers: 1 / 2', value: median(w1.up), unit: 'cores', note: `workers 2: ${median(w2.up).toFixed(2)}` },
      { name: 'all three, cores busy, workers: 1 / 2', value: median(w1.busy), unit: 'cores', note: `workers 2: ${median(w2.busy).toFixed(2)} of ${cores}` },
    ];
  } finally {
    upstream?.close();
    upstream?.closeAllConnections();
    const exits = children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null));
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    const late = setTimeout(killAll, 15_000);
    await Promise.all(exits);
    clearTimeout(late);
    process.off('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  printResults(await bench({ quick: process.argv.includes('--quick') }), 3);
}
