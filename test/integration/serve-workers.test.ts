/**
 * `safespot serve` with `workers: 2`, as real processes: a primary and two workers sharing the
 * forward listener. Known traffic over fresh connections from undici; then a real Prometheus
 * scraping the primary's admin listener and the audit report from the primary's journal must both
 * agree with it exactly; SIGHUP with a changed list reaches every worker; a worker killed with
 * SIGKILL is replaced and service continues with the counters intact; SIGTERM drains and exits 0.
 *
 * That both workers served is shown from outside, by the kernel: while connections are held open,
 * /proc says which process owns each accepted socket of the forward port. (A per-worker metric
 * label would be an open set, and a worker pid in a response header would be a test-only hook.)
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { CLI_DEMO_DIR as DEMO, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { startPrometheus } from '../helpers/prometheus.js';
import { startHttpUpstream } from '../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Inodes of the ESTABLISHED IPv4 sockets whose local port is `port` (the accepted side). */
function acceptedSocketInodes(port: number): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = f[1]!;
    if (parseInt(local.split(':')[1]!, 16) === port && f[3] === '01') out.add(f[9]!);
  }
  return out;
}

/** How many of `inodes` process `pid` holds. */
function socketsHeld(pid: number, inodes: Set<string>): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && inodes.has(m[1]!)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

