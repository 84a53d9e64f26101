/**
 * A/B of two safespot builds on the CONNECT+TLS path: both builds' `safespot serve` and the bare
 * forwarder (bench/bare-forwarder.ts) side by side, with the same 1M-entry policy, the targets taking
 * turns connection by connection in each job (16 at a time by default), so that all three meet the
 * same neighbours on a shared machine. Per round: each target's own CPU time per connection
 * (schedstat, as bench/proxy.ts); at the end the medians, each build's ratio to the bare forwarder
 * and the median of the per-round B/A ratios, the figure to read for a change. A build compared
 * with itself reads 1.00 (±0.02 on the 2-core development VM).
 *
 *   npm run build && node dist/bench/proxy-ab.js --a DIR [--b DIR] [--rounds 9] [--n 800] [--entries N] [--concurrency 16]
 *
 * DIR: a checkout whose `dist/appliance/cli.js` is built (`--b` defaults to this one), e.g. a
 * `git worktree` of the commit before a change. Not part of `npm run bench` (no `bench` export):
 * it needs a second build.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMain } from './common.js';
import { startLoad } from './load-child.js';
import { checkPolicyInForce, cpuSeconds, forkChild, median, startProxyRig, startSafespot, TLS_HOSTS } from './proxy.js';
import { portOf } from './proxy-upstream.js';

interface Target {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const a = process.argv.includes('--a') ? arg('a', '') : '';
  if (a === '') {
    process.stderr.write('usage: node dist/bench/proxy-ab.js --a DIR [--b DIR] [--rounds N] [--n N] [--entries N] [--concurrency N]\n');
    process.exit(2);
  }
  const b = arg('b', join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
  const rounds = Number(arg('rounds', '9'));
  const n = Number(arg('n', '800'));
  const entries = Number(arg('entries', '1000000'));
  const concurrency = Number(arg('concurrency', '16'));
  const rig = await startProxyRig(entries);
  try {
    const targets: Target[] = [];
    const bare = await forkChild('bare-forwarder.js', { hosts: rig.hosts }, rig.children);
    targets.push({ name: 'bare', pid: bare.child.pid!, port: bare.port });
    for (const [name, root] of [['A', a], ['B', b]] as const) {
      const s = await startSafespot(rig.config, [], rig.children, join(root, 'dist', 'appliance', 'cli.js'));
      await checkPolicyInForce(s, entries);
      targets.push({ name, pid: s.child.pid!, port: s.forward });
    }
    const load = startLoad(rig.children);
    await load.run({ op: 'init', ca: rig.pki.ca });
    const job = (order: readonly Target[], count: number, c: number) =>
      ({ op: 'tls', vias: order.map((t) => ({ kind: 'proxy', port: t.port }) as const), upstreamPort: portOf(rig.tls), hosts: TLS_HOSTS, n: count * order.length, concurrency: c }) as const;
    for (const t of targets) await load.run(job([t], 1000, 8)); // warm-up: JIT, caches
    const perConn: Record<string, number[]> = { bare: [], A: [], B: [] };
    const ba: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      const before = order.map((t) => cpuSeconds(t.pid));
      const res = await load.run(job(order, n, concurrency));
      if (res.errors > 0) throw new Error(`${res.errors} failed connections (${res.firstError})`);
      order.forEach((t, i) => perConn[t.name]!.push(((cpuSeconds(t.pid) - before[i]!) / n) * 1000));
      const last = (k: string): number => perConn[k]!.at(-1)!;
      ba.push(last('B') / last('A'));
      process.stdout.write(`round ${r + 1}: bare ${last('bare').toFixed(3)} ms, A ${last('A').toFixed(3)} ms (${(last('A') / last('bare')).toFixed(2)}x), B ${last('B').toFixed(3)} ms (${(last('B') / last('bare')).toFixed(2)}x)\n`);
    }
    const m = (k: string): number => median(perConn[k]!);
    const ratio = (k: string): number => median(perConn[k]!.map((x, i) => x / perConn.bare![i]!));
    process.stdout.write(
      `medians of ${rounds} rounds of ${n} CONNECT+TLS connections per target, ${concurrency} at a time, ${entries.toLocaleString('en-US')} list entries:\n` +
        `  bare forwarder ${m('bare').toFixed(3)} ms CPU per connection\n` +
        `  A ${m('A').toFixed(3)} ms (${ratio('A').toFixed(3)}x bare)   ${a}\n` +
        `  B ${m('B').toFixed(3)} ms (${ratio('B').toFixed(3)}x bare)   ${b}\n` +
        `  B/A per round, median: ${median(ba).toFixed(3)}\n`,
    );
  } finally {
    await rig.close();
  }
}

if (isMain(import.meta.url)) await main();
