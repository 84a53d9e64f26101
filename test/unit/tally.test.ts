/**
 * audit/tally.ts: counts kept as plain numbers and handed to prom-client at collect time must read
 * exactly as if every event had gone to prom-client itself. Each check compares against a real
 * prom-client metric fed the same events.
 */
import fc from 'fast-check';
import { Counter, Histogram, Registry, type Metric } from 'prom-client';
import t from 'tap';
import { createMetrics, DECISION_BUCKETS } from '../../audit/metrics.js';
import { flushCounts, TallyCells, TallyHistogram } from '../../audit/tally.js';

t.test('TallyCells: one cell per combination of values, created once, at any depth', async (t) => {
  const made: string[][] = [];
  const cells = new TallyCells(3, (v) => {
    made.push([...v]);
    return { a: v[0], b: v[1], c: v[2] };
  });
  const x = cells.cell('forward', 'tls', 'allow');
  t.equal(cells.cell('forward', 'tls', 'allow'), x, 'the same values give the same cell');
  t.not(cells.cell('forward', 'tls', 'block'), x, 'another last value, another cell');
  t.not(cells.cell('http', 'tls', 'allow'), x, 'another first value, another cell');
  t.same(made, [['forward', 'tls', 'allow'], ['forward', 'tls', 'block'], ['http', 'tls', 'allow']], 'labels made once per combination');
  t.same(x.labels, { a: 'forward', b: 'tls', c: 'allow' });
  t.equal(cells.cells().length, 3);
  const one = new TallyCells(1, ([r]) => ({ result: r }));
  t.equal(one.cell('sni'), one.cell('sni'));
  t.same(one.cell('ech').labels, { result: 'ech' });
  const four = new TallyCells(4, (v) => v.join('/'));
  t.equal(four.cell('a', 'b', 'c', 'd').labels, 'a/b/c/d');
  t.not(four.cell('a', 'b', 'c', 'd'), four.cell('a', 'b', 'c', 'e'));
});

t.test('flushCounts hands each cell its increments once and starts it again from 0', async (t) => {
  const cells = new TallyCells(1, ([v]) => v!);
  cells.cell('x').n += 3;
  cells.cell('y').n += 0;
  cells.cell('z').n += 2;
  const seen: Array<[string, number]> = [];
  flushCounts(cells, (l, n) => seen.push([l, n]));
  t.same(seen, [['x', 3], ['z', 2]], 'only cells with something to say, with their counts');
  seen.length = 0;
  flushCounts(cells, (l, n) => seen.push([l, n]));
  t.same(seen, [], 'nothing is handed over twice');
});

t.test('TallyHistogram reads exactly like a prom-client Histogram fed the same values', async (t) => {
  const bounds = [...DECISION_BUCKETS];
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.double({ min: 0, max: 0.05, noNaN: true }), fc.constantFrom(...bounds)), { maxLength: 200 }), async (xs) => {
      const ours = new TallyHistogram('h_seconds', 'help', bounds);
      const theirs = new Histogram({ name: 'h_seconds', help: 'help', buckets: bounds, registers: [] });
      for (const x of xs) {
        ours.observe(x);
        theirs.observe(x);
      }
      const a = (await ours.get()).values;
      const b = (await theirs.get()).values.map((v) => ({ value: v.value, labels: v.labels, metricName: (v as { metricName?: string }).metricName }));
      t.equal(a.length, b.length);
      for (let i = 0; i < a.length; i++) {
        if (a[i]!.metricName !== b[i]!.metricName || JSON.stringify(a[i]!.labels) !== JSON.stringify(b[i]!.labels)) return false;
        // Sums are added in the same order, so even the float sum is the same number.
        if (a[i]!.value !== b[i]!.value) return false;
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass('300 random sequences read the same');
});

t.test('TallyHistogram in a registry: the same exposition text as prom-client, and reset', async (t) => {
  const r1 = new Registry();
  const r2 = new Registry();
  const ours = new TallyHistogram('h_seconds', 'Some help.', [0.1, 1]);
  r1.registerMetric(ours as unknown as Metric);
  const theirs = new Histogram({ name: 'h_seconds', help: 'Some help.', buckets: [0.1, 1], registers: [r2] });
  for (const x of [0.05, 0.1, 0.5, 3]) {
    ours.observe(x);
    theirs.observe(x);
  }
  t.equal(await r1.metrics(), await r2.metrics(), 'byte for byte');
  t.match(await r1.metrics(), /h_seconds_bucket\{le="\+Inf"\} 4\n/);
  r1.resetMetrics();
  t.match(await r1.metrics(), /h_seconds_count 0/, 'reset starts from zero');
});

t.test('the tallied metrics of createMetrics read like prom-client counters after any sequence', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ hello: fc.constantFrom('sni', 'no_sni', 'ech'), open: fc.boolean(), action: fc.constantFrom('allow', 'block') }), { maxLength: 60 }),
      async (events) => {
        const m = createMetrics({ defaultMetrics: false, preinitialise: false });
        const ref = new Counter({ name: 'ref_total', help: 'x', labelNames: ['result'], registers: [] });
        let open = 0;
        let blocks = 0;
        for (const e of events) {
          m.clientHello.inc(e.hello as 'sni');
          ref.inc({ result: e.hello });
          if (e.open) {
            m.connectionsActive.inc('forward');
            open++;
          } else if (open > 0) {
            m.connectionsActive.dec('forward');
            open--;
          }
          m.requests.inc({ listener: 'tls', protocol: 'tls', action: e.action as 'allow', category: e.action === 'block' ? 'adult' : null });
          if (e.action === 'block') blocks++;
          // A scrape in the middle must not lose or repeat anything.
          if (events.indexOf(e) === 10) await m.text();
        }
        const text = await m.text();
        for (const v of (await ref.get()).values) {
          if (!text.includes(`safespot_client_hello_total{result="${v.labels.result}"} ${v.value}\n`)) return false;
        }
        if (events.some((e) => e.open) && !text.includes(`safespot_connections_active{listener="forward"} ${open}\n`)) return false;
        if (blocks > 0 && !text.includes(`safespot_requests_total{listener="tls",protocol="tls",action="block",category="adult"} ${blocks}\n`)) return false;
        return true;
      },
    ),
    { numRuns: 100 },
  );
  t.pass('100 random sequences with a scrape in the middle');
});
