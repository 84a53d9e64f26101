/**
 * Central metrics for a city (issue 20, point 2), with real processes only: a real `safespot serve`,
 * the shipped docker/prometheus/agent.yml run by a real Prometheus in agent mode (Debian package
 * `prometheus`), and a second real Prometheus with --web.enable-remote-write-receiver as the central
 * store. The shipped config is used as is except what only this machine knows: the scrape target,
 * the remote-write URL, the two secret files' paths, and a 1 s scrape interval so the test is short.
 *
 * Proven: the appliance's counters arrive at the centre with the venue label and equal what the
 * appliance exports; a central outage (shorter than the agent's WAL retention) loses no sample once
 * the centre is back (every 1 s scrape of the outage is there); a malformed venue name sends nothing.
 * Every wait has a deadline (a guard against hanging, not a timing assertion).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ProxyAgent, request } from 'undici';
import { ROOT, CLI_DEMO_DIR, serve, tempConfig } from '../helpers/appliance.js';
import { havePrometheus } from '../helpers/prometheus.js';
import { api, freePort, sleep, startProm, waitFor } from '../helpers/prom-process.js';

const TOKEN = 'city-admin-token-0123456789abcdef';
const VENUE = 'tirana-artificial-lake';

/** Sum of the appliance's own exported safespot_requests_total samples that match `filter`. */
function exported(text: string, filter: RegExp): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('safespot_requests_total{') && filter.test(line)) sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** The shipped agent.yml with only this machine's target, URL, secret paths and a 1 s interval. */
function localAgentConfig(dir: string, adminPort: number, receiverPort: number): string {
  const shipped = parse(readFileSync(join(ROOT, 'docker', 'prometheus', 'agent.yml'), 'utf8'));
  const job = shipped.scrape_configs[0];
  const rw = shipped.remote_write[0];
  if (job.job_name !== 'safespot' || !rw?.write_relabel_configs) throw new Error('agent.yml is not shaped as this test expects');
  shipped.global.scrape_interval = '1s';
  shipped.global.scrape_timeout = '900ms';
  job.static_configs[0].targets = [`127.0.0.1:${adminPort}`];
  job.authorization.credentials_file = join(dir, 'admin-token');
  rw.url = `http://127.0.0.1:${receiverPort}/api/v1/write`;
  rw.authorization.credentials_file = join(dir, 'remote-write-token');
  return stringify(shipped);
}

/** The prometheus-agent service's flags from docker/compose.yml, less those naming its paths and port. */
function composeAgentFlags(): string[] {
  const svc = parse(readFileSync(join(ROOT, 'docker', 'compose.yml'), 'utf8')).services['prometheus-agent'];
  return (svc.command as string[]).filter((a) => !/^--(config\.file|storage\.agent\.path|web\.listen-address)=/.test(a));
}

t.test('compose: the agent service is wired from files that exist, with the venue from the environment', async (t) => {
  const c = parse(readFileSync(join(ROOT, 'docker', 'compose.yml'), 'utf8'));
  const svc = c.services['prometheus-agent'];
  t.ok(svc, 'service prometheus-agent');
  t.same(svc.profiles, ['city'], 'off unless the city profile is asked for');
  t.equal(svc.image, c.services.prometheus.image, 'the same Prometheus image as the venue\'s own');
  const flags = svc.command as string[];
  t.ok(flags.some((f) => /^--enable-feature=(.*,)?agent(,|$)/.test(f)), 'agent mode');
  t.ok(flags.some((f) => /^--enable-feature=(.*,)?expand-external-labels(,|$)/.test(f)), '${VENUE} is expanded in external_labels');
  t.match(flags.find((f) => f.startsWith('--storage.agent.retention.max-time=')) ?? '', /=\d+h$/, 'a bounded WAL retention');
  const mounts = new Map((svc.volumes as string[]).map((v) => [v.split(':')[1], v.split(':')[0]]));
  const configPath = flags.find((f) => f.startsWith('--config.file='))!.split('=')[1]!;
  t.equal(mounts.get(configPath), './prometheus/agent.yml', 'the shipped agent.yml is the config');
  t.ok(mounts.get(flags.find((f) => f.startsWith('--storage.agent.path='))!.split('=')[1]!), 'the WAL is on a volume (it survives a restart)');
  t.match(svc.environment.VENUE, /SAFESPOT_VENUE/, 'VENUE comes from SAFESPOT_VENUE');
  const agent = parse(readFileSync(join(ROOT, 'docker', 'prometheus', 'agent.yml'), 'utf8'));
  for (const file of [agent.scrape_configs[0].authorization.credentials_file, agent.remote_write[0].authorization.credentials_file]) {
    const name = /^\/run\/secrets\/(.+)$/.exec(file)?.[1];
    t.ok(name && (svc.secrets as string[]).includes(name) && c.secrets[name], `${file} is a compose secret of the service`);
  }
  const listen = flags.find((f) => f.startsWith('--web.listen-address='))!.split('=')[1]!;
  t.match(listen, /^127\.0\.0\.1:/, 'the agent\'s own web listener is loopback only');
  t.not(listen, c.services.prometheus.command.find((f: string) => f.startsWith('--web.listen-address=')).split('=')[1], 'beside the local Prometheus, not on its port');
});

