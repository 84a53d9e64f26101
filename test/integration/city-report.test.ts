/**
 * One report across venues (issue 20, point 3), with real processes only: two real `safespot serve`
 * (two venues, each with its own journal) under real blocked traffic, each scraped by its own real
 * Prometheus agent running the shipped docker/prometheus/agent.yml (1 s interval), both remote-writing
 * to one real Prometheus receiver; then `safespot audit report --prometheus` against the receiver.
 *
 * Proven: each venue's figures from the centre equal that venue's own `audit report --journal` over
 * the same period, and the city total is their sum; venue A restarted mid-period (its counters reset
 * to 0) still adds up, and the report lists its restart and the stretch its agent saw it down; venue
 * B's agent stopped for a while, and the report lists that gap of missing samples; CSV and HTML carry
 * the same figures; an unreachable centre is ERR_PROMETHEUS (exit 1), a bad label name exit 2.
 * Every wait has a deadline (a guard against hanging, not a timing assertion).
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ProxyAgent, request } from 'undici';
import { ROOT, CLI_DEMO_DIR, runCli, serve, tempConfig, type Running } from '../helpers/appliance.js';
import { havePrometheus } from '../helpers/prometheus.js';
import { buildPromReport } from '../../audit/prom-report.js';
import { api, freePort, sleep, startProm, waitFor, type Proc } from '../helpers/prom-process.js';

const TOKEN = 'city-report-admin-token-0123456789';

function agentConfig(dir: string, adminPort: number, receiverPort: number): string {
  const shipped = parse(readFileSync(join(ROOT, 'docker', 'prometheus', 'agent.yml'), 'utf8'));
  shipped.global.scrape_interval = '1s';
  shipped.global.scrape_timeout = '900ms';
  shipped.scrape_configs[0].static_configs[0].targets = [`127.0.0.1:${adminPort}`];
  shipped.scrape_configs[0].authorization.credentials_file = join(dir, 'admin-token');
  shipped.remote_write[0].url = `http://127.0.0.1:${receiverPort}/api/v1/write`;
  shipped.remote_write[0].authorization.credentials_file = join(dir, 'remote-write-token');
  // Send within 1 s rather than the default 5 s batch deadline, so the test waits less.
  shipped.remote_write[0].queue_config.batch_send_deadline = '1s';
  return stringify(shipped);
}

const agentFlags = (dir: string, name: string) => [
  '--enable-feature=agent,expand-external-labels',
  `--config.file=${join(dir, `${name}.yml`)}`,
  `--storage.agent.path=${join(dir, `${name}-wal`)}`,
];

type Figures = { total: number; byCategory: Record<string, number> };
const nonZero = (f: Figures) => Object.fromEntries(Object.entries(f.byCategory).filter(([, n]) => n > 0));

t.test('audit report --prometheus: per-venue figures equal each venue\'s journal; a restart and a gap are shown', async (t) => {
  if (!havePrometheus()) throw new Error('prometheus is not installed: run `bash test/setup-system.sh` as root (or `apt-get install -y prometheus`)');
  const dir = mkdtempSync(join(tmpdir(), 'safespot-city-report-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'admin-token'), TOKEN, { mode: 0o600 });
  writeFileSync(join(dir, 'remote-write-token'), 'central-token', { mode: 0o600 });

  const receiverPort = await freePort();
  const centre = `http://127.0.0.1:${receiverPort}`;
  writeFileSync(join(dir, 'receiver.yml'), 'global: { scrape_interval: 1m }\n');
  const receiver = await startProm([`--config.file=${join(dir, 'receiver.yml')}`, `--storage.tsdb.path=${join(dir, 'receiver-data')}`, '--web.enable-remote-write-receiver'], receiverPort);
  t.teardown(() => receiver.stop());

  const venues = ['venue-a', 'venue-b'] as const;
  const apps: Record<string, { config: string; dir: string; admin: number; run: Running; agent: Proc; agentPort: number }> = {};
  for (const name of venues) {
    const admin = await freePort();
    const { config, dir: vdir } = tempConfig(t, name, [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      `admin: { host: 127.0.0.1, port: ${admin}, tokenFile: ${join(dir, 'admin-token')} }`,
      'lists:',
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
      `  - { id: demo-malware, category: malware, kind: urls, source: ${join(CLI_DEMO_DIR, 'malware.txt')} }`,
    ]);
    const run = await serve(config);
    writeFileSync(join(dir, `${name}.yml`), agentConfig(dir, admin, receiverPort));
    const agentPort = await freePort();
    const agent = await startProm(agentFlags(dir, name), agentPort, { VENUE: name });
    apps[name] = { config, dir: vdir, admin, run, agent, agentPort };
  }
  t.teardown(async () => {
    for (const a of Object.values(apps)) {
      a.run.child.kill('SIGKILL');
      await a.agent.stop();
    }
  });

  const block = async (venue: string, adult: number, malware: number): Promise<void> => {
    const proxy = new ProxyAgent({ uri: `http://127.0.0.1:${apps[venue]!.run.forward}`, proxyTunnel: false });
    try {
      const urls = [...Array(adult).fill('http://blocked.test/x'), ...Array(malware).fill('http://malware.test/download/payload.exe')];
      for (const u of urls) {
        const r = await request(u, { dispatcher: proxy });
        await r.body.dump();
        if (r.statusCode !== 403) throw new Error(`expected the block page for ${u}, got ${r.statusCode}`);
      }
    } finally {
      await proxy.close();
    }
  };
  const atCentre = async (venue: string): Promise<number | undefined> => {
    const r = await api(centre, `sum(safespot_requests_total{venue="${venue}", action="block"})`);
    return r.length === 1 ? Number(r[0]!.value![1]) : undefined;
  };
  const arrived = (venue: string, n: number) => waitFor(`${n} blocks of ${venue} at the centre`, async () => (await atCentre(venue)) === n, 60_000);
  const newestUp = async (venue: string): Promise<number> => {
    const r = await api(centre, `timestamp(up{venue="${venue}"})`);
    return r.length ? Number(r[0]!.value![1]) * 1000 : 0;
  };

  // Both venues are reporting before the period starts.
  for (const v of venues) await arrived(v, 0);
  const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  await sleep(from - Date.now() + 50);

  await block('venue-a', 3, 2);
  await block('venue-b', 2, 1);
  await arrived('venue-a', 5);
  await arrived('venue-b', 3);

  // Venue A restarts: stopped for 4 s (its agent scrapes and gets no answer), then the same config
  // and journal; its counters start again at 0.
  const a = apps['venue-a']!;
  a.run.child.kill('SIGTERM');
  await a.run.exited;
  await sleep(4000);
  a.run = await serve(a.config);
  await arrived('venue-a', 0);
  await block('venue-a', 1, 3);

  // Venue B's agent stops for 6 s: nothing is scraped, a gap at the centre.
  const b = apps['venue-b']!;
  await b.agent.stop();
  await sleep(6000);
  b.agent = await startProm(agentFlags(dir, 'venue-b'), b.agentPort, { VENUE: 'venue-b' });
  await block('venue-b', 2, 0);
  await arrived('venue-a', 4);
  await arrived('venue-b', 5);

  const to = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  await sleep(to - Date.now() + 50);
  for (const v of venues) await waitFor(`${v}'s samples past the period end`, async () => (await newestUp(v)) > to + 1500, 60_000);

  const period = ['--from', new Date(from).toISOString(), '--to', new Date(to).toISOString()];
  const city = await runCli(['audit', 'report', '--prometheus', centre, '--venue-label', 'venue', ...period]);
  t.equal(city.code, 0, `the city report runs: ${city.stderr}`);
  const report = JSON.parse(city.stdout) as {
    venues: Array<{
      venue: string;
      blockedRequests: Figures;
      monitoredRequests: Figures;
      counterResets: number;
      restarts: Array<{ instance: string; at: string }>;
      gaps: Array<{ instance: string; from: string; to: string; seconds: number; kind: string }>;
      instances: Array<{ instance: string; scrapeIntervalSeconds: number | null }>;
    }>;
    city: { blockedRequests: Figures; venues: number; venuesWithGaps: string[] };
  };
  t.same(report.venues.map((v) => v.venue), ['venue-a', 'venue-b'], 'both venues, by name');

  let sum = 0;
  for (const name of venues) {
    const j = await runCli(['audit', 'report', '--journal', join(apps[name]!.dir, 'journal.db'), ...period]);
    t.equal(j.code, 0, `${name}'s journal report runs: ${j.stderr}`);
    const journal = JSON.parse(j.stdout) as { blockedRequests: Figures; monitored: { requests: Figures } };
    const v = report.venues.find((x) => x.venue === name)!;
    t.equal(v.blockedRequests.total, journal.blockedRequests.total, `${name}: blocked requests from the centre = its journal (${journal.blockedRequests.total})`);
    t.same(nonZero(v.blockedRequests), nonZero(journal.blockedRequests), `${name}: by category = its journal`);
    t.equal(v.monitoredRequests.total, journal.monitored.requests.total, `${name}: monitored = its journal`);
    sum += journal.blockedRequests.total;
  }
  t.equal(sum, 5 + 4 + 3 + 2, 'the journals have every block of the period (the traffic sent)');
  t.equal(report.city.blockedRequests.total, sum, 'the city total is the sum of the venues\' journals');
  t.same(nonZero(report.city.blockedRequests), { adult: 3 + 1 + 2 + 2, malware: 2 + 3 + 1 }, 'the city by category');

  const va = report.venues.find((x) => x.venue === 'venue-a')!;
  const vb = report.venues.find((x) => x.venue === 'venue-b')!;
  t.ok(va.counterResets > 0, `venue A's counter resets are counted (${va.counterResets})`);
  t.equal(va.restarts.length, 1, `venue A's restart is listed once: ${JSON.stringify(va.restarts)}`);
  t.ok(Date.parse(va.restarts[0]!.at) > from && Date.parse(va.restarts[0]!.at) < to, 'inside the period');
  t.ok(va.gaps.some((g) => g.kind === 'down' && g.seconds >= 2), `venue A's down time while restarting is a gap: ${JSON.stringify(va.gaps)}`);
  t.equal(vb.counterResets, 0, 'venue B did not restart');
  t.same(vb.restarts, [], 'no restart listed for B');
  const missing = vb.gaps.filter((g) => g.kind === 'missing');
  t.equal(missing.length, 1, `venue B's agent outage is one gap of missing samples: ${JSON.stringify(vb.gaps)}`);
  t.ok(missing[0]!.seconds >= 5, `about as long as the outage (${missing[0]!.seconds} s)`);
  t.equal(vb.instances[0]?.scrapeIntervalSeconds, 1, 'the scrape interval is read from the samples');
  t.same(report.city.venuesWithGaps, ['venue-a', 'venue-b'], 'the city lists the venues with gaps');

  // The same period in 3 s windows (many windows: resets across window edges, the fast path beside
  // the raw one, gaps over several windows merged): the same figures, restarts and gaps.
  const fine = await buildPromReport({ url: centre, venueLabel: 'venue' }, { from, to, windowMs: 3000 });
  for (const name of venues) {
    const one = report.venues.find((x) => x.venue === name)!;
    const many = fine.venues.find((x) => x.venue === name)!;
    t.same(many.blockedRequests, one.blockedRequests, `${name}: 3 s windows give the same blocked requests`);
    t.same(many.restarts, one.restarts, `${name}: the same restarts`);
    t.same(many.gaps.map((g) => [g.kind, Math.round(g.seconds)]), one.gaps.map((g) => [g.kind, Math.round(g.seconds)]), `${name}: the same gaps`);
  }
  t.ok(fine.source.queries > report.venues.length, `${fine.source.queries} queries`);

  const csv = await runCli(['audit', 'report', '--prometheus', centre, ...period, '--format', 'csv']);
  t.equal(csv.code, 0, csv.stderr);
  const rows = csv.stdout.trim().split('\r\n').map((l) => l.split(','));
  t.same(rows.find((r) => r[0] === '(city)' && r[1] === 'blocked_requests' && r[2] === 'total'), ['(city)', 'blocked_requests', 'total', '', String(sum)], 'CSV: the city total');
  t.same(rows.find((r) => r[0] === 'venue-a' && r[1] === 'blocked_requests' && r[3] === 'malware'), ['venue-a', 'blocked_requests', 'category', 'malware', '5'], 'CSV: a venue by category');
  t.ok(rows.some((r) => r[0] === 'venue-b' && r[1] === 'gap_missing'), 'CSV: the gap');
  const html = await runCli(['audit', 'report', '--prometheus', centre, ...period, '--format', 'html']);
  t.equal(html.code, 0, html.stderr);
  t.match(html.stdout, /<th scope="row">venue-a<\/th><td>9<\/td>/, 'HTML: venue A\'s row');
  t.notMatch(html.stdout, /<script/i, 'HTML: no script');

  // Bad input: a centre that does not answer; a malformed label name; a wrong label finds no venue.
  const dead = await runCli(['audit', 'report', '--prometheus', `http://127.0.0.1:${await freePort()}`, ...period]);
  t.equal(dead.code, 1, 'an unreachable centre exits 1');
  t.match(dead.stderr, /ERR_PROMETHEUS/, dead.stderr);
  const badLabel = await runCli(['audit', 'report', '--prometheus', centre, '--venue-label', 'ven ue', ...period]);
  t.equal(badLabel.code, 2, `a malformed label name is a usage error: ${badLabel.stderr.trim()}`);
  const other = await runCli(['audit', 'report', '--prometheus', centre, '--venue-label', 'zone', ...period]);
  t.equal(other.code, 0, other.stderr);
  t.same(JSON.parse(other.stdout).venues, [], 'no series carries a `zone` label: no venue');
});
