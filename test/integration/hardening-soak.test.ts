/**
 * The soak of bench/soak.ts in a short, bounded form (issue 9, item 6): a real `safespot serve` under
 * a steady mix of allowed, blocked, malformed and slow connections for 20 s. Checked: the process
 * never crashed, every answer was the expected one, the memory samples were taken, and afterwards
 * no guest connection is left open (safespot_connections_active back to 0). Memory figures are
 * printed, never asserted: the ten-minute run and its figures are in BENCHMARKS.md ("Soak").
 */
import t from 'tap';
import { growth, runSoak } from '../../bench/soak.js';

t.test('20 s of mixed traffic: no crash, no wrong answer, no leaked connection', async (t) => {
  const r = await runSoak({ seconds: 20, sampleEverySeconds: 4, loops: 4, slowClients: 6 });
  t.ok(r.aliveAtEnd, 'serve was still running when the load ended');
  t.equal(r.unexpected, 0, `every answer as expected: ${JSON.stringify(r.counts)}`);
  for (const kind of ['allowed', 'blocked', 'transparent', 'tls-blocked', 'tls-allowed', 'connect-blocked', 'malformed', 'truncated-tls', 'slow']) {
    t.ok((r.counts[`${kind}:ok`] ?? 0) > 0, `the mix included ${kind}`);
  }
  t.equal(r.connectionsActiveAfter, 0, 'safespot_connections_active back to 0 after the load');
  t.ok((r.limitsHit.headers_timeout ?? 0) > 0, 'slow clients were cut off by the headers timeout');
  t.ok(r.samples.length >= 3 && r.samples.every((s) => s.rssBytes > 0 && s.heapUsedBytes > 0), `${r.samples.length} memory samples`);
  t.equal(r.exitCode, 0, 'SIGTERM drains and exits 0');
  t.notMatch(r.log, /"level":"error"/, 'no error in the operational log');
  const rss = growth(r.samples, (s) => s.rssBytes, 8);
  const heap = growth(r.samples, (s) => s.heapUsedBytes, 8);
  t.comment(`RSS ${(rss.start / 2 ** 20).toFixed(1)} -> ${(rss.end / 2 ** 20).toFixed(1)} MiB, heap ${(heap.start / 2 ** 20).toFixed(1)} -> ${(heap.end / 2 ** 20).toFixed(1)} MiB (not asserted)`);
});
