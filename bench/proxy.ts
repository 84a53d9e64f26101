/**
 * The network edge under load: the real `safespot serve` (a child process, a synthetic list of
 * 1,000,000 domains loaded; 100,000 with --quick) beside a bare Node CONNECT forwarder
 * (bench/bare-forwarder.ts) and beside going straight to the upstream, all in the same run, on
 * loopback. The load generator is a third process (bench/proxy-load.ts); the upstream TLS and HTTP
 * servers run in this one. Nothing resolves names: safespot gets every bench host in
 * `upstream.hosts`, the bare forwarder the same table.
 *
 * Figures (medians over rounds; the order of the targets rotates per round):
 * - CPU time of the proxy process (all its threads: what utime + stime count, read in ns from
 *   schedstat) per CONNECT + TLS connection: CONNECT, 200, TLS 1.3 handshake with the upstream
 *   through the tunnel, one small GET, close. Sequential and 16 at a time, the targets interleaved
 *   connection by connection in one job; two variants of the bare forwarder split the cost.
 * - connections per second, and added latency: time to the first response byte through the proxy
 *   minus straight to the upstream, p50 and p99, interleaved in the same job.
 * - bulk: one tunnel carrying one large TLS response, MiB/s (wall) and proxy CPU per GiB.
 * - plain HTTP forward proxy: keep-alive absolute-URI GETs, requests/s and CPU per request, beside
 *   origin-form GETs straight to the upstream.
 * Figures only, never pass/fail. Every child process and temp file is removed, also on error.
 *
 *   npm run build && node dist/bench/proxy.js [--quick] [--cpu-prof=DIR]
 *
 * --cpu-prof=DIR runs safespot and the bare forwarder with `node --cpu-prof` and prints where their
 * CPU went during the measured jobs (bench/cpu-profile.ts; the list compile at start is left out).
 * The profiler costs CPU itself (and only those two processes have it): the figures of a profiled
 * run are not comparable. BENCH_SAFESPOT_NODE_FLAGS="--trace-gc" (for example) passes node flags
 * to the serve child.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Server } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarizeProfiles } from './cpu-profile.js';
import { startLoad, type LoadChild } from './load-child.js';
import type { LoadJob, LoadResult, Via } from './proxy-load.js';
import { makePki, portOf, startHttpUpstream, startTlsUpstream } from './proxy-upstream.js';
import { type BenchResult, isMain, printResults } from './common.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'appliance', 'cli.js');
const TICKS_PER_SECOND = 100; // USER_HZ; `getconf CLK_TCK` is 100 on every Linux we run on
export const TLS_HOSTS = Array.from({ length: 1000 }, (_, i) => `t${i}.bench.test`);
export const HTTP_HOSTS = Array.from({ length: 200 }, (_, i) => `p${i}.bench.test`);

/**
 * CPU time of a process in seconds: the on-CPU time of all its threads from
 * /proc/PID/task/TID/schedstat (nanoseconds; the kernel's sum_exec_runtime, which utime + stime
 * are derived from). /proc/PID/stat gives utime + stime only in 10 ms ticks, too coarse for one
 * bare-forwarder job; it is read as well (`ticksSeconds`) and the two totals are compared at the end.
 * A thread that exits takes its time with it from the schedstat sum: the proxies here keep theirs.
 */
export function cpuSeconds(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns / 1e9;
}

/** utime + stime from /proc/PID/stat (all threads, living and exited), seconds, 10 ms resolution. */
function ticksSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/**
 * Start `safespot serve` (this build's, or the CLI at `cli`); resolves with its forward and admin
 * ports, and every listener's by name, from the "safespot serving" line.
 */
