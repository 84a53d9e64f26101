/**
 * The soak of bench/soak.ts in a short, bounded form (issue 9, item 6): a real `safespot serve` under
 * a steady mix of allowed, blocked, malformed and slow connections for 20 s. Checked: the process
 * never crashed, every answer was the expected one, the memory samples were taken, and afterwards
 * no guest connection is left open (safespot_connections_active back to 0). Memory figures are
 * printed, never asserted: the ten-minute run and its figures are in BENCHMARKS.md ("Soak").
 */
import t from 'tap';
import { growth, runSoak, slopePerMinute, type SoakSample } from '../../bench/soak.js';

t.test('20 s of mixed traffic: no crash, no wrong answer, no leaked connection', async (t) => {
  const r = await runSoak({ seconds: 20, sampleEverySeconds: 4, loops: 4, slowClients: 6, malloc: 'glibc' });
  t.ok(r.aliveAtEnd, 'serve was still running when the load ended');
  t.equal(r.unexpected, 0, `every answer as expected: ${JSON.stringify(r.counts)}`);
  for (const kind of ['allowed', 'blocked', 'transparent', 'tls-blocked', 'tls-allowed', 'connect-blocked', 'malformed', 'truncated-tls', 'slow']) {
    t.ok((r.counts[`${kind}:ok`] ?? 0) > 0, `the mix included ${kind}`);
  }
  t.equal(r.connectionsActiveAfter, 0, 'safespot_connections_active back to 0 after the load');
  t.ok((r.limitsHit.headers_timeout ?? 0) > 0, 'slow clients were cut off by the headers timeout');
  t.ok(r.samples.length >= 3 && r.samples.every((s) => s.rssBytes > 0 && s.heapUsedBytes > 0), `${r.samples.length} memory samples`);
  t.ok(r.samples.every((s) => s.rssAnonBytes > 0 && s.rssAnonBytes < s.rssBytes && s.externalBytes > 0), 'each sample has anonymous RSS below RSS, and external memory');
  t.equal(r.exitCode, 0, 'SIGTERM drains and exits 0');
  t.notMatch(r.log, /"level":"error"/, 'no error in the operational log');
  t.equal(r.processes, 1, 'one process measured');
  t.same(r.malloc, ['glibc'], "on glibc's malloc, as asked");
  const rss = growth(r.samples, (s) => s.rssBytes, 8);
  const heap = growth(r.samples, (s) => s.heapUsedBytes, 8);
  t.comment(`RSS ${(rss.start / 2 ** 20).toFixed(1)} -> ${(rss.end / 2 ** 20).toFixed(1)} MiB, heap ${(heap.start / 2 ** 20).toFixed(1)} -> ${(heap.end / 2 ** 20).toFixed(1)} MiB (not asserted)`);
});

t.test('a cluster on jemalloc: every process measured, the same mix answered', async (t) => {
  // test/setup-system.sh installs libjemalloc2; the container image preloads the same library.
  const r = await runSoak({ seconds: 12, sampleEverySeconds: 3, loops: 4, slowClients: 4, workers: 2, malloc: 'jemalloc' });
  t.equal(r.processes, 3, 'the primary and its two workers');
  t.same(r.malloc, ['jemalloc', 'jemalloc', 'jemalloc'], 'each on jemalloc (LD_PRELOAD reaches the workers)');
  t.equal(r.unexpected, 0, `every answer as expected: ${JSON.stringify(r.counts)}`);
  t.equal(r.connectionsActiveAfter, 0, 'no connection left open across the workers');
  t.ok(r.samples.length >= 2 && r.samples.every((s) => s.rssAnonBytes > 0 && s.rssAnonBytes < s.rssBytes && s.heapUsedBytes > 0), `${r.samples.length} memory samples`);
  t.equal(r.exitCode, 0, 'SIGTERM drains the cluster and exits 0');
});

t.test('the slope of a soak figure is per minute, over the samples from a given time on', async (t) => {
  const at = (tSec: number, v: number): SoakSample => ({ t: tSec, rssBytes: v, heapUsedBytes: 0, heapTotalBytes: 0, rssAnonBytes: 0, externalBytes: 0, connectionsActive: 0 });
  // 0 for the first 10 minutes, then 2 bytes a second: 120 a minute from t=600 on.
  const xs = Array.from({ length: 241 }, (_, i) => at(i * 5, i * 5 < 600 ? 0 : (i * 5 - 600) * 2));
  t.equal(Math.round(slopePerMinute(xs, (s) => s.rssBytes, 600)), 120, 'rising part: 120 per minute');
  t.equal(slopePerMinute(xs, (s) => s.rssBytes, 0) < 120, true, 'over the whole run the flat start lowers it');
  t.equal(slopePerMinute(xs.slice(0, 100), (s) => s.rssBytes, 0), 0, 'a flat line has slope 0');
  t.ok(Number.isNaN(slopePerMinute(xs, (s) => s.rssBytes, 10_000)), 'no samples after the start: NaN, not a number made up');
});
