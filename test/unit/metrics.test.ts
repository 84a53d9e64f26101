import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import t from 'tap';
import {
  ACTIONS,
  CLIENT_HELLO_RESULTS,
  combineObservers,
  createMetrics,
  DEFAULT_METRICS_EXPORTED,
  LISTENERS,
  type Metrics,
  metricsObserver,
  type Observer,
  PROTOCOLS,
} from '../../audit/metrics.js';

const docsPath = fileURLToPath(new URL('../../../docs/metrics.md', import.meta.url));

/** Series of one metric as {labels, value}. */
async function series(m: Metrics, name: string): Promise<Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const got = await metric.get();
  return got.values.map((v) => ({
    labels: v.labels as Record<string, string | number>,
    value: v.value,
    ...((v as { metricName?: string }).metricName ? { metricName: (v as { metricName?: string }).metricName } : {}),
  }));
}

async function value(m: Metrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const all = await series(m, name);
  const hit = all.find((s) => Object.keys(labels).length === Object.keys(s.labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hit?.value;
}

t.test('docs/metrics.md lists exactly the metrics in the registry', async (t) => {
  const documented = new Set<string>();
  for (const line of readFileSync(docsPath, 'utf8').split('\n')) {
    const m = /^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \|/.exec(line);
    if (m) documented.add(m[1]!);
  }
  const m = createMetrics({ categories: ['adult'], lists: ['demo'] });
  const registered = new Set(m.names());
  t.ok(registered.size > 20, 'the registry has our metrics and the chosen defaults');
  t.same([...registered].filter((n) => !documented.has(n)).sort(), [], 'every registered metric is documented');
  t.same([...documented].filter((n) => !registered.has(n)).sort(), [], 'every documented metric is registered');
});

t.test('the issue’s metric names are all there, with their labels', async (t) => {
  const m = createMetrics({ defaultMetrics: false });
  const expected: Record<string, string[]> = {
    safespot_requests_total: ['listener', 'protocol', 'action', 'category'],
    safespot_images_scanned_total: ['result'],
    safespot_images_blocked_total: ['category', 'match'],
    safespot_decision_duration_seconds: [],
    safespot_connections_active: ['listener'],
    safespot_client_hello_total: ['result'],
    safespot_upstream_errors_total: ['reason'],
    safespot_limits_hit_total: ['limit'],
    safespot_policy_entries: ['list'],
    safespot_policy_last_refresh_timestamp_seconds: ['list'],
    safespot_policy_refresh_failures_total: ['list', 'reason'],
    safespot_policy_info: ['version'],
    safespot_filtering_active: [],
    safespot_selftest_success: ['category'],
    safespot_selftest_last_run_timestamp_seconds: [],
    safespot_build_info: ['version', 'node'],
  };
  for (const [name, labels] of Object.entries(expected)) {
    const metric = m.registry.getSingleMetric(name) as unknown as { labelNames: string[] } | undefined;
    t.ok(metric, name);
    t.same([...(metric?.labelNames ?? [])].sort(), [...labels].sort(), `${name} labels`);
  }
  t.notOk(m.names().some((n) => n.startsWith('process_') || n.startsWith('nodejs_')), 'defaultMetrics: false exports no defaults');
});

t.test('no gauge of the chosen defaults ends in _total (promtool rejects those)', async (t) => {
  const m = createMetrics();
  for (const name of m.names()) {
    const type = (await m.registry.getSingleMetric(name)!.get()).type;
    if (name.endsWith('_total')) t.equal(type, 'counter', `${name} is a counter`);
  }
  t.notOk(m.names().includes('nodejs_active_handles_total'));
  t.ok(DEFAULT_METRICS_EXPORTED.every((n) => !/^nodejs_active_.*_total$/.test(n)));
});

t.test('label values outside the closed sets are clamped', async (t) => {
  const m = createMetrics({ defaultMetrics: false, categories: ['adult', 'csam'], lists: ['hotline'], preinitialise: false });
  const cases: Array<{ category: string | null; want: string }> = [
    { category: 'adult', want: 'adult' },
    { category: 'csam', want: 'csam' },
    { category: null, want: 'none' },
    { category: 'none', want: 'none' },
    { category: 'blocked.test', want: 'other' },
    { category: 'https://evil.test/x', want: 'other' },
    { category: 'ADULT', want: 'other' },
    { category: '', want: 'other' },
  ];
  for (const c of cases) m.requests.inc({ listener: 'forward', protocol: 'http', action: 'block', category: c.category });
  for (const want of ['adult', 'csam', 'none', 'other']) {
    const n = cases.filter((c) => c.want === want).length;
    t.equal(await value(m, 'safespot_requests_total', { listener: 'forward', protocol: 'http', action: 'block', category: want }), n, want);
  }
  // Values the type system forbids, as a bug or a cast would pass them.
  m.requests.inc({ listener: '10.0.0.1' as 'forward', protocol: 'gopher' as 'http', action: 'drop' as 'block', category: 'adult' });
  t.equal(await value(m, 'safespot_requests_total', { listener: 'other', protocol: 'other', action: 'other', category: 'adult' }), 1);
  m.clientHello.inc('blocked.test' as 'sni');
  t.equal(await value(m, 'safespot_client_hello_total', { result: 'other' }), 1);
  m.policyEntries.set('hotline', 12);
  m.policyEntries.set('deadbeefcafe', 99);
  t.equal(await value(m, 'safespot_policy_entries', { list: 'hotline' }), 12);
  t.equal(await value(m, 'safespot_policy_entries', { list: 'other' }), 99);
  m.imagesBlocked.inc({ category: 'x.test', match: 'crc32' as 'md5' });
  t.equal(await value(m, 'safespot_images_blocked_total', { category: 'other', match: 'other' }), 1);
  m.policyInfo.set('v1 with spaces');
  t.same(await series(m, 'safespot_policy_info'), [{ labels: { version: 'other' }, value: 1 }]);
  m.connectionsActive.inc('10.1.2.3');
  t.equal(await value(m, 'safespot_connections_active', { listener: 'other' }), 1);
});

t.test('whatever the input, every label value is from its closed set (property)', async (t) => {
  const allowed: Record<string, Set<string>> = {
    listener: new Set([...LISTENERS, 'admin', 'other']),
    protocol: new Set([...PROTOCOLS, 'other']),
    action: new Set([...ACTIONS, 'other']),
    category: new Set(['adult', 'none', 'other']),
    result: new Set([...CLIENT_HELLO_RESULTS, 'other']),
    list: new Set(['l1', 'other']),
  };
  const m = createMetrics({ defaultMetrics: false, categories: ['adult'], lists: ['l1'] });
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.string(), fc.option(fc.string()), (a, b, c, d) => {
      m.requests.inc({ listener: a as 'forward', protocol: b as 'http', action: c as 'block', category: d });
      m.clientHello.inc(a as 'sni');
      m.policyEntries.set(b, 1);
      m.connectionsActive.inc(c);
    }),
    { numRuns: 300 },
  );
  for (const name of ['safespot_requests_total', 'safespot_client_hello_total', 'safespot_policy_entries', 'safespot_connections_active']) {
    for (const s of await series(m, name)) {
      for (const [k, v] of Object.entries(s.labels)) t.ok(allowed[k]?.has(String(v)), `${name} ${k}=${String(v)} is allowed`);
    }
  }
});