export function startSafespot(
  config: string,
  nodeFlags: string[],
  children: ChildProcess[],
  cli = CLI,
): Promise<{ child: ChildProcess; forward: number; admin: number; ports: Record<string, number> }> {
  // BENCH_SAFESPOT_NODE_FLAGS (e.g. "--trace-gc"): extra node flags for safespot, its stdout shown.
  const extra = (process.env.BENCH_SAFESPOT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeFlags, ...extra, cli, 'serve', '--config', config], { stdio: ['ignore', extra.length ? 'inherit' : 'ignore', 'pipe'] });
  children.push(child);
  let log = '';
  let started = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`safespot serve did not start within 120 s:\n${log.slice(-2000)}`)), 120_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`safespot serve exited (${code}):\n${log.slice(-2000)}`));
    });
    // The pipe is drained for the whole run (a full pipe would stall the child); only the tail is kept.
    child.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-65_536);
      const line = log.split('\n').find((l) => l.includes('"safespot serving"'));
      if (!line || started) return;
      started = true;
      clearTimeout(timer);
      const j = JSON.parse(line) as { listeners: Record<string, { port: number }>; admin: string | null };
      const ports = Object.fromEntries(Object.entries(j.listeners).map(([name, l]) => [name, l.port]));
      resolve({ child, forward: j.listeners.forward?.port ?? 0, admin: Number(j.admin?.split(':').pop() ?? 0), ports });
    });
  });
}

