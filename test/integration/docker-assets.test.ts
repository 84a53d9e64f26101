/**
 * The shipped docker/ assets hold together: the compose file mounts files that exist; the Prometheus
 * config, the alert rules (with their promtool unit tests) and the Grafana dashboard use only metric
 * names documented in docs/metrics.md, every dashboard query honours the appliance selector; the
 * import form matches the provisioned dashboard; the container config validates; the Dockerfile
 * keeps its promises (non-root, volume, health check, labels, ports); the router scripts parse.
 *
 * promtool (Debian package `prometheus`, installed by test/setup-system.sh) checks the rules and the
 * PromQL of every dashboard query; no sockets are opened.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { loadConfigFile, validateConfig } from '../../appliance/config.js';
import { pickCanary, planProbes, probeHost } from '../../appliance/commands/healthcheck.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const DOCKER = join(ROOT, 'docker');
const read = (...p: string[]): string => readFileSync(join(ROOT, ...p), 'utf8');
const yamlFile = (...p: string[]): any => parseYaml(read(...p));

// ------------------------------------------------------------------------------------------------
// PromQL helpers (pure)
// ------------------------------------------------------------------------------------------------

/** Metric names documented in docs/metrics.md (first column of its tables). */
function documentedMetrics(): Set<string> {
  const path = join(ROOT, 'docs', 'metrics.md');
  if (!existsSync(path)) throw new Error('docs/metrics.md does not exist: the dashboard and alerts are checked against it');
  const names = new Set<string>();
  for (const m of readFileSync(path, 'utf8').matchAll(/^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|/gm)) names.add(m[1]!);
  return names;
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** Metric names an expression reads (functions, keywords, labels, strings and durations left out). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names: string[] = [];
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, word, call] = m;
    if (call || PROMQL_WORDS.has(word!.toLowerCase()) || word!.startsWith('$')) continue;
    const before = stripped[(m.index ?? 0) - 1];
    if (before === '$' || (before !== undefined && /[0-9.]/.test(before))) continue; // $var, 5m, 1e-6
    names.push(word!);
  }
  return names;
}

/** Every selector `name{…}` or bare `name` in an expression, with its matchers ('' when bare). */
export function selectors(expr: string): { name: string; matchers: string }[] {
  const out: { name: string; matchers: string }[] = [];
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, (s) => s.replace(/[{}]/g, '_'));
  for (const name of new Set(metricNames(expr))) {
    const re = new RegExp(`(?<![A-Za-z0-9_:])${name}(?![A-Za-z0-9_:])\\s*(\\{[^}]*\\})?`, 'g');
    for (const m of noStrings.matchAll(re)) {
      const start = m.index ?? 0;
      const end = start + m[0].length;
      out.push({ name, matchers: expr.slice(start + name.length, end).trim() });
    }
  }
  return out;
}