t.test('agent mode -> remote-write receiver: counters arrive, an outage loses nothing, the venue label is bounded', async (t) => {
  if (!havePrometheus()) throw new Error('prometheus is not installed: run `bash test/setup-system.sh` as root (or `apt-get install -y prometheus`)');
  const dir = mkdtempSync(join(tmpdir(), 'safespot-city-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'admin-token'), TOKEN, { mode: 0o600 });
  writeFileSync(join(dir, 'remote-write-token'), 'central-token', { mode: 0o600 });

  const { config } = tempConfig(t, 'city-app', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    `admin: { host: 127.0.0.1, port: 0, tokenFile: ${join(dir, 'admin-token')} }`,
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const proxy = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  t.teardown(() => proxy.close());
  const block = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const r = await request(`http://blocked.test/city-${i}`, { dispatcher: proxy });
      await r.body.dump();
      if (r.statusCode !== 403) throw new Error(`expected the block page, got ${r.statusCode}`);
    }
  };
  const appMetrics = async (): Promise<string> => {
    const r = await request(`http://127.0.0.1:${app.admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return r.body.text();
  };
  const BLOCK = /listener="forward".*action="block"|action="block".*listener="forward"/;

  const receiverPort = await freePort();
  const receiverUrl = `http://127.0.0.1:${receiverPort}`;
  writeFileSync(join(dir, 'receiver.yml'), 'global: { scrape_interval: 1m }\n');
  const receiverArgs = [`--config.file=${join(dir, 'receiver.yml')}`, `--storage.tsdb.path=${join(dir, 'receiver-data')}`, '--web.enable-remote-write-receiver'];
  let receiver = await startProm(receiverArgs, receiverPort);
  t.teardown(() => receiver.stop());

  writeFileSync(join(dir, 'agent.yml'), localAgentConfig(dir, app.admin, receiverPort));
  // The compose service's own flags, with this machine's paths and ports.
  const agentArgs = (name: string) => [...composeAgentFlags(), `--config.file=${join(dir, 'agent.yml')}`, `--storage.agent.path=${join(dir, name)}`];
  const check = spawn('promtool', ['check', 'config', join(dir, 'agent.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let checkOut = '';
  check.stdout!.on('data', (d: Buffer) => (checkOut += d.toString()));
  check.stderr!.on('data', (d: Buffer) => (checkOut += d.toString()));
  const checkCode = await new Promise<number | null>((r) => check.once('exit', r));
  t.equal(checkCode, 0, `promtool check config accepts the agent config: ${checkOut.trim()}`);

  const agentPort = await freePort();
  const agent = await startProm(agentArgs('agent-wal'), agentPort, { VENUE });
  t.teardown(() => agent.stop());
  // A second agent whose venue name is malformed (capitals, a space): it must send nothing at all.
  const badPort = await freePort();
  const bad = await startProm(agentArgs('bad-wal'), badPort, { VENUE: 'Tirana Lake' });
  t.teardown(() => bad.stop());

  // 1. Counters arrive, labelled with the venue, equal to what the appliance exports.
  await block(5);
  const want1 = exported(await appMetrics(), BLOCK);
  t.equal(want1, 5, 'the appliance counted five blocks');
  const sel = `sum(safespot_requests_total{venue="${VENUE}", listener="forward", action="block"})`;
  const got1 = await waitFor('the blocks at the centre', async () => {
    const r = await api(receiverUrl, sel);
    return r.length === 1 && Number(r[0]!.value![1]) === want1 ? want1 : undefined;
  });
  t.equal(got1, want1, 'the centre has the appliance\'s counter, under venue=' + VENUE);
  const up = await api(receiverUrl, `up{venue="${VENUE}"}`);
  t.same(up.map((s) => [s.metric.instance, s.metric.job, s.value![1]]), [['appliance-1', 'safespot', '1']], 'up, with instance = the appliance name');

  // 2. Outage: the centre stops; the appliance keeps counting; the agent keeps scraping into its WAL.
  await sleep(2000);
  const outageFrom = Date.now() / 1000;
  await receiver.stop();
  await block(7);
  await sleep(15_000);
  const outageTo = Date.now() / 1000;
  receiver = await startProm(receiverArgs, receiverPort);
  const want2 = exported(await appMetrics(), BLOCK);
  t.equal(want2, 12, 'twelve blocks at the appliance');
  await waitFor('the outage\'s samples at the centre', async () => {
    const r = await api(receiverUrl, sel);
    return r.length === 1 && Number(r[0]!.value![1]) === want2;
  }, 90_000);
  // Every scrape of the outage is there: the gaps between consecutive `up` samples stay near 1 s.
  await waitFor('samples after the outage', async () => {
    const r = await api(receiverUrl, `up{venue="${VENUE}"}[5m]`);
    const last = r[0]?.values?.at(-1)?.[0];
    return last !== undefined && last > outageTo + 2;
  });
  const raw = (await api(receiverUrl, `up{venue="${VENUE}"}[5m]`))[0]!.values!;
  const inWindow = raw.filter(([ts]) => ts >= outageFrom - 3 && ts <= outageTo + 3).map(([ts]) => ts);
  const gaps = inWindow.slice(1).map((ts, i) => ts - inWindow[i]!);
  const widest = Math.max(...gaps);
  t.ok(inWindow.length >= Math.floor(outageTo - outageFrom), `${inWindow.length} samples cover the ${Math.round(outageTo - outageFrom)} s outage`);
  t.ok(widest < 2.5, `no scrape lost in the outage (widest gap ${widest.toFixed(2)} s at a 1 s interval)`);
  // The blocks made during the outage are there at the times they were scraped, not only after it.
  const counter = await api(receiverUrl, `safespot_requests_total{venue="${VENUE}", listener="forward", protocol="http", action="block", category="adult"}[5m]`);
  t.equal(counter.length, 1, `one blocked-request series: ${JSON.stringify(counter.map((c) => c.metric))}`);
  const twelveAt = counter[0]!.values!.find(([, v]) => Number(v) === 12)?.[0];
  t.ok(twelveAt !== undefined && twelveAt < outageTo, `the counter reached 12 at a sample scraped inside the outage (${twelveAt} < ${outageTo.toFixed(3)})`);

  // 3. The malformed venue name sent nothing (its agent did scrape: its own metrics say so).
  // Agent mode has no query API; its targets API and its own metrics say it scraped and dropped.
  const droppedBad = await waitFor('the malformed agent to have scraped and dropped', async () => {
    const targets = (await (await fetch(`http://127.0.0.1:${badPort}/api/v1/targets`)).json()) as { data: { activeTargets: { health: string }[] } };
    if (targets.data.activeTargets[0]?.health !== 'up') return undefined;
    const text = await (await fetch(`http://127.0.0.1:${badPort}/metrics`)).text();
    const m = /^prometheus_remote_storage_samples_dropped_total\{[^}]*\} (\d+)/m.exec(text);
    return m && Number(m[1]) > 0 ? Number(m[1]) : undefined;
  });
  t.ok(droppedBad > 0, `the malformed venue's agent dropped ${droppedBad} samples by write_relabel_configs`);
  const stray = await api(receiverUrl, `count({__name__=~".+", venue!="${VENUE}"})`);
  t.same(stray, [], 'no series reached the centre without the well-formed venue label');
});