/** Fork a bench child that answers its first message with `{ port }` (the bare forwarder). */
export function forkChild(file: string, first: unknown, children: ChildProcess[], execArgv: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(join(HERE, file), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${file} exited (${code})`)));
    child.once('message', (m: { port?: number; error?: string }) => (m.port ? resolve({ child, port: m.port }) : reject(new Error(`${file}: ${m.error}`))));
    child.send(first as object);
  });
}

/** A raw exchange with the proxy: what it answers to `text` (up to close or 2 s). */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => resolve(out));
    s.setTimeout(2000, () => s.destroy());
    s.write(text);
  });
}

async function fetchText(url: string): Promise<string> {
  const res = await fetch(url);
  return res.text();
}

/**
 * `bare`: the bare forwarder (the baseline). `bareP`: the same with stream.pipeline instead of pipe;
 * `bareHP`: node:http CONNECT parsing and stream.pipeline, i.e. safespot's Node plumbing without
 * its own work (ClientHello peek, decisions, limits, metrics); `bareL`: the bare forwarder that
 * answers 200 first and connects upstream only after the client's first bytes, the order safespot
 * must keep to decide on the SNI before opening anything. The variants run in the 16-at-a-time
 * CPU job only (bareP and bareHP also in bulk).
 */
type Target = 'direct' | 'bare' | 'bareP' | 'bareHP' | 'bareL' | 'safespot';

interface Env {
  load: LoadChild;
  via: Record<Target, Via>;
  pid: Partial<Record<Target, number>>;
  tlsPort: number;
  httpPort: number;
  /** When profiling: the monotonic time windows (µs) of each job, by kind and target. */
  windows?: { op: string; targets: readonly Target[]; from: number; to: number }[];
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Run one job that uses `targets`; the CPU seconds of each target's process over exactly that job. */
async function measured(env: Env, targets: readonly Target[], job: LoadJob): Promise<LoadResult & { cpu: Partial<Record<Target, number>> }> {
  const c0 = targets.map((t) => (env.pid[t] ? cpuSeconds(env.pid[t]!) : NaN));
  const from = nowUs();
  const r = await env.load.run(job);
  const cpu: Partial<Record<Target, number>> = {};
  targets.forEach((t, i) => (cpu[t] = env.pid[t] ? cpuSeconds(env.pid[t]!) - c0[i]! : NaN));
  env.windows?.push({ op: job.op, targets, from, to: nowUs() });
  if (r.errors > 0) throw new Error(`${targets.join('+')}: ${r.errors} failed connections (${r.firstError})`);
  return { ...r, cpu };
}

const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Samples of each figure, one value per round. */
type Samples = Record<string, number[]>;
const push = (s: Samples, key: string, v: number): void => void (s[key] ??= []).push(v);

/** Sizes of one run: connections per target per round, rounds, bulk bytes, HTTP requests. */
function sizes(quick: boolean) {
  return quick
    ? { rounds: 3, seqN: 100, conN: 300, rateN: 300, bulkRounds: 2, bulkBytes: 64 << 20, httpRounds: 2, httpN: 1500 }
    : { rounds: 5, seqN: 300, conN: 800, rateN: 800, bulkRounds: 5, bulkBytes: 256 << 20, httpRounds: 3, httpN: 5000 };
}

async function runRounds(env: Env, quick: boolean): Promise<Samples> {
  const s: Samples = {};
  const z = sizes(quick);
  const tls = (vias: Target[], n: number, concurrency: number): LoadJob =>
    ({ op: 'tls', vias: vias.map((t) => env.via[t]), upstreamPort: env.tlsPort, hosts: TLS_HOSTS, n: n * vias.length, concurrency });
  for (let r = 0; r < z.rounds; r++) {
    // CPU and latency: targets interleaved connection by connection in one job, so that each one
    // meets the same neighbours on the shared machine. Each proxy's CPU counts only its own connections.
    for (const [scen, n, concurrency, targets] of [
      ['seq', z.seqN, 1, ['direct', 'bare', 'safespot']],
      ['c16', z.conN, 16, ['direct', 'bare', 'bareP', 'bareHP', 'safespot']],
      // Its own job, so that the headline 16-at-a-time job keeps its composition (the ratio depends
      // on how many connections each target has at once).
      ['order', z.conN, 16, ['bare', 'bareL', 'safespot']],
    ] as const) {
      const order = rotate(targets, r);
      const x = await measured(env, order, tls(order, n, concurrency));
      const group = (t: Target) => x.groups![order.indexOf(t)]!;
      for (const t of order) {
        if (t !== 'direct') push(s, `${scen}.${t}.cpuMs`, (x.cpu[t]! / n) * 1000);
        if (scen === 'seq') push(s, `seq.${t}.cps`, 1000 / mean(group(t).total));
        if (t === 'direct' || scen === 'order') continue;
        for (const q of [50, 99]) push(s, `${scen}.${t}.add${q}`, percentile(group(t).ttfb, q) - percentile(group('direct').ttfb, q));
      }
    }
    // Connection rate 16 at a time: each target alone (the rate is the whole job's).
    for (const t of rotate(['direct', 'bare', 'safespot'] as const, r)) {
      const x = await measured(env, [t], tls([t], z.rateN, 16));
      push(s, `c16.${t}.cps`, (z.rateN / x.wallMs) * 1000);
    }
  }
  for (let r = 0; r < z.bulkRounds; r++) {
    for (const t of rotate(['direct', 'bare', 'bareP', 'bareHP', 'safespot'] as const, r)) {
      const x = await measured(env, [t], { op: 'bulk', via: env.via[t], upstreamPort: env.tlsPort, host: TLS_HOSTS[r]!, bytes: z.bulkBytes });
      if (x.bytes < z.bulkBytes) throw new Error(`${t}: bulk transfer short (${x.bytes} of ${z.bulkBytes} bytes)`);
      push(s, `bulk.${t}.mibs`, z.bulkBytes / 1048576 / (x.wallMs / 1000));
      push(s, `bulk.${t}.cpuPerGiB`, x.cpu[t]! / (z.bulkBytes / 1073741824));
    }
  }
  for (let r = 0; r < z.httpRounds; r++) {
    for (const t of rotate(['direct', 'safespot'] as const, r)) {
      const via: Via = t === 'direct' ? { kind: 'direct', port: env.httpPort } : env.via.safespot;
      const x = await measured(env, [t], { op: 'http', via, hosts: HTTP_HOSTS, n: z.httpN, concurrency: 8 });
      push(s, `http.${t}.rps`, (z.httpN / x.wallMs) * 1000);
      push(s, `http.${t}.cpuMs`, (x.cpu[t]! / z.httpN) * 1000);
      push(s, `http.${t}.p50`, percentile(x.latencies, 50));
      push(s, `http.${t}.p99`, percentile(x.latencies, 99));
    }
  }
  return s;
}

function report(s: Samples, quick: boolean, extra: string): BenchResult[] {
  const m = (k: string): number => median(s[k] ?? []);
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
  const rounds = (k: string): string => `median of ${(s[k] ?? []).length} rounds`;
  const out: BenchResult[] = [];
  for (const [scen, label] of [['c16', '16 at a time'], ['seq', 'sequential']] as const) {
    const [p, b] = [m(`${scen}.safespot.cpuMs`), m(`${scen}.bare.cpuMs`)];
    out.push({ name: `proxy CPU per CONNECT+TLS connection, ${label}`, value: p, unit: 'ms', baseline: b,
      note: `ratio ${ratio(p, b)} (target ≤ 1.3×); baseline: bare forwarder; ${rounds(`${scen}.safespot.cpuMs`)}` });
  }
  for (const [t, what] of [['bareP', 'stream.pipeline'], ['bareHP', 'node:http CONNECT parsing + stream.pipeline']] as const) {
    out.push({ name: `  bare forwarder variant with ${what}, 16 at a time`, value: m(`c16.${t}.cpuMs`), unit: 'ms', baseline: m('c16.bare.cpuMs'),
      note: `ratio ${ratio(m(`c16.${t}.cpuMs`), m('c16.bare.cpuMs'))}: safespot's Node plumbing without its own work` });
  }
  out.push({ name: '  bare forwarder variant connecting after the ClientHello, 16 at a time', value: m('order.bareL.cpuMs'), unit: 'ms', baseline: m('order.bare.cpuMs'),
    note: `ratio ${ratio(m('order.bareL.cpuMs'), m('order.bare.cpuMs'))}: the order safespot keeps (decide on the SNI, then connect) without its work; a job of its own with bare and safespot (safespot ${ratio(m('order.safespot.cpuMs'), m('order.bare.cpuMs'))} bare, ${ratio(m('order.safespot.cpuMs'), m('order.bareL.cpuMs'))} this variant)` });
  for (const [scen, label] of [['seq', 'sequential'], ['c16', '16 at a time']] as const) {
    out.push({ name: `CONNECT+TLS connections/s, ${label}`, value: m(`${scen}.safespot.cps`), unit: 'conn/s', baseline: m(`${scen}.bare.cps`),
      note: `straight to upstream: ${m(`${scen}.direct.cps`).toFixed(0)}/s${scen === 'seq' ? ' (1 / mean connection time)' : ' (each target alone)'}` });
    for (const q of [50, 99]) {
      out.push({ name: `added latency to first byte, p${q}, ${label}`, value: m(`${scen}.safespot.add${q}`), unit: 'ms', baseline: m(`${scen}.bare.add${q}`),
        note: 'vs straight to upstream, interleaved in the same job' });
    }
  }
  const mib = sizes(quick).bulkBytes >> 20;
  const [tp, tb] = [m('bulk.safespot.mibs'), m('bulk.bare.mibs')];
  out.push({ name: `bulk throughput, ${mib} MiB through one tunnel`, value: tp, unit: 'MiB/s', baseline: tb,
    note: `ratio ${ratio(tp, tb)} (target ≥ 0.9×); straight: ${m('bulk.direct.mibs').toFixed(0)} MiB/s; ${rounds('bulk.safespot.mibs')}` });
  const [gp, gb] = [m('bulk.safespot.cpuPerGiB'), m('bulk.bare.cpuPerGiB')];
  out.push({ name: 'bulk: proxy CPU per GiB tunnelled', value: gp, unit: 's', baseline: gb, note: `ratio ${ratio(gp, gb)}` });
  for (const [t, what] of [['bareP', 'stream.pipeline'], ['bareHP', 'node:http CONNECT parsing + stream.pipeline']] as const) {
    out.push({ name: `  bare forwarder variant with ${what}`, value: m(`bulk.${t}.cpuPerGiB`), unit: 's', baseline: gb,
      note: `ratio ${ratio(m(`bulk.${t}.cpuPerGiB`), gb)}; ${m(`bulk.${t}.mibs`).toFixed(0)} MiB/s` });
  }
  out.push({ name: 'plain HTTP forward, keep-alive, 8 at a time', value: m('http.safespot.rps'), unit: 'req/s', baseline: m('http.direct.rps'),
    note: `baseline: straight to upstream; ${rounds('http.safespot.rps')}` });
  out.push({ name: 'plain HTTP forward: proxy CPU per request', value: m('http.safespot.cpuMs'), unit: 'ms' });
  out.push({ name: 'plain HTTP forward: p50 time to response head', value: m('http.safespot.p50'), unit: 'ms', baseline: m('http.direct.p50') });
  out.push({ name: 'plain HTTP forward: p99 time to response head', value: m('http.safespot.p99'), unit: 'ms', baseline: m('http.direct.p99') });
  out.push({ name: 'setup', value: quick ? 100_000 : 1_000_000, unit: 'list entries', note: extra });
  return out;
}

