/**
 * The venue variable of the main dashboard (docker/grafana/dashboards/safespot.json, issue 20): every
 * query filters by `venue=~"$venue"`, and a single appliance scraped directly, whose series carry no
 * venue label, still shows its data when the variable is on All (`.*`, the variable's allValue).
 * No Grafana runs here: each panel query is run, with the variables replaced as Grafana replaces
 * them, by a real Prometheus scraping a real `safespot serve` without a venue label. A venue that
 * is not there must give nothing (the filter is real).
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { CLI_DEMO_DIR, ROOT, serve, tempConfig } from '../helpers/appliance.js';
import { havePrometheus } from '../helpers/prometheus.js';
import { api, freePort, startProm, waitFor } from '../helpers/prom-process.js';

interface Target { expr?: string; refId?: string }
interface Panel { type: string; title: string; targets?: Target[]; panels?: Panel[] }

const dashboard = JSON.parse(readFileSync(join(ROOT, 'docker', 'grafana', 'dashboards', 'safespot.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ name: string; allValue?: string; definition?: string }> };
};
const panels = dashboard.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));

function substitute(expr: string, venue: string): string {
  return expr.replaceAll('$venue', venue).replaceAll('$instance', '.*').replaceAll('$__range', '1h').replaceAll('$__rate_interval', '1m');
}

t.test('every query of the main dashboard is filtered by the venue variable', async (t) => {
  const venue = dashboard.templating.list.find((v) => v.name === 'venue');
  t.equal(venue?.allValue, '.*', 'All is .*');
  const targets = panels.flatMap((p) => (p.targets ?? []).map((x) => ({ title: p.title, expr: x.expr ?? '' })));
  t.ok(targets.length >= 20, `${targets.length} queries`);
  for (const { title, expr } of targets) {
    // Each selector (`name{...}`) carries the venue matcher, not only the first of the query.
    const selectors = [...expr.matchAll(/[a-z_:]+\{([^}]*)\}/g)];
    t.ok(selectors.length > 0, `${title}: has a selector`);
    for (const s of selectors) t.match(s[1], /venue=~"\$venue"/, `${title}: ${s[0]}`);
  }
});

t.test('on All, a single appliance without a venue label shows its data; another venue shows none', async (t) => {
  if (!havePrometheus()) throw new Error('prometheus is not installed: run `bash test/setup-system.sh` as root (or `apt-get install -y prometheus`)');
  const { dir, config } = tempConfig(t, 'venue-dash', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
    'selftest: { interval: 1h, canaries: [{ category: adult, url: "http://blocked.test/canary" }] }',
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const proxy = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  t.teardown(() => proxy.close());

  const port = await freePort();
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s, scrape_timeout: 900ms }',
    'scrape_configs:',
    '  - job_name: safespot',
    '    static_configs:',
    // A venue's own Prometheus: no venue label anywhere.
    `      - targets: ["127.0.0.1:${app.admin}"]`,
    '',
  ].join('\n'));
  const prom = await startProm([`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`], port);
  t.teardown(() => prom.stop());
  const base = `http://127.0.0.1:${port}`;
  await waitFor('a first scrape', async () => (await api(base, 'safespot_build_info')).length === 1);
  // Blocks after the first scrape, so increase() over the range sees them.
  for (let i = 0; i < 3; i++) {
    const r = await request(`http://blocked.test/venue-dash-${i}`, { dispatcher: proxy });
    await r.body.dump();
    t.equal(r.statusCode, 403, 'blocked');
  }
  await waitFor('the blocks scraped', async () => {
    const r = await api(base, 'sum(safespot_requests_total{action="block", listener="forward"})');
    const c = await api(base, 'count_over_time(up[1m])');
    return Number(r[0]?.value?.[1] ?? 0) === 3 && Number(c[0]?.value?.[1] ?? 0) >= 4;
  });
  t.same(await api(base, 'count({venue!=""})'), [], 'no series has a venue label');

  for (const p of panels) {
    for (const target of p.targets ?? []) {
      const expr = target.expr ?? '';
      const what = `${p.title} / ${target.refId}`;
      // Counters that stay absent until their first event (as in city-dashboard.test.ts).
      const mayBeEmpty = /images_|upstream_errors|refresh_failures|limits_hit|client_hello|connections_active|listener="dns"|dns_|bypass_/.test(expr);
      const all = await api(base, substitute(expr, '.*'));
      if (!mayBeEmpty) t.ok(all.length > 0, `${what}: data on All`);
      const other = await api(base, substitute(expr, 'some-other-venue'));
      t.same(other, [], `${what}: nothing for a venue that is not there`);
    }
  }
  const blocks = panels.flatMap((p) => p.targets ?? []).find((x) => /sum\(increase\(safespot_requests_total\{[^}]*action="block"/.test(x.expr ?? ''));
  t.ok(blocks, 'the blocked-in-period query');
  const v = Number((await api(base, substitute(blocks!.expr!, '.*')))[0]?.value?.[1]);
  t.ok(v >= 3, `the three blocks counted on All (${v}; increase() extrapolates)`);
});