function isDocumented(name: string, documented: Set<string>): boolean {
  if (documented.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && documented.has(base);
}

t.test('PromQL helpers find metric names and their selectors', async (t) => {
  const cases: [string, string[]][] = [
    ['up{job="safespot"} == 0', ['up']],
    ['sum by (category) (increase(safespot_requests_total{instance=~"$instance", action="block"}[$__rate_interval]))', ['safespot_requests_total']],
    ['histogram_quantile(0.99, sum by (le) (rate(safespot_decision_duration_seconds_bucket{a="b"}[5m])))', ['safespot_decision_duration_seconds_bucket']],
    ['(time() - safespot_policy_last_refresh_timestamp_seconds) > 12 * 3600', ['safespot_policy_last_refresh_timestamp_seconds']],
    ['a_total and on (instance, job) b == 1', ['a_total', 'b']],
    ['x{l="{not a metric}"} offset 5m', ['x']],
  ];
  for (const [expr, names] of cases) t.same(metricNames(expr), names, expr);
  t.same(selectors('sum(a{instance=~"$instance"}) / b'), [
    { name: 'a', matchers: '{instance=~"$instance"}' },
    { name: 'b', matchers: '' },
  ]);
  t.ok(isDocumented('m_bucket', new Set(['m'])), 'histogram series of a documented histogram');
  t.notOk(isDocumented('m_other', new Set(['m'])), 'unknown suffix is not documented');
});

// ------------------------------------------------------------------------------------------------
// promtool
// ------------------------------------------------------------------------------------------------

function promtool(args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool could not run (${r.error.message}): apt-get install -y prometheus (test/setup-system.sh installs it)`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

t.test('alert rules: promtool check rules and promtool test rules pass', async (t) => {
  const dir = join(DOCKER, 'prometheus');
  const check = promtool(['check', 'rules', 'alerts.yml'], dir);
  t.equal(check.code, 0, `promtool check rules:\n${check.out}`);
  const test = promtool(['test', 'rules', 'alerts.test.yml'], dir);
  t.equal(test.code, 0, `promtool test rules:\n${test.out}`);
});

t.test('alert rules: the alerts the appliance needs, documented metric names, severity and summary', async (t) => {
  const documented = documentedMetrics();
  const doc = yamlFile('docker', 'prometheus', 'alerts.yml');
  const rules: any[] = doc.groups.flatMap((g: any) => g.rules);
  const names = rules.map((r) => r.alert);
  for (const needed of ['SafespotFilteringInactive', 'SafespotListStale', 'SafespotSelftestFailing', 'SafespotListRefreshFailing', 'SafespotNoTraffic']) {
    t.ok(names.includes(needed), `alert ${needed} exists`);
  }
  const tests = read('docker', 'prometheus', 'alerts.test.yml');
  for (const r of rules) {
    t.match(r.labels?.severity, /^(critical|warning)$/, `${r.alert} has a severity`);
    t.ok(r.annotations?.summary, `${r.alert} has a summary`);
    t.match(tests, new RegExp(`alertname: ${r.alert}\\b`), `${r.alert} has a promtool test`);
    for (const name of metricNames(r.expr)) {
      t.ok(name === 'up' || isDocumented(name, documented), `${r.alert}: metric ${name} is in docs/metrics.md`);
    }
  }
});

t.test('prometheus.yml: syntax, rule files that exist, the safespot job with the admin token', async (t) => {
  const dir = join(DOCKER, 'prometheus');
  const check = promtool(['check', 'config', '--syntax-only', 'prometheus.yml'], dir);
  t.equal(check.code, 0, `promtool check config:\n${check.out}`);
  const cfg = yamlFile('docker', 'prometheus', 'prometheus.yml');
  for (const f of cfg.rule_files) t.ok(existsSync(join(dir, f)), `rule file ${f} exists beside prometheus.yml`);
  const job = cfg.scrape_configs.find((j: any) => j.job_name === 'safespot');
  t.ok(job, 'a safespot job');
  t.equal(job?.authorization?.credentials_file, '/run/secrets/admin-token', 'the bearer token comes from the admin-token secret');
  t.equal(job?.metrics_path ?? '/metrics', '/metrics');
});

// ------------------------------------------------------------------------------------------------
// Grafana
// ------------------------------------------------------------------------------------------------

interface Panel {
  id: number;
  type: string;
  title?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

const dashboard = (): any => JSON.parse(read('docker', 'grafana', 'dashboards', 'safespot.json'));
const allPanels = (d: any): Panel[] => (d.panels as Panel[]).flatMap((p) => [p, ...(p.panels ?? [])]);

t.test('dashboard: valid JSON, titled panels with unique ids, no overlaps, the appliance selector', async (t) => {
  const d = dashboard();
  const panels = allPanels(d);
  t.ok(panels.length >= 15, `${panels.length} panels`);
  const ids = panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels) t.ok(typeof p.title === 'string' && p.title.trim().length > 0, `panel ${p.id} has a title`);
  for (let i = 0; i < panels.length; i++) {
    for (let j = i + 1; j < panels.length; j++) {
      const a = panels[i]!.gridPos;
      const b = panels[j]!.gridPos;
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
      t.notOk(overlap, `panels "${panels[i]!.title}" and "${panels[j]!.title}" do not overlap`);
    }
  }
  const variable = d.templating.list.find((v: any) => v.name === 'instance');
  t.ok(variable, 'template variable `instance`');
  t.match(variable?.definition ?? '', /label_values\(safespot_[a-z_]+(\{venue=~"\$venue"\})?, instance\)/, 'instance values come from a safespot metric (of the chosen venues)');
  t.equal(variable?.includeAll, true, 'All is selectable (fleets)');
  t.equal(variable?.multi, true, 'several appliances selectable');
  // The venue a city's store labels series with (issue 20); All is `.*`, which also matches series
  // without the label, so a single appliance scraped directly still shows its data.
  const venue = d.templating.list.find((v: any) => v.name === 'venue');
  t.match(venue, { type: 'query', definition: 'label_values(safespot_build_info, venue)', multi: true, includeAll: true, allValue: '.*' }, 'template variable `venue`, All = .*');
  t.ok(d.templating.list.indexOf(venue) < d.templating.list.indexOf(variable), 'venue comes before the appliance it narrows');
});

t.test('dashboard: every query uses documented metrics, each selected by $instance, and parses as PromQL', async (t) => {
  const documented = documentedMetrics();
  const d = dashboard();
  const exprs: { panel: string; expr: string }[] = [];
  for (const p of allPanels(d)) {
    if (p.type === 'row') continue;
    t.ok((p.targets ?? []).length > 0, `"${p.title}" has a query`);
    for (const target of p.targets ?? []) exprs.push({ panel: p.title ?? String(p.id), expr: target.expr });
  }
  for (const { panel, expr } of exprs) {
    const sels = selectors(expr);
    t.ok(sels.length > 0, `"${panel}" reads a metric`);
    for (const s of sels) {
      t.ok(isDocumented(s.name, documented), `"${panel}": ${s.name} is in docs/metrics.md`);
      t.match(s.matchers, /instance=~"\$instance"/, `"${panel}": ${s.name} is selected by the appliance selector`);
      t.match(s.matchers, /venue=~"\$venue"/, `"${panel}": ${s.name} is selected by the venue selector`);
    }
  }
  // PromQL syntax: the queries, with Grafana's macros filled in, as recording rules for promtool.
  const dir = mkdtempSync(join(tmpdir(), 'safespot-dash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rules = exprs.map((e, i) => ({
    record: `dashboard:query_${i}`,
    expr: e.expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1d').replaceAll('$instance', '.*').replaceAll('$venue', '.*'),
  }));
  writeFileSync(join(dir, 'queries.yml'), stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
  const check = promtool(['check', 'rules', 'queries.yml'], dir);
  t.equal(check.code, 0, `every dashboard query parses:\n${check.out}`);
});

t.test('dashboard: the panels a compliance view needs', async (t) => {
  const panels = allPanels(dashboard()).filter((p) => p.type !== 'row');
  const has = (what: string, titleRe: RegExp, exprRe: RegExp): void => {
    const found = panels.some((p) => titleRe.test(p.title ?? '') && (p.targets ?? []).some((x) => exprRe.test(x.expr)));
    t.ok(found, `${what}: a panel titled ${titleRe} querying ${exprRe}`);
  };
  has('filtering active', /filtering active/i, /safespot_filtering_active/);
  has('blocks per category over time', /blocks per category/i, /sum by \(category\).*safespot_requests_total\{[^}]*action="block"/);
  has('blocked images', /blocked images/i, /safespot_images_blocked_total/);
  has('list freshness', /list refresh|oldest list/i, /time\(\) - .*safespot_policy_last_refresh_timestamp_seconds/);
  has('self-test status', /self-test/i, /safespot_selftest_success/);
  has('decision latency quantiles', /latency/i, /histogram_quantile\(0\.99, .*safespot_decision_duration_seconds_bucket/);
  has('active connections', /connections/i, /safespot_connections_active/);
  has('upstream errors', /upstream errors/i, /safespot_upstream_errors_total/);
  has('limits hit', /limits/i, /safespot_limits_hit_total/);
});

t.test('dashboard: provisioned datasource uid, and the grafana.com import form matches with __inputs', async (t) => {
  const d = dashboard();
  const ds = yamlFile('docker', 'grafana', 'provisioning', 'datasources', 'prometheus.yml').datasources[0];
  const uids = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const dsRef = o.datasource as { type?: string; uid?: string } | undefined;
      if (dsRef && typeof dsRef === 'object' && dsRef.type === 'prometheus' && dsRef.uid) uids.add(dsRef.uid);
      Object.values(o).forEach(walk);
    }
  };
  walk(d);
  t.same([...uids], [ds.uid], 'every query uses the provisioned Prometheus datasource');

  const imp = JSON.parse(read('docker', 'grafana', 'safespot-import.json'));
  const input = (imp.__inputs ?? []).find((i: any) => i.type === 'datasource' && i.pluginId === 'prometheus');
  t.ok(input, 'the import form asks for a Prometheus datasource in __inputs');
  const { __inputs, __requires, __elements, ...rest } = imp;
  t.ok(Array.isArray(__requires), '__requires lists what the dashboard needs');
  t.ok(__elements !== undefined, '__elements present');
  const asProvisioned = JSON.parse(JSON.stringify(rest).replaceAll(`\${${input?.name}}`, ds.uid));
  t.same(asProvisioned, d, 'the import form is the provisioned dashboard with the datasource as an input');
});

// ------------------------------------------------------------------------------------------------
// compose
// ------------------------------------------------------------------------------------------------

/** `${VAR:-default}` -> default; `${VAR}` stays (no default to check). */
const withDefaults = (s: string): string => s.replace(/\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}/g, '$1');

t.test('compose.yml: safespot, Prometheus and Grafana wired from files that exist', async (t) => {
  const c = yamlFile('docker', 'compose.yml');
  for (const s of ['safespot', 'prometheus', 'grafana']) t.ok(c.services?.[s], `service ${s}`);
  const safespot = c.services.safespot;
  t.ok(safespot.network_mode === 'host' || (safespot.ports ?? []).length > 0, 'safespot is reachable (host network or ports)');
  t.equal(safespot.read_only, true, 'read-only root filesystem');
  t.ok((safespot.volumes as string[]).some((v) => v.split(':')[1] === '/var/lib/safespot'), 'state volume at /var/lib/safespot');
  t.ok((safespot.secrets as string[]).includes('admin-token'), 'admin token as a secret');
  t.ok(existsSync(join(DOCKER, safespot.build.context, safespot.build.dockerfile)), 'build context holds the Dockerfile');
  t.ok(Number(/(\d+)s/.exec(safespot.stop_grace_period ?? '')?.[1]) >= 10, 'stop grace period covers the drain timeout');

  for (const [name, svc] of Object.entries<any>(c.services)) {
    for (const v of (svc.volumes ?? []) as string[]) {
      const [source, target] = withDefaults(v).split(':');
      if (source!.startsWith('.') || source!.startsWith('/')) {
        t.ok(existsSync(resolve(DOCKER, source!)), `${name}: mounted ${source} exists (-> ${target})`);
      } else {
        t.ok(c.volumes && source! in c.volumes, `${name}: named volume ${source} is declared`);
      }
    }
    for (const s of (svc.secrets ?? []) as string[]) t.ok(c.secrets?.[s], `${name}: secret ${s} is declared`);
  }
  // Secrets are made on the host, never committed.
  const ignore = read('docker', 'secrets', '.gitignore');
  for (const [name, s] of Object.entries<any>(c.secrets)) {
    t.equal(dirname(resolve(DOCKER, s.file)), join(DOCKER, 'secrets'), `secret ${name} lives in docker/secrets/`);
  }
  t.match(ignore, /^\*$/m, 'docker/secrets/ is git-ignored');

  // Prometheus: its config and rules mounted where prometheus.yml expects them; its listen address is Grafana's datasource.
  const prom = c.services.prometheus;
  const promMounts = new Map((prom.volumes as string[]).map((v) => [v.split(':')[1], v.split(':')[0]]));
  t.equal(promMounts.get('/etc/prometheus/prometheus.yml'), './prometheus/prometheus.yml');
  t.equal(promMounts.get('/etc/prometheus/alerts.yml'), './prometheus/alerts.yml');
  t.ok((prom.secrets as string[]).includes('admin-token'), 'Prometheus reads the admin token');
  const listen = (prom.command as string[]).find((a) => a.startsWith('--web.listen-address='))?.split('=')[1];
  const ds = yamlFile('docker', 'grafana', 'provisioning', 'datasources', 'prometheus.yml').datasources[0];
  t.equal(new URL(ds.url).host, listen, 'Grafana queries the Prometheus of the compose file');
  const scrape = yamlFile('docker', 'prometheus', 'prometheus.yml').scrape_configs.find((j: any) => j.job_name === 'safespot');
  const example = loadConfigFile(join(DOCKER, 'config.example.yaml'));
  t.equal(scrape.static_configs[0].targets[0], `127.0.0.1:${example.admin?.port}`, 'Prometheus scrapes the admin port of the shipped config');

  // Grafana: provisioning mounted, dashboards where the provider looks.
  const graf = c.services.grafana;
  const grafMounts = new Map((graf.volumes as string[]).map((v) => [v.split(':')[1], v.split(':')[0]]));
  const provider = yamlFile('docker', 'grafana', 'provisioning', 'dashboards', 'safespot.yml').providers[0];
  t.equal(grafMounts.get(provider.options.path), './grafana/dashboards', 'the dashboard provider path is the mounted dashboards folder');
  t.equal(grafMounts.get('/etc/grafana/provisioning/datasources'), './grafana/provisioning/datasources');
  t.equal(grafMounts.get('/etc/grafana/provisioning/dashboards'), './grafana/provisioning/dashboards');
});

// ------------------------------------------------------------------------------------------------
// container config, Dockerfile, router scripts
// ------------------------------------------------------------------------------------------------

t.test('config.example.yaml validates and suits a container', async (t) => {
  const c = loadConfigFile(join(DOCKER, 'config.example.yaml'));
  for (const l of ['forward', 'http', 'tls'] as const) t.equal(c.listeners[l]?.host, '0.0.0.0', `${l} listener on 0.0.0.0`);
  t.same([c.listeners.forward?.port, c.listeners.http?.port, c.listeners.tls?.port, c.admin?.port], [3128, 8080, 8443, 9090], 'the EXPOSEd ports');
  t.equal(c.admin?.host, '0.0.0.0');
  t.equal(c.admin?.tokenFile, '/run/secrets/admin-token', 'a non-loopback admin listener has a token file');
  for (const p of [c.journal.path, c.state.dir, c.ca.dir]) t.match(p, /^\/var\/lib\/safespot\//, `${p} on the state volume`);
  t.ok(c.lists.length > 0, 'demo lists');
  for (const l of c.lists) {
    t.match(l.source, /^\/app\//, `${l.id} from the image`);
    t.ok(existsSync(join(ROOT, l.source.replace(/^\/app\//, ''))), `${l.id}: ${l.source} is in the image (copied from the tree)`);
  }
  t.ok(c.selftest.canaries.some((k) => k.url?.startsWith('http://')), 'an http:// canary for the health check');
});

t.test('Dockerfile keeps its promises', async (t) => {
  const text = read('Dockerfile');
  const lines = text.split('\n').filter((l) => !l.startsWith('#'));
  const froms = lines.filter((l) => /^FROM /.test(l));
  // native (addons for the target), rootfs (runtime libraries unpacked from the target's Debian
  // packages), js (TypeScript on the build platform), runtime (FROM scratch: no shell, no apt).
  t.same(froms.map((f) => / AS (\S+)$/.exec(f)?.[1]), ['native', 'rootfs', 'js', 'runtime'], 'four stages, the runtime last');
  for (const f of froms.slice(0, 2)) t.match(f, /^FROM \$\{BASE_IMAGE\} AS /, 'the target stages on the BASE_IMAGE argument');
  t.match(froms[2] ?? '', /^FROM --platform=\$BUILDPLATFORM \$\{BUILD_BASE_IMAGE\} AS js$/, 'TypeScript compiled on the build platform');
  t.match(froms[3] ?? '', /^FROM scratch AS runtime$/, 'the runtime stage starts from nothing');
  t.match(text, /^ARG BASE_IMAGE=node:22-bookworm-slim$/m, 'default base image');
  t.ok(lines.findIndex((l) => l.startsWith('ARG BASE_IMAGE=')) < lines.findIndex((l) => l.startsWith('FROM ')), 'ARG BASE_IMAGE before the first FROM');
  t.match(text, /^USER 10001:10001$/m, 'non-root user');
  t.match(text, /^VOLUME \["\/var\/lib\/safespot"\]$/m, 'state volume');
  t.match(text, /^EXPOSE 3128 8080 8443 9090$/m, 'ports');
  t.match(text, /^HEALTHCHECK .*\n?.*"healthcheck"\]/m, 'health check through the built-in subcommand');
  t.match(text, /^ENTRYPOINT \["\/usr\/bin\/tini", "--"/m, 'tini as PID 1');
  t.match(text, /apt-get download [^\n]*libjemalloc2 tini/, 'jemalloc and tini taken from the target\'s Debian packages');
  t.match(text, /ln -s "\$jemalloc" \/rootfs\/usr\/local\/lib\/libjemalloc\.so\.2/, 'one fixed path to it on every architecture');
  t.match(text, /^ {4}LD_PRELOAD=\/usr\/local\/lib\/libjemalloc\.so\.2 \\$/m, 'preloaded for every process of the image');
  t.match(text, /^ {4}MALLOC_CONF=narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0 \\$/m, 'jemalloc tuned for a small box: one arena, no thread caches, dirty pages purged (issue 23)');
  t.ok(text.indexOf('LD_PRELOAD=') > text.lastIndexOf('apt-get install'), 'set after the last apt-get (apt and dpkg run on glibc malloc)');
  for (const label of ['title', 'description', 'licenses', 'version', 'revision', 'created']) {
    t.match(text, new RegExp(`org\\.opencontainers\\.image\\.${label}=`), `OCI label ${label}`);
  }
  t.match(text, /COPY docker\/config\.example\.yaml \/etc\/safespot\/config\.yaml/, 'the container config is the default');

  // Every file the build copies from the context passes .dockerignore's whitelist.
  const ignore = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  t.equal(ignore[0], '*', '.dockerignore is a whitelist');
  const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  for (const m of text.matchAll(/^COPY (?!--from)(.+)$/gm)) {
    const parts = m[1]!.trim().split(/\s+/);
    for (const src of parts.slice(0, -1)) {
      t.ok(allowed.includes(src.replace(/\/$/, '')), `COPY ${src} is in the .dockerignore whitelist`);
      t.ok(existsSync(join(ROOT, src)), `COPY ${src} exists`);
    }
  }
});

t.test('router scripts: bash syntax, strict mode, documented interface, shellcheck when present', async (t) => {
  const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;
  for (const name of ['nftables.sh', 'iptables.sh']) {
    const path = join(DOCKER, 'router', name);
    const text = readFileSync(path, 'utf8');
    t.match(text, /^set -euo pipefail$/m, `${name}: strict mode`);
    t.match(text, new RegExp(`${name.replace('.', '\\.')} up +GUEST_IF \\[HTTP_PORT \\[TLS_PORT \\[DNS_PORT\\]\\]\\]`), `${name}: usage at the top`);
    t.match(text, /down/, `${name}: a down mode`);
    t.doesNotThrow(() => execFileSync('bash', ['-n', path]), `${name}: bash -n`);
    const noArgs = spawnSync('bash', [path], { encoding: 'utf8' });
    t.equal(noArgs.status, noArgs.stderr.includes('not found') ? 1 : 2, `${name}: no arguments prints the usage`);
    if (hasShellcheck) {
      const sc = spawnSync('shellcheck', [path], { encoding: 'utf8' });
      t.equal(sc.status, 0, `${name}: shellcheck clean\n${sc.stdout}`);
    }
  }
});

// ------------------------------------------------------------------------------------------------
// the HEALTHCHECK's plan (appliance/commands/healthcheck.ts)
// ------------------------------------------------------------------------------------------------

t.test('healthcheck: wildcard binds are probed on loopback', async (t) => {
  const cases: [string, string][] = [['0.0.0.0', '127.0.0.1'], ['::', '::1'], ['[::]', '::1'], ['127.0.0.5', '127.0.0.5'], ['10.0.0.1', '10.0.0.1'], ['::1', '::1']];
  for (const [bind, probe] of cases) t.equal(probeHost(bind), probe, `${bind} -> ${probe}`);
});

t.test('healthcheck: which canary goes through the forward listener', async (t) => {
  const cases: [string, { category: string; url?: string; host?: string }[], string | null][] = [
    ['an http URL first', [{ category: 'csam', host: 'x.test' }, { category: 'adult', url: 'http://blocked.test/p' }], 'get http://blocked.test/p'],
    ['a host canary by CONNECT', [{ category: 'adult', host: 'blocked.test' }], 'connect blocked.test'],
    ['a bare https URL by CONNECT', [{ category: 'adult', url: 'https://blocked.test/' }], 'connect blocked.test'],
    ['an https URL with a path cannot be decided by CONNECT', [{ category: 'malware', url: 'https://phishing.test/login' }], null],
    ['a malformed URL is skipped', [{ category: 'adult', url: 'http://' }], null],
    ['no canary', [], null],
  ];
  for (const [what, canaries, want] of cases) {
    const c = pickCanary(canaries);
    t.equal(c === null ? null : c.kind === 'get' ? `get ${c.url.href}` : `connect ${c.host}`, want, what);
  }
});

t.test('healthcheck: probes for a config (token sent, canary through the forward listener)', async (t) => {
  const cfg = (doc: object) => validateConfig(doc, ROOT);
  const full = planProbes(cfg({
    listeners: { forward: { host: '0.0.0.0', port: 3128 } },
    admin: { host: '0.0.0.0', port: 9090 },
    selftest: { canaries: [{ category: 'adult', url: 'http://blocked.test/' }] },
  }), 'tok-0123456789abcdef');
  t.same(full.probes.map((p) => p.name), ['admin 127.0.0.1:9090 /readyz', 'forward 127.0.0.1:3128 GET http://blocked.test/']);
  t.match(full.probes[0]!.request, /^GET \/readyz HTTP\/1\.1\r\n[^]*Authorization: Bearer tok-0123456789abcdef\r\n[^]*\r\n\r\n$/, 'the admin probe carries the token');
  t.match(full.probes[1]!.request, /^GET http:\/\/blocked\.test\/ HTTP\/1\.1\r\nHost: blocked\.test\r\n/, 'absolute-URI request to the proxy');
  t.notMatch(full.probes[1]!.request, /Authorization/, 'the token never goes to the proxy');
  const judge = full.probes[1]!.judge;
  t.equal(judge({ status: 403, headers: { 'content-type': 'text/html; charset=utf-8' }, body: '<html>' }), null, 'block page: healthy');
  t.match(judge({ status: 200, headers: {}, body: '' }) ?? '', /not blocked/, 'an allowed canary is unhealthy');
  t.match(judge({ status: 503, headers: {}, body: 'no policy' }) ?? '', /no valid policy/, 'no policy is unhealthy');
  t.match(judge({ status: 403, headers: { 'content-type': 'text/plain' }, body: 'safespot: this network is not allowed to use the proxy\n' }) ?? '', /refuses this client/, 'a client refusal is not a block');
  t.match(full.probes[0]!.judge({ status: 401, headers: {}, body: '' }) ?? '', /token was refused/);

  const adminOnly = planProbes(cfg({ listeners: { forward: { host: '127.0.0.1', port: 3128 } } }), undefined, { adminOnly: true });
  t.same(adminOnly.probes.map((p) => p.name), ['admin 127.0.0.1:9090 /readyz'], '--admin-only');
  t.notMatch(adminOnly.probes[0]!.request, /Authorization/, 'no token configured, none sent');
  const none = planProbes(cfg({ admin: null, listeners: { http: { host: '0.0.0.0', port: 8080 } } }), undefined);
  t.same(none.probes, [], 'nothing to check without admin and forward listeners');
  t.equal(none.notes.length, 2, 'and it says why');
});
