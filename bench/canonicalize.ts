/**
 * Canonicalisation and expressions: ns per call for ordinary URLs (fast path), URLs that need the
 * general path (upper case, port, escapes, dot segments, IDN), and canonicalize + urlExpressions +
 * SHA-256 of every expression, beside the baseline of `new URL()` on the same inputs. Figures only,
 * never pass/fail.
 *
 *   npm run build && node dist/bench/canonicalize.js [--quick]
 */
import { createHash } from 'node:crypto';
import { canonicalize, canonicalizeHost } from '../policy/canonicalize.js';
import { hostExpressions, urlExpressions } from '../policy/expressions.js';
import { type BenchResult, isMain, printResults } from './common.js';

const ORDINARY = [
  'http://www.example.test/a/b/c.html?x=1',
  'https://cdn.example.test/static/js/app.min.js',
  'https://news.example.test/2024/06/12/some-article-title-here',
  'http://img.example.test/i/1234567890.jpg?w=640&h=480',
  'https://example.test/',
  'https://api.example.test/v1/items?id=42&sort=desc&page=3',
  'http://a.b.c.example.test/x/y/z/w/v.html',
  'https://shop.example.test/products/category/item-name-123',
];

const GENERAL = [
  'HTTP://WWW.Example.TEST/a/b/c.html?x=1',
  'http://www.example.test:8080/a/./b/../c.html',
  'http://www.example.test/a%20b/%7Euser/index.html?q=%41',
  'http://3279880203/blah',
  'https://bücher.example.test/straße',
  'http://host/%25%32%35%25%32%35',
  'http://user:pw@www.example.test//x//y/',
  'http://[2001:0db8:0000::1]:8443/a',
];

const HOSTS = ['www.example.test', 'cdn.example.test:443', 'A.B.C.Example.TEST', '1.2.3.4'];

/**
 * Nanoseconds of this process's CPU time per call of fn over inputs, median of `rounds` rounds after
 * a warm-up. CPU time rather than wall time: the build machines are shared, and wall time there
 * mostly measures the neighbours.
 */
function nsPerCall(inputs: readonly string[], iterations: number, rounds: number, fn: (s: string) => unknown): number {
  let sink = 0;
  const run = (n: number): number => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < n; i++) if (fn(inputs[i % inputs.length]!) !== null) sink++;
    const d = process.cpuUsage(t0);
    return ((d.user + d.system) * 1000) / n;
  };
  run(Math.min(iterations, 20_000));
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) samples.push(run(iterations));
  samples.sort((a, b) => a - b);
  if (sink < 0) throw new Error('unreachable');
  return samples[Math.floor(samples.length / 2)]!;
}

function canonicalizeAndExpressions(s: string): number {
  const c = canonicalize(s);
  return c === null ? 0 : urlExpressions(c).length;
}

function fullDecisionHashing(s: string): number {
  const c = canonicalize(s);
  if (c === null) return 0;
  let x = 0;
  for (const e of urlExpressions(c)) x ^= createHash('sha256').update(e).digest()[0]!;
  return x;
}

function urlBaseline(s: string): unknown {
  try {
    return new URL(s).href;
  } catch {
    return null;
  }
}

export async function bench(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const n = opts.quick ? 20_000 : 200_000;
  const rounds = opts.quick ? 3 : 7;
  const results: BenchResult[] = [];
  const baseOrdinary = nsPerCall(ORDINARY, n, rounds, urlBaseline);
  const baseGeneral = nsPerCall(GENERAL, n, rounds, urlBaseline);
  results.push({ name: 'canonicalize, ordinary URLs (fast path)', value: nsPerCall(ORDINARY, n, rounds, canonicalize), unit: 'ns/call', baseline: baseOrdinary, note: 'baseline: new URL(s).href' });
  results.push({ name: 'canonicalize, URLs needing the general path', value: nsPerCall(GENERAL, n, rounds, canonicalize), unit: 'ns/call', baseline: baseGeneral, note: 'baseline: new URL(s).href' });
  results.push({ name: 'canonicalize + urlExpressions, ordinary URLs', value: nsPerCall(ORDINARY, n, rounds, canonicalizeAndExpressions), unit: 'ns/call' });
  results.push({ name: 'canonicalize + urlExpressions, general-path URLs', value: nsPerCall(GENERAL, n, rounds, canonicalizeAndExpressions), unit: 'ns/call' });
  results.push({
    name: 'canonicalize + urlExpressions + SHA-256 of each expression, ordinary URLs',
    value: nsPerCall(ORDINARY, Math.floor(n / 4), rounds, fullDecisionHashing),
    unit: 'ns/call',
    note: 'one-shot createHash per expression; the lookup itself is not included',
  });
  results.push({
    name: 'canonicalizeHost + hostExpressions',
    value: nsPerCall(HOSTS, n, rounds, (h) => {
      const c = canonicalizeHost(h);
      return c === null ? null : hostExpressions(c.host, c.hostKind);
    }),
    unit: 'ns/call',
  });
  return results;
}

if (isMain(import.meta.url)) {
  printResults(await bench({ quick: process.argv.includes('--quick') }), 0);
}
