/**
 * The policy engine with a synthetic list of 1,000,000 domains (100,000 with --quick): full-URL and
 * host-only decisions per second, bytes per entry, compile and bundle load time, each beside a
 * baseline in the same run: a plain Set of the clear-text host strings doing the same host lookups
 * (the host and each parent domain). Throughput is CPU time of this process (the machines are
 * shared; wall time would mostly measure the neighbours). Figures only, never pass/fail.
 *
 *   npm run build && node dist/bench/policy.js [--quick]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeBundle, encodeBundle } from '../policy/bundle.js';
import { compilePolicy, Policy } from '../policy/policy.js';
import { type BenchResult, isMain, printResults } from './common.js';

/** A garbage collector to call between memory samples (exposed at run time when the flag is missing). */
function getGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function retainedBytes(gc: () => void): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** Calls per second of CPU time: median of `rounds` rounds of `n` calls, after a warm-up round. */
function perSecond(inputs: readonly string[], n: number, rounds: number, fn: (s: string) => unknown): number {
  let sink = 0;
  const round = (count: number): number => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < count; i++) if (fn(inputs[i % inputs.length]!) !== undefined) sink++;
    const d = process.cpuUsage(t0);
    return count / ((d.user + d.system) / 1e6);
  };
  round(Math.min(n, 20_000));
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) samples.push(round(n));
  samples.sort((a, b) => a - b);
  if (sink < 0) throw new Error('unreachable');
  return samples[Math.floor(samples.length / 2)]!;
}

/** Deterministic pseudo-random numbers (xorshift32), so every run measures the same mix. */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

const listedHost = (i: number): string => `site${i}.cat${i % 997}.test`;

const PATHS = [
  '/',
  '/index.html',
  '/favicon.ico',
  '/static/js/app.3f9a1c.min.js',
  '/images/2024/06/photo-1234.jpg',
  '/search?q=weather+tirana&lang=sq',
  '/news/world/2024/06/12/some-article-title-here',
  '/api/v1/items?id=42&sort=desc&page=3',
  '/wp-content/uploads/2023/11/banner.png',
  '/watch?v=dQw4w9WgXcQ',
  '/a/b/c/d/e/f/g.html',
  '/login',
];

/** A realistic mix: 10% of requests to listed hosts (often a subdomain), 90% to others. */
function urlMix(count: number, hosts: number, listed: number): string[] {
  const r = rng(42);
  const hostPool: string[] = [];
  for (let i = 0; i < hosts; i++) {
    if (r() < 0.1) {
      const h = listedHost(Math.floor(r() * listed));
      hostPool.push(r() < 0.5 ? `www.${h}` : h);
    } else {
      hostPool.push(`${r() < 0.6 ? 'www.' : r() < 0.5 ? 'cdn.' : ''}unlisted${i}.example${i % 89}.test`);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const scheme = r() < 0.8 ? 'https' : 'http';
    out.push(`${scheme}://${hostPool[Math.floor(r() * hostPool.length)]}${PATHS[Math.floor(r() * PATHS.length)]}`);
  }
  return out;
}

/** The baseline: host and each parent domain looked up in a Set of clear-text names. */
function setHasHostOrParent(set: ReadonlySet<string>, host: string): boolean {
  let h = host;
  for (;;) {
    if (set.has(h)) return true;
    const dot = h.indexOf('.');
    if (dot < 0) return false;
    h = h.slice(dot + 1);
  }
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).hostname;
  } catch {
    return null;
  }
}

/**
 * The list text, built and compiled inside a plain function: an async function's registers keep
 * block locals (the 1M-line array) alive after the block, which would be counted as policy memory.
 */
function compileSynthetic(n: number): Policy {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(listedHost(i));
  return compilePolicy({
    lists: [{ id: 'synthetic', category: 'adult', kind: 'domains', text: lines.join('\n') }],
    allow: ['ok.example0.test'],
    // A second profile, so that decisions with a client address go through the client → profile step.
    profiles: [{ name: 'staff', clients: ['10.1.0.0/16', 'fd00:1::/32'] }],
  });
}

function buildSet(n: number): Set<string> {
  const set = new Set<string>();
  for (let i = 0; i < n; i++) set.add(listedHost(i));
  return set;
}

