/**
 * A fleet pulling one signed policy bundle, through the real `safespot compile --sign` and the real
 * `serve`: one local HTTPS origin publishes the bundle and its `.sig`; three appliances configured
 * with `bundle:` + `publicKey` enforce it, pick up a new bundle within the refresh interval, refuse a
 * wrongly signed or damaged one everywhere (the old policy keeps enforcing, the failure is in
 * /metrics), and one real Prometheus sees the same policy version on all of them.
 */
import t, { type Test } from 'tap';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { runCli, serve, type Running } from '../helpers/appliance.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { startPrometheus } from '../helpers/prometheus.js';
import { startHttpUpstream, type TestUpstream } from '../helpers/upstream.js';

const TOKEN = 'a-long-enough-admin-token-for-tests';
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
  key: string;
  pub: string;
}

async function setup(t: Test): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const upstream = await startHttpUpstream();
  t.teardown(() => upstream.close());
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key = join(dir, 'publisher.key');
  const pub = join(dir, 'publisher.pub.pem');
  writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'ca.pem'), origin.caPem);
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  return { dir, origin, upstream, key, pub };
}

/** Compile the publisher's synthetic lists with the real CLI, signed; returns bundle and signature. */
async function publish(s: Setup, adult: string[], key = s.key): Promise<{ bundle: Buffer; sig: Buffer }> {
  writeFileSync(join(s.dir, 'adult.txt'), adult.map((h) => `${h}\n`).join(''));
  writeFileSync(join(s.dir, 'malware.txt'), 'malware.test\n');
  writeFileSync(join(s.dir, 'publisher.yaml'), [
    'lists:',
    `  - { id: adult-domains, category: adult, kind: domains, source: ${join(s.dir, 'adult.txt')} }`,
    `  - { id: malware-domains, category: malware, kind: domains, source: ${join(s.dir, 'malware.txt')} }`,
    '',
  ].join('\n'));
  const out = join(s.dir, 'policy.bundle');
  const r = await runCli(['compile', '--config', join(s.dir, 'publisher.yaml'), '-o', out, '--sign', key]);
  if (r.code !== 0) throw new Error(`compile failed (${r.code}): ${r.stderr}`);
  return { bundle: readFileSync(out), sig: readFileSync(`${out}.sig`) };
}

function applianceConfig(s: Setup, i: number): string {
  const path = join(s.dir, `appliance-${i}.yaml`);
  writeFileSync(path, [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    `admin: { host: 127.0.0.1, port: 0, tokenFile: ${join(s.dir, 'token')} }`,
    'upstream:',
    `  hosts: { ok.test: "127.0.0.1:${s.upstream.port}", later.test: "127.0.0.1:${s.upstream.port}" }`,
    `sources: { ca: ${join(s.dir, 'ca.pem')}, timeout: 2s, retries: 0 }`,
    `bundle: { source: "${s.origin.url('/policy.bundle')}", refresh: 300ms, publicKey: ${s.pub} }`,
    `journal: { path: ${join(s.dir, `journal-${i}.db`)} }`,
    `state: { dir: ${join(s.dir, `state-${i}`)} }`,
    '',
  ].join('\n'));
  return path;
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

async function metrics(app: Running): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${app.admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return res.text();
}

/** Sum of the samples of `name` whose labels contain every `labels` pair. */
async function metric(app: Running, name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const line of (await metrics(app)).split('\n')) {
    if (line.startsWith('#') || !(line.startsWith(`${name}{`) || line.startsWith(`${name} `))) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.split(' ').pop());
  }
  return sum;
}

