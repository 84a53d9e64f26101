/**
 * The pieces of `workers` > 1 that need no processes: how /metrics merges the primary's registry
 * with the workers' (each metric's aggregation, counters kept across a worker's death), and the
 * worker's journal forwarder (batches, clock, bounded queue).
 */
import t from 'tap';
import { createMetrics, type Metrics } from '../../audit/metrics.js';
import type { JournalEvent } from '../../audit/journal.js';
import { WorkerMetrics, type MetricJson } from '../../appliance/serve/cluster-metrics.js';
import { journalForwarder, type FromWorker } from '../../appliance/serve/worker-ipc.js';

const make = (): Metrics => createMetrics({ defaultMetrics: false, categories: ['adult', 'csam'], lists: ['a', 'c'], listeners: ['forward'] });
const json = async (m: Metrics): Promise<MetricJson[]> => (await m.registry.getMetricsAsJSON()) as unknown as MetricJson[];

/** The merged value of one series (labels matched exactly), or undefined. */
async function value(w: WorkerMetrics, own: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const merged = await w.merge(own.registry);
  const metric = merged.getSingleMetric(name);
  if (!metric) return undefined;
  const got = await metric.get();
  const hit = got.values.find(
    (v) => !(v as { metricName?: string }).metricName && Object.keys(labels).length === Object.keys(v.labels).length && Object.entries(labels).every(([k, x]) => v.labels[k] === x),
  );
  return hit?.value;
}

const adultBlock = { listener: 'forward', protocol: 'http', action: 'block', category: 'adult' } as const;

/** The primary (policy, self-test) and two workers (traffic), as serve/cluster.ts has them. */
async function cluster() {
  const primary = make();
  primary.filteringActive.set(true);
  primary.policyEntries.set('a', 5);
  primary.policyInfo.set('v1');
  primary.selftestSuccess.set('csam', true);
  primary.selftestLastRun.set(1000);
  const w1 = make();
  const w2 = make();
  w1.filteringActive.set(true);
  w1.requests.inc(adultBlock, 3);
  w1.connectionsActive.set('forward', 2);
  w1.decisionDuration.observe(1e-5);
  w2.requests.inc(adultBlock, 4);
  w2.connectionsActive.set('forward', 1);
  w2.decisionDuration.observe(1e-5);
  const store = new WorkerMetrics();
  store.update(1, await json(w1));
  store.update(2, await json(w2));
  return { primary, w1, w2, store };
}

t.test('each metric is merged by its own rule', async (t) => {
  const { primary, store } = await cluster();
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['safespot_requests_total', adultBlock, 7, 'counters sum over the workers'],
    ['safespot_connections_active', { listener: 'forward' }, 3, 'open connections sum'],
    ['safespot_filtering_active', {}, 0, 'filtering active is the minimum: one worker without a policy makes it 0'],
    ['safespot_policy_entries', { list: 'a' }, 5, 'list entries are not summed'],
    ['safespot_policy_info', { version: 'v1' }, 1, 'policy info stays 1'],
    ['safespot_selftest_success', { category: 'csam' }, 1, 'self-test success is not summed'],
    ['safespot_selftest_last_run_timestamp_seconds', {}, 1000, 'last self-test: the primary’s time, not 0 from a worker nor a sum'],
    ['safespot_worker_restarts_total', {}, 0, 'restarts: the primary’s counter'],
  ];
  for (const [name, labels, want, why] of cases) t.equal(await value(store, primary, name, labels), want, why);
  const build = (await (await store.merge(primary.registry)).getSingleMetric('safespot_build_info')!.get()).values;
  t.equal(build.length, 1, 'one build_info series');
  t.equal(build[0]?.value, 1, 'build_info stays 1');
  const text = await (await store.merge(primary.registry)).metrics();
  t.match(text, /safespot_decision_duration_seconds_count 2\n/, 'histograms sum (one observation per worker)');
});

