/**
 * A/B of two safespot builds on one path (`--mode`): both builds' `safespot serve` and the bare
 * forwarder (bench/bare-forwarder.ts) side by side, with the same 1M-entry policy, the targets taking
 * turns connection by connection in each job (16 at a time by default), so that all three meet the
 * same neighbours on a shared machine. Per round: each target's own CPU time per connection
 * (schedstat, as bench/proxy.ts); at the end the medians, each build's ratio to the bare forwarder
 * and the median of the per-round B/A ratios, the figure to read for a change. A build compared
 * with itself reads 1.00 (±0.02 on the 2-core development VM).
 *
 *   npm run build && node dist/bench/proxy-ab.js --a DIR [--b DIR] [--mode tls|http|bulk] [--rounds 9] [--n 800] [--entries N] [--concurrency 16]
 *
 * Modes: `tls` (the default) CONNECT+TLS connections as above; `http` keep-alive absolute-URI
 * plain-HTTP GETs (default 4,000 per target per round, 24 at a time in all, the targets taking turns
 * request by request; the baseline is the bare forwarder's node:http variant, which forwards them
 * with no header work), CPU per request; `bulk` one `--mib` (256) MiB download through one CONNECT
 * tunnel per target per round, in rotating order, CPU per GiB; `refuse` TLS connections straight to
 * the transparent TLS listener with the SNI of a listed host (entry #entries/2), each refused with an
 * access_denied alert (default 2,000 per target per round), beside the bare forwarder's refusing
 * variant (an alert on the first bytes, nothing parsed), CPU per refusal.
 *
 * `--cpu-prof DIR` runs B under `node --cpu-prof` and prints where its CPU went in the measured rounds.
 * `--b-config JSON` merges into B's serve config, section by section (e.g. `{"journal":{"eventsPerMinute":0}}`
 * with `--b` the same build as `--a`: what one setting costs).
 *
 * DIR: a checkout whose `dist/appliance/cli.js` is built (`--b` defaults to this one), e.g. a
 * `git worktree` of the commit before a change. Not part of `npm run bench` (no `bench` export):
 * it needs a second build.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMain } from './common.js';
import { summarizeProfiles } from './cpu-profile.js';
import { startLoad } from './load-child.js';
import { checkPolicyInForce, cpuSeconds, forkChild, HTTP_HOSTS, median, startProxyRig, startSafespot, TLS_HOSTS } from './proxy.js';
import type { LoadJob, Via } from './proxy-load.js';
import { portOf } from './proxy-upstream.js';

interface Target {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
}

const USAGE =
  'usage: node dist/bench/proxy-ab.js --a DIR [--b DIR] [--mode tls|http|bulk|refuse] [--rounds N] [--n N] [--mib N] [--entries N] [--concurrency N] [--cpu-prof DIR] [--b-config JSON]';
const UNIT: Record<string, string> = { tls: 'ms CPU/connection', http: 'ms CPU/request', bulk: 's CPU/GiB', refuse: 'ms CPU/refusal' };

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const a = process.argv.includes('--a') ? arg('a', '') : '';
  const mode = arg('mode', 'tls');
  if (a === '' || !['tls', 'http', 'bulk', 'refuse'].includes(mode)) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const b = arg('b', join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
  const rounds = Number(arg('rounds', '9'));
  const n = Number(arg('n', mode === 'http' ? '4000' : mode === 'refuse' ? '2000' : '800'));
  const bytes = Number(arg('mib', '256')) * 1048576;
  const entries = Number(arg('entries', '1000000'));
  const concurrency = Number(arg('concurrency', mode === 'http' ? '24' : '16'));
  const profDir = arg('cpu-prof', '');
  let profiled: ChildProcess | null = null;
  const rig = await startProxyRig(entries);
  try {
    const targets: Target[] = [];
    // The baseline: the bare forwarder; for plain HTTP its node:http variant, which forwards absolute
    // URIs; for refusals its refusing variant.
    const bareOpts = mode === 'http' ? { hosts: rig.hosts, parse: 'http' } : mode === 'refuse' ? { hosts: rig.hosts, refuse: true } : { hosts: rig.hosts };
    const bare = await forkChild('bare-forwarder.js', bareOpts, rig.children);
    targets.push({ name: 'bare', pid: bare.child.pid!, port: bare.port });
    // A config of their own: for refusals with the transparent TLS listener beside the forward one,
    // and for B with --b-config merged in.
    const configs = { A: rig.config, B: rig.config };
    const bConfig = JSON.parse(arg('b-config', '{}')) as Record<string, Record<string, unknown>>;
    for (const name of ['A', 'B'] as const) {
      if (mode !== 'refuse' && (name === 'A' || Object.keys(bConfig).length === 0)) continue;
      const c = JSON.parse(readFileSync(rig.config, 'utf8')) as Record<string, Record<string, unknown>>;
      if (mode === 'refuse') c.listeners!.tls = { host: '127.0.0.1', port: 0 };
      if (name === 'B') for (const [k, v] of Object.entries(bConfig)) c[k] = { ...c[k], ...v };
      configs[name] = join(rig.dir, `config-${name}.json`);
      writeFileSync(configs[name], JSON.stringify(c));
    }
    for (const [name, root] of [['A', a], ['B', b]] as const) {
      const flags = name === 'B' && profDir !== '' ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
      const s = await startSafespot(configs[name], flags, rig.children, join(root, 'dist', 'appliance', 'cli.js'));
      if (flags.length > 0) profiled = s.child;
      await checkPolicyInForce(s, entries);
      targets.push({ name, pid: s.child.pid!, port: mode === 'refuse' ? s.ports.tls! : s.forward });
    }
    const load = startLoad(rig.children);
    await load.run({ op: 'init', ca: rig.pki.ca });
    const via = (t: Target): Via => ({ kind: 'proxy', port: t.port });
    const tlsJob = (order: readonly Target[], count: number, c: number): LoadJob =>
      ({ op: 'tls', vias: order.map(via), upstreamPort: portOf(rig.tls), hosts: TLS_HOSTS, n: count * order.length, concurrency: c });
    const httpJob = (order: readonly Target[], count: number, c: number): LoadJob =>
      ({ op: 'http', via: via(order[0]!), vias: order.map(via), hosts: HTTP_HOSTS, n: count * order.length, concurrency: c });
    const bulkJob = (t: Target, size: number): LoadJob => ({ op: 'bulk', via: via(t), upstreamPort: portOf(rig.tls), host: TLS_HOSTS[0]!, bytes: size });
    const blocked = `site${entries >> 1}.cat${(entries >> 1) % 997}.test`; // as startProxyRig names its entries
    const refuseJob = (order: readonly Target[], count: number, c: number): LoadJob =>
      ({ op: 'refuse', ports: order.map((t) => t.port), host: blocked, n: count * order.length, concurrency: c });
    // Warm-up: JIT, caches, keep-alive pools.
    for (const t of targets) {
      if (mode === 'tls') await load.run(tlsJob([t], 1000, 8));
      else if (mode === 'http') await load.run(httpJob([t], 3000, concurrency));
      else if (mode === 'refuse') await load.run(refuseJob([t], 1000, concurrency));
      else await load.run(bulkJob(t, 64 << 20));
    }
    const per: Record<string, number[]> = { bare: [], A: [], B: [] };
    const rate: Record<string, number[]> = { bare: [], A: [], B: [] };
    const ba: number[] = [];
    const from = Number(process.hrtime.bigint() / 1000n);
    for (let r = 0; r < rounds; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      if (mode === 'bulk') {
        // One tunnel at a time (the figure is CPU per GiB; a tunnel is one connection), in rotating order.
        for (const t of order) {
          const c0 = cpuSeconds(t.pid);
          const res = await load.run(bulkJob(t, bytes));
          if (res.bytes < bytes) throw new Error(`${t.name}: bulk transfer short (${res.bytes} of ${bytes} bytes)`);
          per[t.name]!.push((cpuSeconds(t.pid) - c0) / (bytes / 1073741824));
          rate[t.name]!.push(bytes / 1048576 / (res.wallMs / 1000));
        }
      } else {
        const before = order.map((t) => cpuSeconds(t.pid));
        const res = await load.run(mode === 'tls' ? tlsJob(order, n, concurrency) : mode === 'refuse' ? refuseJob(order, n, concurrency) : httpJob(order, n, concurrency));
        if (res.errors > 0) throw new Error(`${res.errors} failed ${mode === 'http' ? 'requests' : 'connections'} (${res.firstError}; targets in order: ${order.map((t) => t.name).join(', ')})`);
        order.forEach((t, i) => per[t.name]!.push(((cpuSeconds(t.pid) - before[i]!) / n) * 1000));
      }
      const last = (k: string): number => per[k]!.at(-1)!;
      ba.push(last('B') / last('A'));
      process.stdout.write(`round ${r + 1}: bare ${last('bare').toFixed(3)} ${UNIT[mode]}, A ${last('A').toFixed(3)} (${(last('A') / last('bare')).toFixed(2)}x), B ${last('B').toFixed(3)} (${(last('B') / last('bare')).toFixed(2)}x)\n`);
    }
    const m = (k: string): number => median(per[k]!);
    const ratio = (k: string): number => median(per[k]!.map((x, i) => x / per.bare![i]!));
    const mibs = (k: string): string => (mode === 'bulk' ? `, ${median(rate[k]!).toFixed(0)} MiB/s` : '');
    const what =
      mode === 'tls'
        ? `${n} CONNECT+TLS connections per target, ${concurrency} at a time`
        : mode === 'http'
          ? `${n} keep-alive plain-HTTP GETs per target (absolute URI), ${concurrency} at a time in all, interleaved`
          : mode === 'refuse'
            ? `${n} refused TLS connections per target (SNI ${blocked}), ${concurrency} at a time in all, interleaved`
            : `one ${bytes >> 20} MiB download through one CONNECT tunnel per target`;
    process.stdout.write(
      `medians of ${rounds} rounds of ${what}, ${entries.toLocaleString('en-US')} list entries:\n` +
        `  bare forwarder ${m('bare').toFixed(3)} ${UNIT[mode]}${mibs('bare')}\n` +
        `  A ${m('A').toFixed(3)} ${UNIT[mode]} (${ratio('A').toFixed(3)}x bare)${mibs('A')}   ${a}\n` +
        `  B ${m('B').toFixed(3)} ${UNIT[mode]} (${ratio('B').toFixed(3)}x bare)${mibs('B')}   ${b}\n` +
        `  B/A per round, median: ${median(ba).toFixed(3)}\n`,
    );
    if (profiled !== null) {
      // The profile is written when B exits; SIGTERM drains it. Its CPU figures above are inflated by the profiler.
      const to = Number(process.hrtime.bigint() / 1000n);
      const exited = new Promise((r) => profiled!.once('exit', r));
      profiled.kill('SIGTERM');
      await exited;
      process.stdout.write(`\n== B CPU profile over the measured rounds (PROFILED: B's figures above are not comparable):\n${summarizeProfiles(profDir, [{ from, to }])}\n`);
    }
  } finally {
    await rig.close();
  }
}

if (isMain(import.meta.url)) await main();
