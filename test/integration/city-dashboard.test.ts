/**
 * The city dashboard (issue 20, point 4) against what a real appliance really exports. No Grafana
 * server runs here, so what is checked is what Grafana would send: every panel target's PromQL, with
 * the dashboard variables replaced as Grafana replaces them, run by a real Prometheus (Debian
 * package) that scrapes a real `safespot serve` with a `venue` label, as the city's store holds it.
 *
 * - docker/grafana/dashboards/safespot-city.json is exactly the output of the typed generator
 *   (docker/grafana/city-dashboard.ts, @grafana/grafana-foundation-sdk): no hand edits drift from it.
 * - Every metric a panel names is in the live /metrics scrape (a misspelt name is caught: shown).
 * - Every query is valid PromQL, returns data for the venue, and the venue counts are right.
 * - The same for the venue dashboard (safespot.json): its `venue` and `instance` variables, its panels.
 * - promtool checks and unit-tests the city alert rules (docker/prometheus/city-alerts*.yml).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { CLI_DEMO_DIR, ROOT, serve, tempConfig } from '../helpers/appliance.js';
import { havePrometheus } from '../helpers/prometheus.js';
import { api, freePort, startProm, waitFor } from '../helpers/prom-process.js';
import { cityDashboard } from '../../docker/grafana/city-dashboard.js';

const TOKEN = 'city-dash-token-0123456789abcdef';
const VENUE = 'tirana-artificial-lake';
const DASHBOARDS = join(ROOT, 'docker', 'grafana', 'dashboards');

interface Target { expr?: string; refId?: string }
interface Panel { type: string; title: string; targets?: Target[]; panels?: Panel[] }

function panelsOf(d: { panels?: Panel[] }): Panel[] {
  return (d.panels ?? []).flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

/** Grafana's substitution for one selected venue (and every appliance), and fixed ranges. */
function substitute(expr: string): string {
  return expr
    .replaceAll('$venue', VENUE)
    .replaceAll('$instance', '.*')
    .replaceAll('$__range', '1h')
    .replaceAll('$__rate_interval', '1m');
}

/** Metric names a query reads (identifiers followed by `{` or standing alone before `[`/`)`), less PromQL's own words. */
const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset',
  'sum', 'min', 'max', 'avg', 'count', 'count_values', 'quantile', 'stddev', 'stdvar', 'topk', 'bottomk', 'time', 'vector', 'increase',
  'rate', 'irate', 'histogram_quantile', 'max_over_time', 'min_over_time', 'avg_over_time', 'count_over_time', 'label_values', 'le',
  'timestamp', 'absent', 'absent_over_time', 'clamp_min', 'clamp_max', 'delta', 'deriv', 'changes', 'resets', 'sort', 'sort_desc']);
export function metricNames(expr: string): string[] {
  const stripped = expr.replace(/\{[^}]*\}/g, '{}').replace(/"[^"]*"/g, '""').replace(/\[[^\]]*\]/g, '[]');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    const name = m[1]!;
    if (PROMQL_WORDS.has(name) || /^\d/.test(name)) continue;
    // Label names inside by (...) were kept: drop identifiers inside parentheses after by/on/without.
    names.add(name);
  }
  for (const m of stripped.matchAll(/\b(?:by|on|without|ignoring)\s*\(([^)]*)\)/g)) for (const l of m[1]!.split(',')) names.delete(l.trim());
  return [...names];
}

function missingFromScrape(expr: string, scraped: Set<string>): string[] {
  return metricNames(expr).filter((n) => !scraped.has(n) && n !== 'up');
}

t.test('the committed city dashboard is the typed generator\'s output', async (t) => {
  const committed = readFileSync(join(DASHBOARDS, 'safespot-city.json'), 'utf8');
  const built = `${JSON.stringify(cityDashboard(), null, 2)}\n`;
  t.equal(committed, built, 'safespot-city.json == node dist/docker/grafana/city-dashboard.js');
  const d = JSON.parse(built);
  t.equal(d.uid, 'safespot-city');
  const venue = d.templating.list.find((v: { name: string }) => v.name === 'venue');
  t.match(venue, { type: 'query', multi: true, includeAll: true, allValue: '.*' }, 'a multi-select venue variable with All');
  for (const p of panelsOf(d)) {
    t.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    for (const q of p.targets ?? []) t.match(q.expr ?? '', /venue=~"\$venue"/, `${p.title} / ${q.refId}: filtered by the venue variable`);
  }
});

t.test('the metric-name check can fail', async (t) => {
  const scraped = new Set(['safespot_filtering_active']);
  t.same(missingFromScrape('min by (venue) (safespot_filtering_actve{venue=~"x"}) == 0', scraped), ['safespot_filtering_actve']);
  t.same(missingFromScrape('min by (venue, instance) (safespot_filtering_active{venue=~"x"})', scraped), []);
});