t.test('pre-initialised series exist at 0 for known combinations', async (t) => {
  const m = createMetrics({ defaultMetrics: false, categories: ['adult', 'csam'], lists: ['hotline'], listeners: ['forward', 'tls'] });
  t.equal(await value(m, 'safespot_requests_total', { listener: 'forward', protocol: 'connect', action: 'block', category: 'csam' }), 0);
  t.equal(await value(m, 'safespot_requests_total', { listener: 'tls', protocol: 'tls', action: 'monitor', category: 'adult' }), 0);
  t.equal(await value(m, 'safespot_requests_total', { listener: 'forward', protocol: 'http', action: 'allow', category: 'none' }), 0);
  t.equal(await value(m, 'safespot_requests_total', { listener: 'http', protocol: 'http', action: 'allow', category: 'none' }), undefined, 'unconfigured listener not created');
  t.equal(await value(m, 'safespot_images_blocked_total', { category: 'csam', match: 'pdq' }), 0);
  t.equal(await value(m, 'safespot_policy_refresh_failures_total', { list: 'hotline', reason: 'signature' }), 0);
  for (const result of CLIENT_HELLO_RESULTS) t.equal(await value(m, 'safespot_client_hello_total', { result }), 0, result);
  t.equal(await value(m, 'safespot_filtering_active', {}), 0, 'filtering is not active until serve says so');
  const off = createMetrics({ defaultMetrics: false, preinitialise: false });
  t.same(await series(off, 'safespot_requests_total'), [], 'preinitialise: false creates nothing');
});

