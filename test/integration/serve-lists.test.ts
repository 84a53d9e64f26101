/**
 * Lists that stay fresh, through the real `serve`: https:// sources on a local origin refreshed on
 * their interval, refused updates that leave the last good policy enforcing, SIGHUP and POST /reload
 * swapping policies while traffic flows (no error, no blocked host ever allowed through), fail-closed
 * start-up, start-up from the last good copies, and a small fleet scraped by one real Prometheus.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { serve, type Running } from '../helpers/appliance.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { startPrometheus } from '../helpers/prometheus.js';
import { startHttpUpstream, type TestUpstream } from '../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Setup {
  dir: string;
  origin: Origin;
  upstream: TestUpstream;
  configPath: string;
}

function writeConfig(s: Setup, extra: string[] = [], refresh = '300ms'): void {
  writeFileSync(join(s.dir, 'ca.pem'), s.origin.caPem);
  writeFileSync(join(s.dir, 'token'), 'a-long-enough-admin-token-for-tests\n');
  writeFileSync(s.configPath, [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    `admin: { host: 127.0.0.1, port: 0, tokenFile: ${join(s.dir, 'token')} }`,
    'upstream:',
    `  hosts: { ok.test: "127.0.0.1:${s.upstream.port}", later.test: "127.0.0.1:${s.upstream.port}" }`,
    `sources: { ca: ${join(s.dir, 'ca.pem')}, timeout: 2s, retries: 0 }`,
    'lists:',
    `  - { id: remote-adult, category: adult, kind: domains, source: "${s.origin.url('/adult.txt')}", refresh: ${refresh} }`,
    `journal: { path: ${join(s.dir, 'journal.db')} }`,
    `state: { dir: ${join(s.dir, 'state')} }`,
    ...extra,
    '',
  ].join('\n'));
}

async function setup(t: Test): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-lists-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const upstream = await startHttpUpstream();
  t.teardown(() => upstream.close());
  return { dir, origin, upstream, configPath: join(dir, 'config.yaml') };
}

function client(app: Running) {
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  const status = async (url: string): Promise<number> => {
    const res = await request(url, { dispatcher: agent });
    await res.body.arrayBuffer();
    return res.statusCode;
  };
  return { agent, status };
}

async function metric(app: Running, name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${app.admin}/metrics`, { headers: { authorization: 'Bearer a-long-enough-admin-token-for-tests' } });
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && !line.startsWith('#')) sum += Number(line.split(' ').pop());
  return sum;
}

t.test('an https source is refreshed on its interval; refused updates keep the last good policy', async (t) => {
  const s = await setup(t);
  s.origin.put('/adult.txt', 'blocked.test\n');
  writeConfig(s);
  const app = await serve(s.configPath);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const { agent, status } = client(app);
  t.teardown(() => agent.close());

  t.equal(await status('http://blocked.test/'), 403, 'listed host blocked from the first download');
  t.equal(await status('http://later.test/hello'), 200, 'not yet listed');
  t.equal(await metric(app, 'safespot_policy_refresh_interval_seconds'), 0.3, 'the list\'s refresh interval is exported (exact staleness alerts)');

  // Unchanged at the origin: the refreshes are conditional and answered 304 with no body.
  await until('a conditional refresh', async () => s.origin.requestsFor('/adult.txt').some((r) => r.status === 304));
  const conditional = s.origin.requestsFor('/adult.txt').filter((r) => r.headers['if-none-match']);
  t.ok(conditional.length > 0, 'refreshes are conditional requests');
  t.ok(conditional.some((r) => r.status === 304 && r.bytes === 0), 'a 304 re-sends nothing');

  s.origin.put('/adult.txt', 'blocked.test\nlater.test\n');
  await until('the update to be enforced', async () => (await status('http://later.test/hello')) === 403);
  t.pass('an update at the origin is enforced within its refresh interval');

  // A body that is mostly garbage: refused, the previous policy keeps enforcing both hosts.
  s.origin.put('/adult.txt', '%%% not a list %%%\n'.repeat(50));
  await until('the refusal to be counted', async () => (await metric(app, 'safespot_policy_refresh_failures_total')) > 0);
  t.equal(await status('http://later.test/hello'), 403, 'still blocked after a refused update');
  t.equal(await status('http://blocked.test/'), 403);
  t.equal(await metric(app, 'safespot_filtering_active'), 1, 'filtering stays active');

  // The origin vanishes: refreshes fail, the last good policy stays.
  await s.origin.vanish();
  await sleep(800);
  t.equal(await status('http://later.test/hello'), 403, 'still enforced with the origin gone');
  t.notMatch(app.log(), /a-long-enough-admin-token/, 'the admin token never appears in the log');
});

t.test('SIGHUP and POST /reload swap the policy under traffic without an error or a leak', async (t) => {
  const s = await setup(t);
  s.origin.put('/adult.txt', 'blocked.test\n');
  writeConfig(s, [], '1h');
  const app = await serve(s.configPath);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const { agent, status } = client(app);
  t.teardown(() => agent.close());

  // Traffic during swaps: allowed requests must all succeed, blocked ones must all be blocked.
  let stop = false;
  const seen = { okFailures: 0, leaks: 0, requests: 0 };
  const traffic = (async () => {
    while (!stop) {
      const [a, b] = await Promise.all([status('http://ok.test/hello').catch(() => -1), status('http://blocked.test/').catch(() => -1)]);
      seen.requests += 2;
      if (a !== 200) seen.okFailures++;
      if (b !== 403) seen.leaks++;
    }
  })();

  t.teardown(async () => {
    stop = true;
    await traffic;
  });

  s.origin.put('/adult.txt', 'blocked.test\nlater.test\n');
  app.child.kill('SIGHUP');
  await until('SIGHUP refresh', async () => (await status('http://later.test/hello')) === 403);
  t.pass('SIGHUP refreshed the lists');

  // A broken config file on SIGHUP: refused, the running policy keeps serving.
  writeFileSync(s.configPath, 'listeners: { forward: { host: 127.0.0.1, port: nope } }\nbogus: 1\n');
  app.child.kill('SIGHUP');
  await sleep(500);
  t.equal(app.child.exitCode, null, 'a bad config on reload does not stop the appliance');
  t.match(app.log(), /reload refused: config invalid/);
  t.equal(await status('http://later.test/hello'), 403, 'the old policy still enforces');

  // POST /reload: token required; a good config adds a second list.
  writeFileSync(join(s.dir, 'more.txt'), 'extra.test\n');
  writeConfig(s, ['allow: []'], '1h');
  const cfg = `${await (await import('node:fs/promises')).readFile(s.configPath, 'utf8')}`.replace(
    'lists:\n',
    `lists:\n  - { id: local-more, category: malware, kind: domains, source: ${join(s.dir, 'more.txt')} }\n`,
  );
  writeFileSync(s.configPath, cfg);
  const unauth = await fetch(`http://127.0.0.1:${app.admin}/reload`, { method: 'POST' });
  t.equal(unauth.status, 401, 'POST /reload needs the bearer token');
  const get = await fetch(`http://127.0.0.1:${app.admin}/reload`, { headers: { authorization: 'Bearer a-long-enough-admin-token-for-tests' } });
  t.equal(get.status, 405, 'GET is refused');
  const post = await fetch(`http://127.0.0.1:${app.admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer a-long-enough-admin-token-for-tests' } });
  const body = (await post.json()) as { ok: boolean; version?: string };
  t.equal(post.status, 200, JSON.stringify(body));
  t.ok(body.ok && typeof body.version === 'string', 'reload answers with the new policy version');
  t.equal(await status('http://extra.test/'), 403, 'the new list is enforced after POST /reload');

  stop = true;
  await traffic;
  t.ok(seen.requests > 20, `${seen.requests} requests during the swaps`);
  t.equal(seen.okFailures, 0, 'no allowed request failed during the swaps');
  t.equal(seen.leaks, 0, 'no blocked request was allowed through during the swaps');
});

t.test('start-up: fail closed with nothing cached; serve from the last good copies when the origin is down', async (t) => {
  const s = await setup(t);
  s.origin.put('/adult.txt', 'blocked.test\n', { status: 503 });
  writeConfig(s, [], '200ms');
  const cfg = (await (await import('node:fs/promises')).readFile(s.configPath, 'utf8')).replace('retries: 0 }', 'retries: 0, startup: fail-closed }');
  writeFileSync(s.configPath, cfg);

  const app = await serve(s.configPath);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const { agent, status } = client(app);
  t.teardown(() => agent.close());
  t.equal(await status('http://ok.test/hello'), 503, 'with no policy, even an unlisted host is refused: 503 (fail closed)');
  t.equal(await metric(app, 'safespot_filtering_active'), 0, 'filtering_active says so');
  const ready = await fetch(`http://127.0.0.1:${app.admin}/readyz`, { headers: { authorization: 'Bearer a-long-enough-admin-token-for-tests' } });
  t.equal(ready.status, 503, '/readyz is not ready');

  s.origin.put('/adult.txt', 'blocked.test\n');
  await until('the list to arrive', async () => (await status('http://ok.test/hello')) === 200);
  t.equal(await status('http://blocked.test/'), 403, 'once the list arrived, filtering is active');
  t.equal(await metric(app, 'safespot_filtering_active'), 1);
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);

  // Restart with the origin gone: the last good copies are enforced at once.
  await s.origin.vanish();
  const again = await serve(s.configPath);
  t.teardown(() => void again.child.kill('SIGKILL'));
  const c2 = client(again);
  t.teardown(() => c2.agent.close());
  t.equal(await c2.status('http://blocked.test/'), 403, 'blocked from the cached copy with the origin down');
  t.equal(await c2.status('http://ok.test/hello'), 200);
  t.equal(await metric(again, 'safespot_filtering_active'), 1);
});

t.test('a fleet: one origin, three appliances, one Prometheus', async (t) => {
  const s = await setup(t);
  s.origin.put('/adult.txt', 'blocked.test\n');
  writeConfig(s, [], '300ms');
  const apps: Running[] = [];
  for (let i = 0; i < 3; i++) {
    const cfg = (await (await import('node:fs/promises')).readFile(s.configPath, 'utf8'))
      .replace(join(s.dir, 'journal.db'), join(s.dir, `journal-${i}.db`))
      .replace(join(s.dir, 'state'), join(s.dir, `state-${i}`));
    const path = join(s.dir, `config-${i}.yaml`);
    writeFileSync(path, cfg);
    const app = await serve(path);
    t.teardown(() => void app.child.kill('SIGKILL'));
    apps.push(app);
  }
  const prom = await startPrometheus({ targets: apps.map((a) => `127.0.0.1:${a.admin}`), bearerToken: 'a-long-enough-admin-token-for-tests' });
  t.teardown(() => prom.stop());

  s.origin.put('/adult.txt', 'blocked.test\nlater.test\n');
  for (const app of apps) {
    const { agent, status } = client(app);
    await until(`appliance ${app.forward} to enforce the update`, async () => (await status('http://later.test/hello')) === 403);
    await agent.close();
  }
  t.pass('the change reached every appliance');
  await prom.waitForScrape();
  t.equal(await prom.query('count(safespot_filtering_active == 1)'), 3, 'Prometheus sees all three filtering');
  t.equal(await prom.query('sum(safespot_policy_entries{list="remote-adult"})'), 6, 'and two entries on each');
  t.equal(await prom.query('count(count by (version) (safespot_policy_info))'), 1, 'all three run the same policy version');
  t.equal(await prom.query('sum(safespot_requests_total{action="block",category="adult"})'), 3, 'one block counted per appliance');
});
