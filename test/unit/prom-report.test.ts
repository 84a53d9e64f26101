/**
 * The pure parts of the city report (audit/prom-report.ts): counter increases across resets, gaps in
 * `up`, the API answer parser (table, truncated and fuzzed input), exact selectors, windows.
 * The whole report against real Prometheus processes: test/integration/city-report.test.ts.
 */
import t from 'tap';
import fc from 'fast-check';
import { SafespotError } from '../../policy/errors.js';
import { addToFigures, counterIncrease, findGaps, parseApiAnswer, parseApiText, seriesSelector, windowsOf, type Figures, type Sample } from '../../audit/prom-report.js';

/** A counter's life: per scrape interval, blocks counted, and whether the process restarted first. */
const life = fc.array(fc.record({ restart: fc.boolean(), blocks: fc.nat(20) }), { maxLength: 60 });

function scrape(steps: Array<{ restart: boolean; blocks: number }>): { samples: Sample[]; starts: Map<number, number>; truth: number } {
  let value = 0;
  let start = 1;
  let truth = 0;
  const samples: Sample[] = [];
  const starts = new Map<number, number>();
  steps.forEach((s, i) => {
    if (s.restart) {
      value = 0;
      start++;
    }
    value += s.blocks;
    truth += s.blocks;
    const ts = 1000 * (i + 1);
    samples.push([ts, value]);
    starts.set(ts, start);
  });
  return { samples, starts, truth };
}

t.test('counterIncrease: with the process start time, every restart is seen and the increase is exact', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(life, (steps) => {
        const { samples, starts, truth } = scrape(steps);
        const r = counterIncrease(null, samples, (ts) => starts.get(ts));
        return r.increase === truth && r.resets.length === steps.slice(1).filter((s) => s.restart).length;
      }),
    ),
  );
});

t.test('counterIncrease: from values alone, a restart is seen when the counter drops; never more than the truth', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(life, (steps) => {
        const { samples, truth } = scrape(steps);
        return counterIncrease(null, samples).increase <= truth;
      }),
    ),
  );
  const cases: Array<[string, number | null, Sample[], number, number]> = [
    ['a new series counts from 0', null, [[1, 3], [2, 5]], 5, 0],
    ['from a baseline', 10, [[1, 12], [2, 15]], 5, 0],
    ['a drop is a reset: the new value counts whole', 10, [[1, 12], [2, 2], [3, 4]], 2 + 2 + 2, 1],
    ['a drop to 0', 7, [[1, 0], [2, 0]], 0, 1],
    ['nothing', 4, [], 0, 0],
  ];
  for (const [name, prev, samples, inc, resets] of cases) {
    const r = counterIncrease(prev, samples);
    t.equal(r.increase, inc, name);
    t.equal(r.resets.length, resets, `${name}: resets`);
  }
  const st = new Map([[1, 100], [2, 200]]);
  t.equal(counterIncrease(5, [[1, 6], [2, 9]], (ts) => st.get(ts), 100).increase, 1 + 9, 'a new start time with a higher value is still a reset');
});

t.test('findGaps: missing stretches and down stretches, clipped to the window', async (t) => {
  const every = (a: number, b: number, step = 1000, v = 1): Sample[] => {
    const out: Sample[] = [];
    for (let ts = a; ts < b; ts += step) out.push([ts, v]);
    return out;
  };
  t.same(findGaps(every(0, 60_000), 1000, 0, 60_000), [], 'regular samples: no gap');
  t.same(findGaps([...every(0, 10_000), ...every(20_000, 60_000)], 1000, 0, 60_000), [{ from: 9000, to: 20_000, kind: 'missing' }], 'a hole');
  t.same(findGaps([...every(0, 10_000), ...every(10_000, 15_000, 1000, 0), ...every(15_000, 60_000)], 1000, 0, 60_000), [{ from: 10_000, to: 15_000, kind: 'down' }], 'up = 0');
  t.same(findGaps(every(5000, 50_000), 1000, 0, 60_000), [{ from: 0, to: 5000, kind: 'missing' }, { from: 49_000, to: 60_000, kind: 'missing' }], 'head and tail');
  t.same(findGaps(every(-3000, 60_000), 1000, 0, 60_000), [], 'samples before the window are context');
  t.same(findGaps([], 1000, 0, 60_000), [{ from: 0, to: 60_000, kind: 'missing' }], 'no sample at all');
  t.same(findGaps([[0, 1], [1400, 1], [2800, 1]], 1000, 0, 3000), [], 'a jitter under 1.5 intervals is not a gap');
  t.same(findGaps([...every(0, 30_000), ...every(30_000, 60_000, 1000, 0)], 1000, 0, 60_000), [{ from: 30_000, to: 60_000, kind: 'down' }], 'down to the end');
});