t.test('all workers with a policy: filtering active is 1', async (t) => {
  const { primary, w2, store } = await cluster();
  w2.filteringActive.set(true);
  store.update(2, await json(w2));
  t.equal(await value(store, primary, 'safespot_filtering_active'), 1);
});

t.test('a dead worker’s counters stay, its gauges go; a fresh registry replaces the last', async (t) => {
  const { primary, w2, store } = await cluster();
  await store.retire(1);
  t.same(store.ids(), [2], 'only the living worker is asked');
  t.equal(await value(store, primary, 'safespot_requests_total', adultBlock), 7, 'the merged counter did not go down');
  t.equal(await value(store, primary, 'safespot_connections_active', { listener: 'forward' }), 1, 'its open connections died with it');
  t.equal(await value(store, primary, 'safespot_filtering_active'), 0, 'its gauges are gone (w2 has no policy: still 0)');
  // The replacement starts from zero and counts on; a second death adds up as well.
  const w3 = make();
  w3.requests.inc(adultBlock, 2);
  store.update(3, await json(w3));
  t.equal(await value(store, primary, 'safespot_requests_total', adultBlock), 9, 'retired + living');
  w2.requests.inc(adultBlock, 1);
  store.update(2, await json(w2));
  t.equal(await value(store, primary, 'safespot_requests_total', adultBlock), 10, 'a newer registry replaces the older one (no double count)');
  await store.retire(2);
  store.update(2, await json(w2));
  t.equal(await value(store, primary, 'safespot_requests_total', adultBlock), 10, 'a late answer of a retired worker is not counted again');
  await store.retire(3);
  t.equal(await value(store, primary, 'safespot_requests_total', adultBlock), 10, 'every dead worker is kept, once');
});

t.test('journal forwarder: one batch per flush, the worker’s clock, a bounded queue', async (t) => {
  const sent: FromWorker[] = [];
  let clock = 5000;
  const f = journalForwarder((m, done) => (sent.push(m), done()), { intervalMs: 60_000, maxQueue: 3, now: () => clock });
  const e = (category: string, time?: number): JournalEvent => ({ kind: 'verdict', action: 'block', category, ...(time === undefined ? {} : { time }) });
  f.record(e('adult'));
  clock = 6000;
  f.record(e('csam', 42));
  await f.flush();
  t.equal(sent.length, 1, 'one message');
  t.same(sent[0], { type: 'safespot:journal', events: [{ ...e('adult'), time: 5000 }, { ...e('csam'), time: 42 }], dropped: 0 }, 'stamped when recorded; a given time is kept');
  await f.flush();
  t.equal(sent.length, 1, 'nothing queued: nothing sent');
  for (let i = 0; i < 5; i++) f.record(e('adult'));
  t.equal(f.dropped(), 2, 'past the bound, events are counted as dropped');
  await f.flush();
  t.equal((sent[1] as { events: unknown[] }).events.length, 3, 'the bounded batch');
  t.equal((sent[1] as { dropped: number }).dropped, 2, 'drops are reported with the batch');
  f.record(e('adult'));
  await f.flush();
  t.equal((sent[2] as { dropped: number }).dropped, 0, 'and reported once');
  f.close();
  f.record(e('adult'));
  await f.flush();
  t.equal(sent.length, 3, 'nothing after close');
});

t.test('journal forwarder sends on its own within the interval', async (t) => {
  const sent: FromWorker[] = [];
  const f = journalForwarder((m, done) => (sent.push(m), done()), { intervalMs: 10 });
  t.teardown(() => f.close());
  f.record({ kind: 'image', action: 'block', category: 'csam', match: 'pdq' });
  await new Promise<void>((resolve) => {
    const poll = (): void => (sent.length > 0 ? resolve() : void setTimeout(poll, 5));
    poll();
  });
  t.equal((sent[0] as { events: unknown[] }).events.length, 1, 'the timer sent the batch');
});