function filesHeld(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Sum of a metric's samples in Prometheus text whose line matches every `labels` fragment. */
function sample(text: string, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels.every((l) => line.includes(l))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Wait (bounded; a guard, not a threshold) until `cond` holds. */
async function until(what: string, cond: () => boolean, giveUpMs = 30_000): Promise<void> {
  const deadline = Date.now() + giveUpMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(50);
  }
}

/** Guest block verdicts in the journal now (read-only beside the running writer: WAL). */
function journalBlocks(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT COUNT(*) AS n FROM events WHERE kind = 'verdict' AND action = 'block' AND listener = 'forward'").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

t.test('two workers: shared listener, one set of metrics, one journal, reload, restart, drain', async (t) => {
  const http = await startHttpUpstream();
  t.teardown(() => http.close());
  const dir = mkdtempSync(join(tmpdir(), 'safespot-workers-'));
  t.teardown(() => (process.env.KEEP ? t.comment(dir) : rmSync(dir, { recursive: true, force: true })));
  const adultList = join(dir, 'adult.txt');
  writeFileSync(adultList, 'blocked.test\nadult.test\n');
  const up = `"127.0.0.1:${http.port}"`;
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [
    'workers: 2',
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'upstream:',
    `  hosts: { plain.test: ${up}, late.test: ${up}, blocked.test: ${up}, csam-canary.test: ${up} }`,
    'lists:',
    `  - { id: venue-adult, category: adult, kind: domains, source: ${adultList} }`,
    `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
    `journal: { path: ${join(dir, 'journal.db')} }`,
    `state: { dir: ${join(dir, 'state')} }`,
    'selftest: { interval: 1h, canaries: [{ category: csam, url: "http://csam-canary.test/" }] }',
    '',
  ].join('\n'));
  const from = new Date(Date.now() - 60_000).toISOString();

  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const served = JSON.parse(app.log().split('\n').find((l) => l.includes('"safespot serving"'))!) as { workers?: number[] };
  const workers = served.workers ?? [];
  t.equal(workers.length, 2, 'the serving line names two worker pids');
  t.ok(app.forward > 0, `the serving line reports the real forward port (${app.forward}), asked for as port 0`);
  const prom = await startPrometheus({ targets: [`127.0.0.1:${app.admin}`] });
  t.teardown(() => prom.stop());

  /** One request over its own new connection. */
  const get = async (url: string): Promise<number> => {
    const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
    try {
      const res = await request(url, { dispatcher: agent });
      await res.body.arrayBuffer();
      return res.statusCode;
    } finally {
      await agent.close();
    }
  };
  const statuses = async (url: string, n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(await get(url.replace('{i}', String(i))));
    return out;
  };
  const all = (xs: number[], v: number): boolean => xs.length > 0 && xs.every((x) => x === v);

  // --- known traffic, every request on a fresh connection -----------------------------------------
  const sent = { allow: 8, lateAllowed: 2, adult: 6, csam: 4 };
  t.ok(all(await statuses('http://plain.test/hello?a={i}', sent.allow), 200), 'allowed requests pass');
  t.ok(all(await statuses('http://late.test/hello?x={i}', sent.lateAllowed), 200), 'late.test is not listed yet');
  t.ok(all(await statuses('http://blocked.test/b{i}', sent.adult), 403), 'adult requests are blocked');
  t.ok(all(await statuses('http://csam-canary.test/p{i}', sent.csam), 403), 'hashed csam host entry blocks');

  // --- both workers accept connections: held connections, owners from /proc ------------------------
  const held = 16;
  const agents = Array.from({ length: held }, () => new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false }));
  t.teardown(() => Promise.all(agents.map((a) => a.close().catch(() => undefined))));
  for (const [i, a] of agents.entries()) {
    const res = await request(`http://plain.test/hello?held=${i}`, { dispatcher: a });
    await res.body.arrayBuffer();
  }
  const inodes = acceptedSocketInodes(app.forward);
  const perWorker = workers.map((pid) => socketsHeld(pid, inodes));
  t.equal(inodes.size, held, `${held} connections are open on the forward port`);
  t.equal(perWorker.reduce((a, b) => a + b, 0), held, 'the workers hold every accepted connection (the primary none)');
  t.ok(perWorker.every((n) => n > 0), `both workers hold some of them (${perWorker.join(' + ')})`);
  await Promise.all(agents.map((a) => a.close()));
  for (const pid of workers) {
    t.notOk(filesHeld(pid).some((f) => f.includes('journal.db')), `worker ${pid} does not open the journal (one writer: the primary)`);
  }
  t.ok(filesHeld(app.child.pid!).some((f) => f.endsWith('journal.db')), 'the primary holds the journal');

  // --- a real Prometheus scraping the primary --------------------------------------------------------
  const allowed = sent.allow + sent.lateAllowed + held;
  await prom.waitForScrape();
  t.equal(await prom.query('sum(safespot_requests_total{action="allow"})'), allowed, `Prometheus: ${allowed} allowed`);
  t.equal(await prom.query('sum(safespot_requests_total{action="block",category="adult",listener!="selftest"})'), sent.adult, `Prometheus: ${sent.adult} adult blocks`);
  t.equal(await prom.query('sum(safespot_requests_total{action="block",category="csam",listener!="selftest"})'), sent.csam, `Prometheus: ${sent.csam} csam blocks`);
  t.equal(await prom.query('sum(safespot_requests_total{listener="selftest",action="block",category="csam"})'), 2, 'the self-test\'s two probes (the absolute URL and CONNECT to its host), through the workers');
  t.equal(await prom.query('safespot_filtering_active'), 1, 'filtering active (every process holds a policy), not summed to 3');
  t.equal(await prom.query('safespot_policy_entries{list="venue-adult"}'), 2, 'list entries are not summed over the processes');
  t.equal(await prom.query('safespot_selftest_success{category="csam"}'), 1, 'self-test success is not summed');
  t.equal(await prom.query('count(safespot_policy_info)'), 1, 'one policy_info series');
  t.equal(await prom.query('sum(safespot_connections_active)'), 0, 'no connection open now');

  // --- SIGHUP with a changed list reaches every worker -----------------------------------------------
  appendFileSync(adultList, 'late.test\n');
  const reloadsBefore = count(app.log(), '"msg":"reloaded"');
  app.child.kill('SIGHUP');
  await until('the reload', () => count(app.log(), '"msg":"reloaded"') > reloadsBefore);
  const lateBlocked = 10;
  t.ok(all(await statuses('http://late.test/y{i}', lateBlocked), 403), `after SIGHUP, ${lateBlocked} fresh connections to late.test are all blocked`);

  // --- SIGKILL one worker: the primary starts a new one, counters stay --------------------------------
  const before = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  const blocksBefore = sample(before, 'safespot_requests_total', 'action="block"', 'listener="forward"');
  t.equal(blocksBefore, sent.adult + sent.csam + lateBlocked, 'every block so far is in /metrics');
  // A kill -9 may lose what a worker has not sent yet (at most 250 ms of events, inside the journal's
  // one-second promise): wait until the journal holds every block so far, so the report can be exact.
  await until('the journal to hold every block', () => journalBlocks(join(dir, 'journal.db')) === blocksBefore);
  const victim = workers[0]!;
  process.kill(victim, 'SIGKILL');
  await until('a new worker', () => count(app.log(), '"msg":"worker serving"') >= 3);
  t.match(app.log(), /"msg":"worker died; starting a new one"/, 'the death is logged');
  const after = { adult: 4, allow: 4 };
  t.ok(all(await statuses('http://late.test/z{i}', after.adult), 403), 'service continues, the new policy everywhere (the new worker got it at start)');
  t.ok(all(await statuses('http://plain.test/hello?c={i}', after.allow), 200), 'allowed traffic continues');
  const later = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.equal(sample(later, 'safespot_worker_restarts_total'), 1, 'one restart counted');
  t.equal(
    sample(later, 'safespot_requests_total', 'action="block"', 'listener="forward"'),
    blocksBefore + after.adult,
    'the dead worker’s counters were kept: the merged counter did not go down',
  );
  t.equal(sample(later, 'safespot_requests_total', 'action="allow"'), allowed + after.allow, 'allowed: exact across the restart');
  const ready = await fetch(`http://127.0.0.1:${app.admin}/readyz`);
  t.equal(ready.status, 200, `ready again: ${await ready.text()}`);

  // --- SIGTERM: drain, exit 0, journal intact --------------------------------------------------------
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'SIGTERM drains and exits 0');
  const live = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number);
  t.notOk(workers.some((pid) => live.includes(pid)), 'no worker outlives the primary');

  const to = new Date(Date.now() + 60_000).toISOString();
  const report = await runCli(['audit', 'report', '--journal', join(dir, 'journal.db'), '--from', from, '--to', to, '--format', 'json']);
  t.equal(report.code, 0, report.stderr);
  const r = JSON.parse(report.stdout) as { blockedRequests: { total: number; byCategory: Record<string, number> } };
  const expected = { adult: sent.adult + lateBlocked + after.adult, csam: sent.csam };
  t.same(
    Object.fromEntries(Object.entries(r.blockedRequests.byCategory).filter(([, n]) => n > 0)),
    expected,
    `the audit report counts every block of both workers, the killed one included: ${JSON.stringify(r.blockedRequests)}`,
  );
  t.equal(r.blockedRequests.total, expected.adult + expected.csam);
  t.match(app.log(), /"msg":"stopped"/, 'the primary logged its clean stop');
});

t.test('kill -9 of the primary: no worker serves on without the journal’s writer', async (t) => {
  const { config } = tempConfig(t, 'workers-orphans', [
    'workers: 2',
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const served = JSON.parse(app.log().split('\n').find((l) => l.includes('"safespot serving"'))!) as { workers?: number[] };
  const workers = served.workers ?? [];
  t.equal(workers.length, 2, 'two workers');
  // Alive = exists and is not a zombie waiting for a reaper (the primary that would reap it is gone).
  const alive = (pid: number): boolean => {
    try {
      return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
    } catch {
      return false;
    }
  };
  t.ok(workers.every(alive), 'both workers run');
  app.child.kill('SIGKILL');
  await app.exited;
  await until('the workers to exit', () => !workers.some(alive));
  t.notOk(workers.some(alive), 'every worker exited when its channel to the primary closed');
});