t.test('compile --sign: a bad key is bad usage (exit 2), nothing written', async (t) => {
  const s = await setup(t);
  writeFileSync(join(s.dir, 'a.txt'), 'blocked.test\n');
  writeFileSync(join(s.dir, 'p.yaml'), `lists:\n  - { id: a, category: adult, kind: domains, source: ${join(s.dir, 'a.txt')} }\n`);
  const missing = await runCli(['compile', '--config', join(s.dir, 'p.yaml'), '-o', join(s.dir, 'x.bundle'), '--sign', join(s.dir, 'nope.pem')]);
  t.equal(missing.code, 2, 'a missing key file: exit 2');
  t.match(missing.stderr, /--sign: cannot read/);
  const notKey = await runCli(['compile', '--config', join(s.dir, 'p.yaml'), '-o', join(s.dir, 'x.bundle'), '--sign', s.pub]);
  t.equal(notKey.code, 2, 'a public key instead of a private one: exit 2');
  const rsa = join(s.dir, 'rsa.pem');
  writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const wrongType = await runCli(['compile', '--config', join(s.dir, 'p.yaml'), '-o', join(s.dir, 'x.bundle'), '--sign', rsa]);
  t.equal(wrongType.code, 2, 'an RSA key: exit 2');
  t.match(wrongType.stderr, /not Ed25519/);
  t.throws(() => readFileSync(join(s.dir, 'x.bundle')), 'no bundle written on bad usage');
  const ok = await runCli(['compile', '--config', join(s.dir, 'p.yaml'), '-o', join(s.dir, 'x.bundle'), '--sign', s.key]);
  t.equal(ok.code, 0, ok.stderr);
  const sig = readFileSync(join(s.dir, 'x.bundle.sig'), 'utf8');
  t.match(sig, /^safespot-signed-list v1\nname: bundle\nversion: \d+\nsha256: [0-9a-f]{64}\nsignature: [A-Za-z0-9+/]{86}==\n$/, 'a signed statement naming the bundle and a version');
  t.match(sig, `sha256: ${createHash('sha256').update(readFileSync(join(s.dir, 'x.bundle'))).digest('hex')}`, 'over the bundle\'s SHA-256');
});

t.test('config: bundle with local lists is refused (exit 2)', async (t) => {
  const s = await setup(t);
  const path = applianceConfig(s, 9);
  writeFileSync(path, `${readFileSync(path, 'utf8')}lists:\n  - { id: a, category: adult, kind: domains, source: a.txt }\n`);
  const r = await runCli(['serve', '--config', path]);
  t.equal(r.code, 2);
  t.match(r.stderr, /lists.*must be empty when `bundle` is set/);
});