t.test('every panel query of both dashboards against a live scrape of a real appliance', async (t) => {
  if (!havePrometheus()) throw new Error('prometheus is not installed: run `bash test/setup-system.sh` as root (or `apt-get install -y prometheus`)');
  const { dir, config } = tempConfig(t, 'city-dash', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
    'selftest: { interval: 1h, canaries: [{ category: adult, url: "http://blocked.test/canary" }] }',
  ]);
  writeFileSync(join(dir, 'token'), TOKEN);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const proxy = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  t.teardown(() => proxy.close());
  for (let i = 0; i < 4; i++) {
    const r = await request(`http://blocked.test/dash-${i}`, { dispatcher: proxy });
    await r.body.dump();
    t.equal(r.statusCode, 403, 'blocked');
  }
  const scrapeText = await (await request(`http://127.0.0.1:${app.admin}/metrics`)).body.text();
  const scraped = new Set([...scrapeText.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) =>
    m[2] === 'histogram' ? [m[1]!, `${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!]));
  t.ok(scraped.has('safespot_requests_total'), 'the live scrape holds the request counter');

  const port = await freePort();
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s, scrape_timeout: 900ms }',
    'scrape_configs:',
    '  - job_name: safespot',
    '    static_configs:',
    `      - targets: ["127.0.0.1:${app.admin}"]`,
    // As the city's store holds it: the agent's external label, the appliance's name as instance.
    `        labels: { venue: ${VENUE}, instance: appliance-1 }`,
    '',
  ].join('\n'));
  const prom = await startProm([`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`], port);
  t.teardown(() => prom.stop());
  const base = `http://127.0.0.1:${port}`;
  await waitFor('two scrapes with the blocks', async () => {
    const r = await api(base, `sum(safespot_requests_total{venue="${VENUE}", action="block", listener="forward"})`);
    const c = await api(base, `count_over_time(up{venue="${VENUE}"}[1m])`);
    return r.length === 1 && Number(r[0]!.value![1]) === 4 && Number(c[0]?.value?.[1] ?? 0) >= 3;
  });
  const values = (await (await fetch(`${base}/api/v1/label/venue/values?match[]=safespot_build_info`)).json()) as { data: string[] };
  t.same(values.data, [VENUE], 'the venue variable\'s query lists the venue');

  const dashboards = [
    { file: 'safespot-city.json', d: JSON.parse(readFileSync(join(DASHBOARDS, 'safespot-city.json'), 'utf8')) },
    { file: 'safespot.json', d: JSON.parse(readFileSync(join(DASHBOARDS, 'safespot.json'), 'utf8')) },
  ];
  for (const { file, d } of dashboards) {
    t.test(file, async (t) => {
      for (const p of panelsOf(d)) {
        for (const target of p.targets ?? []) {
          const expr = target.expr ?? '';
          const what = `${p.title} / ${target.refId}`;
          t.same(missingFromScrape(expr, scraped), [], `${what}: every metric it reads is exported`);
          const result = await api(base, substitute(expr)).catch((err: Error) => err);
          if (result instanceof Error) {
            t.fail(`${what}: ${result.message}`);
            continue;
          }
          // Panels that count problems answer 0 by `or vector(0)`; every other query has data now.
          // The image and upstream-error panels read counters that stay absent until their first event.
          const mayBeEmpty = /images_|upstream_errors|refresh_failures|limits_hit|client_hello|connections_active|listener="dns"|dns_|bypass_/.test(expr);
          if (!mayBeEmpty) t.ok(result.length > 0, `${what}: returns data for the venue`);
          for (const s of result) if (s.metric.venue !== undefined) t.equal(s.metric.venue, VENUE, `${what}: only the selected venue`);
        }
      }
    });
  }

  const one = async (expr: string) => Number((await api(base, substitute(expr)))[0]?.value?.[1]);
  const q = (await import('../../docker/grafana/city-dashboard.js')).QUERIES;
  t.equal(await one(q.venuesReporting), 1, 'one venue reporting');
  t.equal(await one(q.venuesInactive), 0, 'none with filtering inactive');
  t.equal(await one(q.venuesSelftestFailing), 0, 'none with a failing self-test');
  t.equal(await one(q.venuesSilent), 0, 'none silent');
  // The first four blocks came before the first scrape (increase() cannot see them); two more now.
  for (let i = 0; i < 2; i++) await (await request(`http://blocked.test/late-${i}`, { dispatcher: proxy })).body.dump();
  const blocked = await waitFor('the late blocks in the period figure', async () => {
    const v = await one(q.blockedInPeriod);
    return v >= 2 ? v : undefined;
  }, 30_000);
  t.ok(blocked >= 2 && blocked < 4, `the two blocks after the first scrape, self-test not counted (${blocked}; increase() extrapolates)`);
});

t.test('promtool: the city alert rules check and pass their unit tests', async (t) => {
  const dir = join(ROOT, 'docker', 'prometheus');
  const check = spawnSync('promtool', ['check', 'rules', 'city-alerts.yml'], { cwd: dir, encoding: 'utf8' });
  t.equal(check.status, 0, `promtool check rules: ${check.stdout}${check.stderr}`);
  const unit = spawnSync('promtool', ['test', 'rules', 'city-alerts.test.yml'], { cwd: dir, encoding: 'utf8' });
  t.equal(unit.status, 0, `promtool test rules: ${unit.stdout}${unit.stderr}`);
});
