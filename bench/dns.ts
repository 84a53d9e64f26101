/**
 * DNS listener benchmark (issue 18): dnsperf against safespot's DNS listener, against dnsmasq holding
 * the same domains list (`address=/name/0.0.0.0` lines), and against a bare Node UDP responder (no
 * parsing, one `send` per `message`: the floor of any Node DNS server), in one run:
 *   (a) blocked names, (b) cached allowed names, (c) uncached forwarded names;
 * queries per second (dnsperf's figure) and CPU per 1,000 queries (the server process's own
 * utime+stime from /proc), plus RSS with the list loaded and time to ready. Prints figures, never
 * pass/fail. Loopback only; every run is bounded by dnsperf's -l.
 *
 *   node dist/bench/dns.js [--entries 1000000] [--seconds 10] [--clients 4] [--rounds 1] [--before OLD/dist/bench/dns.js]
 * With --rounds N every server runs N times in turn and the medians are printed, with the ratios
 * the goals name taken within each round; --before adds another build's listener to each
 * round (an A/B in the same run).
 * Needs the Debian packages dnsperf and dnsmasq-base.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nullObserver } from '../audit/observer.js';
import { CidrSet } from '../policy/ip.js';
import { decodeBundle, encodeBundle } from '../policy/bundle.js';
import { compilePolicy, PolicyHolder } from '../policy/policy.js';
import { createDnsHooks } from '../proxy/dns/hook.js';
import { startDnsListener } from '../proxy/dns/listener.js';

const SELF = fileURLToPath(import.meta.url);
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

/** End of the question in a query (labels, then type and class), or -1. */
function questionEnd(m: Buffer): number {
  let p = 12;
  while (p < m.length && m[p] !== 0) p += m[p]! + 1;
  return p + 5 <= m.length ? p + 5 : -1;
}

/** Upstream for (b) and (c): answers any A question with one A record, TTL 300. */
async function upstreamResponder(): Promise<number> {
  const s = createSocket('udp4');
  s.on('message', (m, r) => {
    const end = questionEnd(m);
    if (end < 0) return;
    const out = Buffer.alloc(end + 16);
    m.copy(out, 0, 0, end);
    out[2] = 0x81;
    out[3] = 0x80;
    out.writeUInt16BE(1, 6);
    out.writeUInt16BE(0, 8);
    out.writeUInt16BE(0, 10);
    out.set([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 1], end);
    s.send(out, r.port, r.address);
  });
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  return s.address().port;
}

// --- child modes -------------------------------------------------------------------------------
function benchPolicyText(entries: number): string {
  return Array.from({ length: entries }, (_, i) => `blk-${i}.test`).join('\n');
}

/** `bundle`: the compiled policy's file, loaded as a restart or a cluster worker loads it (no compile in this process). */
async function childSafespot(entries: number, upstream: number, bundle?: string): Promise<void> {
  const t0 = performance.now();
  const policy = bundle ? decodeBundle(readFileSync(bundle)) : compilePolicy({ lists: [{ id: 'bench', category: 'adult', kind: 'domains', text: benchPolicyText(entries) }] });
  const holder = new PolicyHolder();
  holder.swap(policy);
  if (typeof global.gc === 'function') global.gc();
  // What the process holds with the policy alone, before the DNS listener exists.
  const policyRss = process.memoryUsage.rss() / 2 ** 20;
  const dns = await startDnsListener(
    {
      endpoint: { host: '127.0.0.1', port: 0 },
      clients: CidrSet.parse(['127.0.0.0/8']),
      servers: [{ host: '127.0.0.1', port: upstream }],
      blocked: 'null',
      blockAddresses: { v4: new Uint8Array(4), v6: new Uint8Array(16) },
      blockTtl: 60,
      maxTtl: 3600,
      cacheEntries: 50_000,
      cacheBytes: 32 << 20,
      https: 'strip-ech',
      rateLimit: { queriesPerSecond: 0, burst: 1 },
      tcp: { idleTimeoutMs: 10_000, maxConnections: 64, maxInFlight: 16 },
      upstream: { tryTimeoutMs: 2000, tries: 2, maxPending: 100_000 },
      recordNames: false,
      recordClients: false,
      clientIpv6Prefix: 64,
    },
    createDnsHooks(holder),
    nullObserver,
  );
  if (typeof global.gc === 'function') global.gc();
  process.stdout.write(`${JSON.stringify({ port: dns.address().port, readyMs: Math.round(performance.now() - t0), policyRss })}\n`);
}