t.test('metricsObserver counts verdicts, durations and images; combineObservers isolates failures', async (t) => {
  const m = createMetrics({ defaultMetrics: false, categories: ['adult', 'csam'] });
  const thrower: Observer = { ...metricsObserver(createMetrics({ defaultMetrics: false })), verdict: () => { throw new Error('boom'); } };
  const o = combineObservers(thrower, metricsObserver(m));
  const table = [
    { action: 'allow', category: null, n: 5 },
    { action: 'block', category: 'adult', n: 3 },
    { action: 'block', category: 'csam', n: 2 },
    { action: 'monitor', category: 'adult', n: 1 },
  ] as const;
  for (const row of table) {
    for (let i = 0; i < row.n; i++) {
      o.verdict({ listener: 'forward', protocol: 'http', action: row.action, category: row.category, list: row.category && 'l', durationSeconds: 2e-6, url: 'http://blocked.test/', client: '10.0.0.9' });
    }
  }
  for (const row of table) {
    t.equal(await value(m, 'safespot_requests_total', { listener: 'forward', protocol: 'http', action: row.action, category: row.category ?? 'none' }), row.n);
  }
  const hist = await series(m, 'safespot_decision_duration_seconds');
  t.equal(hist.find((s) => s.metricName === 'safespot_decision_duration_seconds_count')?.value, 11, 'the histogram counted 11 decisions');
  t.equal(hist.find((s) => s.metricName === 'safespot_decision_duration_seconds_bucket' && s.labels.le === 0.0000025)?.value, 11, 'all in the 2.5 µs bucket');
  t.equal(hist.find((s) => s.metricName === 'safespot_decision_duration_seconds_bucket' && s.labels.le === 0.000001)?.value, 0, 'none in the 1 µs bucket');
  o.imageBlocked({ category: 'csam', match: 'pdq', list: 'img', action: 'block' });
  o.imageBlocked({ category: 'adult', match: 'md5', list: 'img', action: 'monitor' });
  t.equal(await value(m, 'safespot_images_blocked_total', { category: 'csam', match: 'pdq' }), 1);
  t.equal(await value(m, 'safespot_images_blocked_total', { category: 'adult', match: 'md5' }), 0, 'a monitor match is not a block');
  t.equal(await value(m, 'safespot_images_monitored_total', { category: 'adult', match: 'md5' }), 1);
  o.connectionOpened('forward');
  o.connectionOpened('forward');
  o.connectionClosed('forward');
  t.equal(await value(m, 'safespot_connections_active', { listener: 'forward' }), 1);
  const text = await m.text();
  t.notMatch(text, /blocked\.test|10\.0\.0\.9/, 'no URL or client address in the exposition');
});