/**
 * What every proxy bench stands on, all on loopback: a temp folder, test PKI, a `domains` list of
 * `entries` synthetic names, a TLS and a plain HTTP upstream, the host table that sends every bench
 * name there (safespot's `upstream.hosts`, the bare forwarder's table) and a serve config using all
 * of it. Children started by the bench go on `children`; close() (also run on exit and on
 * SIGINT/SIGTERM) ends them and removes every file.
 */
export interface ProxyRig {
  readonly dir: string;
  readonly pki: { ca: string; cert: string; key: string };
  readonly tls: Server;
  readonly http: HttpServer;
  readonly hosts: Record<string, string>;
  /** A serve config: forward listener and admin on port 0, the list, journal, state and CA in `dir`. */
  readonly config: string;
  readonly children: ChildProcess[];
  close(): Promise<void>;
}

export async function startProxyRig(entries: number): Promise<ProxyRig> {
  const children: ChildProcess[] = [];
  const servers: (Server | HttpServer)[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-proxy-'));
  // On any exit (an exception, Ctrl-C through the handlers below), no child and no temp file survives.
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    killAll();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('exit', killAll);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const close = async (): Promise<void> => {
    for (const s of servers) s.close();
    const exits = children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null));
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    const late = setTimeout(() => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')), 15_000);
    await Promise.all(exits);
    clearTimeout(late);
    process.off('exit', killAll);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const pki = makePki(dir);
    const lines: string[] = [];
    for (let i = 0; i < entries; i++) lines.push(`site${i}.cat${i % 997}.test`);
    writeFileSync(join(dir, 'domains.txt'), `${lines.join('\n')}\n`);
    lines.length = 0;
    const tls = await startTlsUpstream(pki);
    servers.push(tls);
    const http = await startHttpUpstream();
    servers.push(http);
    const hosts: Record<string, string> = {};
    for (const h of TLS_HOSTS) hosts[h] = `127.0.0.1:${portOf(tls)}`;
    for (const h of HTTP_HOSTS) hosts[h] = `127.0.0.1:${portOf(http)}`;
    const config = join(dir, 'config.json'); // JSON is YAML
    writeFileSync(config, JSON.stringify({
      listeners: { forward: { host: '127.0.0.1', port: 0 } },
      admin: { host: '127.0.0.1', port: 0 },
      upstream: { hosts },
      lists: [{ id: 'synthetic', category: 'adult', kind: 'domains', source: join(dir, 'domains.txt') }],
      journal: { path: join(dir, 'journal.db') },
      state: { dir: join(dir, 'state') },
      ca: { dir: join(dir, 'ca') },
    }));
    return { dir, pki, tls, http, hosts, config, children, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The policy is really there: a CONNECT to a listed host is refused, the gauge counts every entry. */
export async function checkPolicyInForce(safespot: { forward: number; admin: number }, entries: number): Promise<string> {
  const refused = (await rawExchange(safespot.forward, `CONNECT site7.cat7.test:443 HTTP/1.1\r\nHost: site7.cat7.test:443\r\n\r\n`)).split('\r\n')[0];
  const gauge = /safespot_policy_entries\{list="synthetic"\} (\d+)/.exec(await fetchText(`http://127.0.0.1:${safespot.admin}/metrics`))?.[1];
  if (!refused?.includes(' 403 ') || Number(gauge) !== entries) throw new Error(`policy not in force: CONNECT to a listed host got "${refused}", entries gauge ${gauge}`);
  return refused;
}

export async function bench(opts: { quick?: boolean; cpuProfDir?: string } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const entries = quick ? 100_000 : 1_000_000;
  const rig = await startProxyRig(entries);
  const { children, config, hosts, pki, tls, http } = rig;
  try {
    if (opts.cpuProfDir) mkdirSync(opts.cpuProfDir, { recursive: true });
    const flags = (who: string): string[] => (opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.cpuProfDir, who)}`] : []);
    const [safespot, bare, bareP, bareHP, bareL] = await Promise.all([
      startSafespot(config, flags('safespot'), children),
      forkChild('bare-forwarder.js', { hosts }, children, flags('bare')),
      forkChild('bare-forwarder.js', { hosts, join: 'pipeline' }, children),
      forkChild('bare-forwarder.js', { hosts, parse: 'http', join: 'pipeline' }, children),
      forkChild('bare-forwarder.js', { hosts, connect: 'late' }, children),
    ]);
    const load = startLoad(children);
    await load.run({ op: 'init', ca: pki.ca });
    const refused = await checkPolicyInForce(safespot, entries);

    const env: Env = {
      load,
      via: {
        direct: { kind: 'direct', port: portOf(tls) },
        bare: { kind: 'proxy', port: bare.port },
        bareP: { kind: 'proxy', port: bareP.port },
        bareHP: { kind: 'proxy', port: bareHP.port },
        bareL: { kind: 'proxy', port: bareL.port },
        safespot: { kind: 'proxy', port: safespot.forward },
      },
      pid: { bare: bare.child.pid!, bareP: bareP.child.pid!, bareHP: bareHP.child.pid!, bareL: bareL.child.pid!, safespot: safespot.child.pid! },
      tlsPort: portOf(tls),
      httpPort: portOf(http),
    };
    // Warm-up (JIT, caches, TLS session machinery), not measured.
    for (const t of ['direct', 'bare', 'bareP', 'bareHP', 'bareL', 'safespot'] as const) {
      await measured(env, [t], { op: 'tls', vias: [env.via[t]], upstreamPort: env.tlsPort, hosts: TLS_HOSTS, n: quick ? 100 : 300, concurrency: 8 });
      if (t === 'bareP' || t === 'bareHP' || t === 'bareL') continue;
      await measured(env, [t], { op: 'bulk', via: env.via[t], upstreamPort: env.tlsPort, host: TLS_HOSTS[0]!, bytes: 16 << 20 });
    }
    await measured(env, ['safespot'], { op: 'http', via: env.via.safespot, hosts: HTTP_HOSTS, n: 500, concurrency: 8 });
    if (opts.cpuProfDir) env.windows = [];
    const pids = [safespot.child.pid!, bare.child.pid!];
    const before = pids.map((p) => [cpuSeconds(p), ticksSeconds(p)] as const);
    const samples = await runRounds(env, quick);
    const check = pids
      .map((p, i) => `${i === 0 ? 'safespot' : 'bare'} ${(cpuSeconds(p) - before[i]![0]).toFixed(2)} s by schedstat, ${(ticksSeconds(p) - before[i]![1]).toFixed(2)} s by utime+stime`)
      .join('; ');
    const upstreamErrors = (await fetchText(`http://127.0.0.1:${safespot.admin}/metrics`))
      .split('\n').filter((l) => l.startsWith('safespot_upstream_errors_total')).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    const results = report(samples, quick, `CONNECT to a listed host: "${refused}"; safespot upstream errors during the run: ${upstreamErrors}; CPU over all rounds: ${check}${opts.cpuProfDir ? '; PROFILED RUN: the profiler inflates the CPU of safespot and the bare forwarder, do not quote these figures' : ''}`);

    if (opts.cpuProfDir) {
      // Profiles are written when the processes exit; SIGTERM drains safespot and ends the forwarder cleanly.
      for (const c of [safespot.child, bare.child]) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await exited;
      }
      for (const [who, ops] of [['safespot', ['tls', 'bulk', 'http']], ['bare', ['tls', 'bulk']]] as const) {
        for (const op of ops) {
          const w = env.windows!.filter((x) => x.op === op && x.targets.includes(who));
          process.stderr.write(`\n== ${who} CPU profile, measured ${op} jobs: ${summarizeProfiles(join(opts.cpuProfDir, who), w)}\n`);
        }
      }
    }
    return results;
  } finally {
    await rig.close();
  }
}

if (isMain(import.meta.url)) {
  const prof = process.argv.find((a) => a.startsWith('--cpu-prof='))?.slice('--cpu-prof='.length);
  const results = await bench({ quick: process.argv.includes('--quick'), ...(prof ? { cpuProfDir: prof } : {}) });
  printResults(results, 3);
}