t.test('a fleet pulls one signed bundle: updates reach all, bad bundles are refused everywhere', async (t) => {
  const s = await setup(t);
  const v1 = await publish(s, ['blocked.test']);
  s.origin.put('/policy.bundle', v1.bundle);
  s.origin.put('/policy.bundle.sig', v1.sig);

  const apps: Running[] = [];
  for (let i = 0; i < 3; i++) {
    const app = await serve(applianceConfig(s, i));
    t.teardown(() => void app.child.kill('SIGKILL'));
    apps.push(app);
  }
  const clients = apps.map(client);
  t.teardown(() => Promise.all(clients.map((c) => c.agent.close())));

  for (const [i, c] of clients.entries()) {
    t.equal(await c.status('http://blocked.test/'), 403, `appliance ${i}: listed host blocked from the bundle`);
    t.equal(await c.status('http://ok.test/hello'), 200, `appliance ${i}: unlisted host allowed`);
    t.equal(await c.status('http://later.test/hello'), 200, `appliance ${i}: not listed yet`);
  }
  // Labels come from the bundle: its list ids and categories, not `other`.
  t.equal(await metric(apps[0]!, 'safespot_policy_entries', { list: 'adult-domains' }), 1, 'entries labelled with the bundle\'s list id');
  t.equal(await metric(apps[0]!, 'safespot_requests_total', { action: 'block', category: 'adult' }), 1, 'blocks labelled with the bundle\'s category');

  const prom = await startPrometheus({ targets: apps.map((a) => `127.0.0.1:${a.admin}`), bearerToken: TOKEN });
  t.teardown(() => prom.stop());

  // A new bundle with a new entry: every appliance enforces it within the refresh interval.
  const v2 = await publish(s, ['blocked.test', 'later.test']);
  s.origin.put('/policy.bundle', v2.bundle);
  s.origin.put('/policy.bundle.sig', v2.sig);
  for (const [i, c] of clients.entries()) {
    await until(`appliance ${i} to enforce the new bundle`, async () => (await c.status('http://later.test/hello')) === 403);
  }
  t.pass('the new bundle reached every appliance');
  const conditional = s.origin.requestsFor('/policy.bundle').filter((r) => r.headers['if-none-match']);
  t.ok(conditional.some((r) => r.status === 304 && r.bytes === 0), 'refreshes are conditional; a 304 re-sends nothing');

  await prom.waitForScrape();
  t.equal(await prom.query('count(safespot_filtering_active == 1)'), 3, 'Prometheus sees all three filtering');
  t.equal(await prom.query('count(count by (version) (safespot_policy_info))'), 1, 'all three run the same policy version');
  const v2version = (await metrics(apps[0]!)).match(/safespot_policy_info\{version="([0-9a-f]+)"\} 1/)?.[1];
  t.ok(v2version, 'the version is exported');
  t.equal(await prom.query(`count(safespot_policy_info{version="${v2version}"})`), 3, 'the new version on every appliance');

  // v3 (drops later.test) signed by another key: refused everywhere, v2 keeps enforcing.
  const other = join(s.dir, 'other.key');
  writeFileSync(other, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const forged = await publish(s, ['blocked.test'], other);
  s.origin.put('/policy.bundle', forged.bundle);
  s.origin.put('/policy.bundle.sig', forged.sig);
  for (const [i, app] of apps.entries()) {
    await until(`appliance ${i} to count the signature failure`, async () => (await metric(app, 'safespot_policy_refresh_failures_total', { list: 'bundle', reason: 'signature' })) > 0);
  }
  for (const [i, c] of clients.entries()) t.equal(await c.status('http://later.test/hello'), 403, `appliance ${i}: a wrongly signed bundle is refused, the old policy enforces`);

  // The right signature over different bytes (one flipped byte of the body): refused as well.
  const flipped = Buffer.from(v2.bundle);
  const mid = flipped.length >> 1;
  flipped[mid] = flipped[mid]! ^ 0x01;
  s.origin.put('/policy.bundle', flipped);
  s.origin.put('/policy.bundle.sig', v2.sig);
  const before = await Promise.all(apps.map((a) => metric(a, 'safespot_policy_refresh_failures_total', { list: 'bundle', reason: 'signature' })));
  for (const [i, app] of apps.entries()) {
    await until(`appliance ${i} to refuse the flipped byte`, async () => (await metric(app, 'safespot_policy_refresh_failures_total', { list: 'bundle', reason: 'signature' })) > before[i]!);
  }
  for (const [i, c] of clients.entries()) {
    t.equal(await c.status('http://later.test/hello'), 403, `appliance ${i}: still enforcing after the damaged bundle`);
    t.equal(await c.status('http://ok.test/hello'), 200, `appliance ${i}: and still forwarding`);
  }

  await prom.waitForScrape();
  t.equal(await prom.query(`count(safespot_policy_info{version="${v2version}"})`), 3, 'Prometheus: every appliance still on the last good version');
  t.equal(await prom.query('count(increase(safespot_policy_refresh_failures_total{list="bundle",reason="signature"}[5m]) > 0)'), 3, 'Prometheus: the refusals are visible on every appliance');
  t.equal(await prom.query('count(safespot_filtering_active == 1)'), 3, 'all still filtering');
});

t.test('an unsigned-but-checksummed corrupt bundle is refused by decodeBundle; fail closed with nothing cached; restart from the last good bundle', async (t) => {
  const s = await setup(t);
  const v1 = await publish(s, ['blocked.test']);
  s.origin.put('/policy.bundle', v1.bundle, { status: 503 });
  const path = applianceConfig(s, 0);
  // No publicKey here: decodeBundle's own checksum is the only guard, and it must hold.
  writeFileSync(path, readFileSync(path, 'utf8').replace(`, publicKey: ${s.pub}`, '').replace('retries: 0 }', 'retries: 0, startup: fail-closed }'));

  const app = await serve(path);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const c = client(app);
  t.teardown(() => c.agent.close());
  t.equal(await c.status('http://ok.test/hello'), 503, 'nothing cached and the origin down: fail closed');
  t.equal(await metric(app, 'safespot_filtering_active'), 0);

  // A truncated bundle is refused (reason invalid); still failing closed.
  s.origin.put('/policy.bundle', v1.bundle.subarray(0, v1.bundle.length - 100));
  await until('the truncated bundle to be refused', async () => (await metric(app, 'safespot_policy_refresh_failures_total', { list: 'bundle', reason: 'invalid' })) > 0);
  t.equal(await c.status('http://ok.test/hello'), 503, 'a truncated bundle is never used');

  s.origin.put('/policy.bundle', v1.bundle);
  await until('the bundle to arrive', async () => (await c.status('http://ok.test/hello')) === 200);
  t.equal(await c.status('http://blocked.test/'), 403, 'once the bundle arrived, filtering is active');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);

  // Restart with the origin gone: the last good bundle is enforced at once, with its labels.
  await s.origin.vanish();
  const again = await serve(path);
  t.teardown(() => void again.child.kill('SIGKILL'));
  const c2 = client(again);
  t.teardown(() => c2.agent.close());
  t.equal(await c2.status('http://blocked.test/'), 403, 'blocked from the last good bundle with the origin down');
  t.equal(await c2.status('http://ok.test/hello'), 200);
  t.equal(await metric(again, 'safespot_policy_entries', { list: 'adult-domains' }), 1, 'labels from the cached bundle');
});