async function childBare(): Promise<void> {
  const s = createSocket('udp4');
  // The floor: no parsing, one send per message (the query flipped into a response).
  s.on('message', (m, r) => {
    m[2] = m[2]! | 0x80;
    s.send(m, r.port, r.address);
  });
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  process.stdout.write(`${JSON.stringify({ port: s.address().port, readyMs: 0 })}\n`);
}

// --- driver ------------------------------------------------------------------------------------
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const tick = 100; // USER_HZ on Linux
  return (Number(parts[11]) + Number(parts[12])) / tick;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function readyLine(child: ChildProcess): Promise<{ port: number; readyMs: number; policyRss?: number }> {
  return new Promise((res, rej) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) res(JSON.parse(out.slice(0, nl)) as { port: number; readyMs: number; policyRss?: number });
    });
    child.once('exit', (c) => rej(new Error(`child exited ${c}`)));
  });
}

async function waitUdp(port: number, name: string): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    try {
      execFileSync('dig', ['@127.0.0.1', '-p', String(port), name, 'A', '+tries=1', '+time=1', '+short'], { stdio: 'pipe' });
      return performance.now() - t0;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** dnsperf in a child, awaited: the upstream responder lives in this process and must keep answering. */
async function dnsperf(port: number, file: string, seconds: number, clients: number): Promise<{ qps: number; completed: number }> {
  const child = spawn('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-c', String(clients), '-l', String(seconds), '-q', '1000', '-t', '2'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once('exit', r));
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const completed = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  return { qps, completed };
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    // A clean exit on SIGINT, so `node --cpu-prof` writes its profile.
    process.on('SIGINT', () => process.exit(0));
    if (process.argv[3] === 'safespot') await childSafespot(Number(process.argv[4]), Number(process.argv[5]), process.argv[6]);
    else await childBare();
    return;
  }
  const entries = arg('entries', 1_000_000);
  const seconds = arg('seconds', 10);
  const clients = arg('clients', 4);
  const rounds = arg('rounds', 1);
  const bi = process.argv.indexOf('--before');
  const before = bi > 0 ? process.argv[bi + 1] : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-dns-'));
  const upstream = await upstreamResponder();
  const files = {
    blocked: join(dir, 'blocked.txt'),
    cached: join(dir, 'cached.txt'),
    uncached: join(dir, 'uncached.txt'),
  };
  writeFileSync(files.blocked, Array.from({ length: 100_000 }, (_, i) => `blk-${(i * 7919) % entries}.test A`).join('\n') + '\n');
  writeFileSync(files.cached, Array.from({ length: 1000 }, (_, i) => `ok-${i}.example A`).join('\n') + '\n');
  writeFileSync(files.uncached, Array.from({ length: 3_000_000 }, (_, i) => `u${i}.example A`).join('\n') + '\n');
  const bundleFile = join(dir, 'policy.bundle');
  writeFileSync(bundleFile, encodeBundle(compilePolicy({ lists: [{ id: 'bench', category: 'adult', kind: 'domains', text: benchPolicyText(entries) }] })));
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(conf, Array.from({ length: entries }, (_, i) => `address=/blk-${i}.test/0.0.0.0`).join('\n') + '\n');

  type Server = { name: string; child: ChildProcess; port: number; readyMs: number; policyRss?: number };
  const start = async (name: string): Promise<Server> => {
    if (name === 'dnsmasq') {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const t0 = performance.now();
      const child = spawn('dnsmasq', ['-k', `--conf-file=${conf}`, `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', `--server=127.0.0.1#${upstream}`, '--cache-size=10000', '--user=root'], { stdio: 'ignore' });
      const readyMs = await waitUdp(port, 'blk-0.test');
      return { name, child, port, readyMs: Math.round(readyMs + (performance.now() - t0 - readyMs)) };
    }
    // `safespot-before`: the same child mode from another build (an A/B in one run).
    const script = name === 'safespot-before' ? before! : SELF;
    const mode = name === 'bare-node' ? 'bare' : 'safespot';
    const extra = name === 'safespot-bundle' ? [bundleFile] : [];
    const child = spawn(process.execPath, ['--expose-gc', script, '--child', mode, String(entries), String(upstream), ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
    const r = await readyLine(child);
    return { name, child, ...r };
  };

  type Mode = 'blocked' | 'cached' | 'uncached';
  const servers = [...(before ? ['safespot-before'] : []), 'safespot', 'safespot-bundle', 'dnsmasq', 'bare-node'];
  /** Per round: server -> mode -> {qps, µs}; and RSS, ready time. */
  const results: { [server: string]: { [mode: string]: { qps: number; us: number }[] } } = {};
  const memory: { [server: string]: { rss: number[]; ready: number[]; policyRss: number[] } } = {};
  for (let round = 0; round < rounds; round++) {
    for (const name of servers) {
      const s = await start(name);
      const pid = s.child.pid!;
      // Warm the cached names (one query each) before measuring.
      if (name !== 'bare-node') await dnsperf(s.port, files.cached, 1, 1);
      const rss = rssMiB(pid);
      (memory[name] ??= { rss: [], ready: [], policyRss: [] }).rss.push(rss);
      memory[name]!.ready.push(s.readyMs);
      if (s.policyRss !== undefined) memory[name]!.policyRss.push(s.policyRss);
      // The bundle-loading child is there for its memory; its speed is the compiling child's (the same code).
      const modes: Mode[] = name === 'bare-node' || name === 'safespot-bundle' ? ['blocked'] : ['blocked', 'cached', 'uncached'];
      for (const mode of modes) {
        const c0 = cpuSeconds(pid);
        const r = await dnsperf(s.port, files[mode], seconds, clients);
        const cpu = cpuSeconds(pid) - c0;
        const us = (cpu / r.completed) * 1e6;
        ((results[name] ??= {})[mode] ??= []).push({ qps: r.qps, us });
        process.stderr.write(`round ${round + 1}: ${name} ${mode} ${Math.round(r.qps)} qps ${us.toFixed(1)} µs/query, RSS ${rss.toFixed(0)} MiB, ready ${s.readyMs} ms\n`);
      }
      s.child.kill('SIGTERM');
      await new Promise((r) => s.child.once('exit', r));
    }
  }
  rmSync(dir, { recursive: true, force: true });
  const median = (xs: number[]): number => {
    const a = [...xs].sort((x, y) => x - y);
    return a.length % 2 ? a[(a.length - 1) >> 1]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2;
  };
  process.stdout.write(`entries ${entries}, dnsperf -c ${clients} -l ${seconds}, ${rounds} round(s), medians, loopback, node ${process.version}\n`);
  process.stdout.write('| server | queries | qps | CPU per query (= ms per 1,000) | RSS with list | ready |\n|---|---|---|---|---|---|\n');
  for (const name of servers) {
    for (const [mode, rs] of Object.entries(results[name]!)) {
      const label = name === 'bare-node' ? 'any (no parsing)' : mode;
      process.stdout.write(`| ${name} | ${label} | ${Math.round(median(rs.map((r) => r.qps)))} | ${median(rs.map((r) => r.us)).toFixed(1)} µs | ${median(memory[name]!.rss).toFixed(0)} MiB | ${Math.round(median(memory[name]!.ready))} ms |\n`);
    }
  }
  // Ratios within each round (the machine is shared: a round's servers ran minutes apart, not days).
  const ratio = (a: string, am: Mode, b: string, bm: Mode): string => {
    const xs = results[a]![am]!.map((r, i) => r.us / results[b]![bm]![i]!.us);
    return `${median(xs).toFixed(2)}× (rounds ${xs.map((x) => x.toFixed(2)).join(', ')})`;
  };
  process.stdout.write(`\nblocked: safespot / dnsmasq CPU per query ${ratio('safespot', 'blocked', 'dnsmasq', 'blocked')} (goal ≤ 2)\n`);
  process.stdout.write(`cached: safespot / bare Node floor ${ratio('safespot', 'cached', 'bare-node', 'blocked')} (goal ≤ 1.5)\n`);
  process.stdout.write(`RSS: safespot / dnsmasq ${(median(memory.safespot!.rss) / median(memory.dnsmasq!.rss)).toFixed(2)}×, loaded from the bundle ${(median(memory['safespot-bundle']!.rss) / median(memory.dnsmasq!.rss)).toFixed(2)}× (goal ≤ 1)\n`);
  for (const name of ['safespot', 'safespot-bundle']) {
    const m = memory[name]!;
    process.stdout.write(`${name}: RSS with the policy alone ${median(m.policyRss).toFixed(0)} MiB, with the DNS listener started and warmed ${median(m.rss).toFixed(0)} MiB\n`);
  }
  if (before) {
    for (const m of ['blocked', 'cached', 'uncached'] as Mode[]) process.stdout.write(`${m}: safespot / safespot-before CPU per query ${ratio('safespot', m, 'safespot-before', m)}\n`);
  }
  process.exit(0);
}

void main();