t.test('parseApiAnswer: the documented shapes, and a clear error for anything else', async (t) => {
  t.same(parseApiAnswer({ status: 'success', data: { resultType: 'vector', result: [{ metric: { a: 'b' }, value: [1.5, '3'] }] } }, 'q'), [
    { metric: { a: 'b' }, values: [[1500, 3]] },
  ]);
  t.same(parseApiAnswer({ status: 'success', data: { resultType: 'matrix', result: [{ metric: {}, values: [[1, '1'], [2.001, '2']] }] } }, 'q'), [
    { metric: {}, values: [[1000, 1], [2001, 2]] },
  ]);
  const bad: unknown[] = [
    null,
    'x',
    { status: 'error', error: 'bad_data' },
    { status: 'success' },
    { status: 'success', data: { resultType: 'vector', result: {} } },
    { status: 'success', data: { resultType: 'vector', result: [{ metric: { a: 1 }, value: [1, '1'] }] } },
    { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 1] }] } },
    { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 'NaN'] }] } },
    { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, '+Inf'] }] } },
    { status: 'success', data: { resultType: 'matrix', result: [{ metric: {} }] } },
    { status: 'success', data: { resultType: 'scalar', result: [{ metric: {}, value: [1, '1'] }] } },
  ];
  for (const b of bad) t.throws(() => parseApiAnswer(b, 'q'), { code: 'ERR_PROMETHEUS' }, JSON.stringify(b));
  // Truncated answers, byte by byte: a real answer cut anywhere is refused, never half-read.
  const text = JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [{ metric: { venue: 'a' }, values: [[1, '1'], [2, '2']] }] } });
  t.equal(parseApiText(text, 200, 'q').length, 1, 'the whole answer parses');
  let refused = 0;
  for (let i = 0; i < text.length; i++) {
    try {
      parseApiText(text.slice(0, i), 200, 'q');
    } catch (err) {
      if (err instanceof SafespotError && err.code === 'ERR_PROMETHEUS') refused++;
    }
  }
  t.equal(refused, text.length, 'every truncation of it is refused with ERR_PROMETHEUS');
  t.throws(() => parseApiText('<html>502 Bad Gateway</html>', 502, 'q'), { code: 'ERR_PROMETHEUS', message: /HTTP 502 and no JSON/ }, 'a proxy\'s error page');
  t.doesNotThrow(() => fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      try {
        parseApiAnswer(v, 'q');
        return true;
      } catch (err) {
        return err instanceof SafespotError && err.code === 'ERR_PROMETHEUS';
      }
    }),
    { numRuns: 2000 },
  ), 'fuzzed JSON: parsed or ERR_PROMETHEUS, nothing else');
});

t.test('seriesSelector: label values from the server are quoted back exactly', async (t) => {
  t.equal(seriesSelector({ __name__: 'up', venue: 'a', instance: 'x' }), 'up{instance="x",venue="a"}');
  const odd = 'a"b\\c\nd}';
  const sel = seriesSelector({ __name__: 'm', l: odd });
  t.equal(JSON.parse(sel.slice('m{l='.length, -1)), odd, 'quotes, backslashes, newlines and braces survive');
});

t.test('windowsOf: contiguous, cover [from, end), the last one shorter', async (t) => {
  t.same(windowsOf(0, 7000, 3000), [{ s: 0, e: 3000 }, { s: 3000, e: 6000 }, { s: 6000, e: 7000 }]);
  t.same(windowsOf(5, 5, 3000), []);
  t.doesNotThrow(() => fc.assert(
    fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 1e6 }), fc.integer({ min: 1, max: 1e5 }), (from, len, size) => {
      const w = windowsOf(from, from + len, size);
      return w[0]!.s === from && w.at(-1)!.e === from + len && w.every((x, i) => i === 0 || x.s === w[i - 1]!.e) && w.every((x) => x.e - x.s <= size && x.e > x.s);
    }),
  ));
});

t.test('addToFigures: the journal report\'s definitions (self-tests out, block and monitor apart)', async (t) => {
  const f: Figures = {
    blockedRequests: { total: 0, byCategory: {} },
    monitoredRequests: { total: 0, byCategory: {} },
    blockedImages: { total: 0, byCategory: {}, byMatch: {} },
    monitoredImages: { total: 0, byCategory: {} },
  };
  addToFigures(f, { __name__: 'safespot_requests_total', listener: 'forward', action: 'block', category: 'adult' }, 3);
  addToFigures(f, { __name__: 'safespot_requests_total', listener: 'selftest', action: 'block', category: 'adult' }, 100);
  addToFigures(f, { __name__: 'safespot_requests_total', listener: 'tls', action: 'monitor', category: 'malware' }, 2);
  addToFigures(f, { __name__: 'safespot_requests_total', listener: 'tls', action: 'allow', category: 'none' }, 50);
  addToFigures(f, { __name__: 'safespot_images_blocked_total', category: 'csam', match: 'pdq' }, 4);
  addToFigures(f, { __name__: 'safespot_images_monitored_total', category: 'csam', match: 'md5' }, 1);
  t.same(f, {
    blockedRequests: { total: 3, byCategory: { adult: 3 } },
    monitoredRequests: { total: 2, byCategory: { malware: 2 } },
    blockedImages: { total: 4, byCategory: { csam: 4 }, byMatch: { pdq: 4 } },
    monitoredImages: { total: 1, byCategory: { csam: 1 } },
  });
});