export async function bench(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const N = opts.quick ? 100_000 : 1_000_000;
  const rounds = opts.quick ? 3 : 5;
  const calls = opts.quick ? 20_000 : 100_000;
  const gc = getGc();
  const results: BenchResult[] = [];
  const label = opts.quick ? '100k' : '1M';

  // Warm the modules (their scratch buffers are not per-entry memory).
  compilePolicy({ lists: [{ id: 'w', category: 'adult', kind: 'domains', text: 'warm.test\n' }] }).decideUrl('http://warm.test/');

  // Memory of the clear-text baseline.
  const setBase = retainedBytes(gc);
  let set: Set<string> | null = buildSet(N);
  const setBytes = retainedBytes(gc) - setBase;

  // Compile the policy from list text; memory retained by the policy alone.
  const base = retainedBytes(gc);
  const t0 = process.cpuUsage();
  const policy = compileSynthetic(N);
  const compileCpu = process.cpuUsage(t0);
  const policyBytes = retainedBytes(gc) - base;
  results.push({
    name: `memory per list entry (${label} domains)`,
    value: policyBytes / N,
    unit: 'bytes',
    baseline: setBytes / N,
    note: 'heapUsed + external after GC; baseline: Set of the clear-text host names',
  });
  results.push({ name: `compile ${label} domains from text`, value: (compileCpu.user + compileCpu.system) / 1e6, unit: 's CPU', note: 'parse, canonicalise, hash, sort' });

  // Full-URL decisions.
  const urls = urlMix(50_000, 5_000, N);
  const urlBaseline = perSecond(urls, calls, rounds, (u) => {
    const h = hostOf(u);
    return h === null ? null : setHasHostOrParent(set!, h);
  });
  results.push({
    name: 'full-URL decisions/s, 5,000 hosts (host part cached)',
    value: perSecond(urls, calls, rounds, (u) => policy.decideUrl(u).action),
    unit: 'ops/s',
    baseline: urlBaseline,
    note: 'URL decisions themselves are never cached; baseline: new URL() + Set host lookups',
  });
  const noCache = new Policy({ ...policy.parts, meta: { ...policy.parts.meta, cacheSize: 1 } }, policy.version);
  const urlsNewHosts = urlMix(50_000, 50_000, N);
  results.push({
    name: 'full-URL decisions/s, every host new (no cache at all)',
    value: perSecond(urlsNewHosts, calls, rounds, (u) => noCache.decideUrl(u).action),
    unit: 'ops/s',
    baseline: urlBaseline,
    note: 'policy built with cacheSize 1',
  });
  const blockedShare = urls.filter((u) => policy.decideUrl(u).action === 'block').length / urls.length;

  // Host-only decisions.
  const r = rng(7);
  const distinctHosts: string[] = [];
  for (let i = 0; i < 100_000; i++) distinctHosts.push(r() < 0.1 ? `www.${listedHost(Math.floor(r() * N))}` : `host${i}.example${i % 89}.test`);
  const hostBaseline = perSecond(distinctHosts, calls * 2, rounds, (h) => setHasHostOrParent(set!, h));
  results.push({
    name: 'host decisions/s, uncached',
    value: perSecond(distinctHosts, calls * 2, rounds, (h) => noCache.decideHost(h).action),
    unit: 'ops/s',
    baseline: hostBaseline,
    note: 'policy built with cacheSize 1; baseline: Set lookups of host and parents',
  });
  const hot = distinctHosts.slice(0, 1000);
  results.push({
    name: 'host decisions/s, cached (1,000 hot hosts)',
    value: perSecond(hot, calls * 20, rounds, (h) => policy.decideHost(h).action),
    unit: 'ops/s',
    baseline: perSecond(hot, calls * 20, rounds, (h) => setHasHostOrParent(set!, h)),
    note: 'baseline: Set lookups of host and parents',
  });
  const hotClient = perSecond(hot, calls * 20, rounds, (h) => policy.decideHost(h, '10.1.2.3').action);
  results.push({ name: 'host decisions/s, cached, with a client address', value: hotClient, unit: 'ops/s', note: 'client in a profile network: client cache + key per profile' });
  set = null;

  // Bundle size and load time (read the file + verify checksum + build the policy).
  const bytes = encodeBundle(policy);
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-'));
  try {
    const file = join(dir, 'policy.bundle');
    writeFileSync(file, bytes);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = performance.now();
      const loaded = decodeBundle(readFileSync(file));
      if (loaded.lists.length !== 1) throw new Error('bundle did not round-trip');
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    results.push({ name: `bundle load, ${label} entries (read + verify + views)`, value: times[1]!, unit: 'ms', note: `bundle ${(bytes.length / 1e6).toFixed(1)} MB, wall time, median of 3` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  results.push({ name: 'share of the URL mix blocked', value: blockedShare * 100, unit: '%', note: 'sanity check of the mix' });
  return results;
}

if (isMain(import.meta.url)) {
  printResults(await bench({ quick: process.argv.includes('--quick') }), 1);
}
