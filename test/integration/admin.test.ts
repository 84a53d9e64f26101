import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createMetrics, metricsObserver } from '../../audit/metrics.js';
import { basicMatches, bearerMatches, isLoopbackHost, readTokenFile, startAdmin } from '../../appliance/admin/listener.js';
import { createHash } from 'node:crypto';

const TOKEN = 'admin-token-abcdefghijklmnop';

function get(port: number, path: string, init: { method?: string; headers?: Record<string, string> } = {}) {
  return fetch(`http://127.0.0.1:${port}${path}`, { method: init.method ?? 'GET', headers: init.headers ?? {} });
}

t.test('routes without a token: metrics, healthz, readyz, 404, 405', async (t) => {
  const metrics = createMetrics({ categories: ['adult'], defaultMetrics: false });
  let readiness = { ready: false, reasons: ['no policy loaded', 'listener forward not up'] };
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, registry: metrics.registry, isReady: () => readiness });
  t.teardown(() => admin.close());
  t.equal((admin.server.address() as { address: string }).address, '127.0.0.1', 'bound to loopback');

  metricsObserver(metrics).verdict({ listener: 'forward', protocol: 'http', action: 'block', category: 'adult', list: 'l', durationSeconds: 1e-6, url: 'http://blocked.test/x', client: '10.9.8.7' });
  const m = await get(admin.port, '/metrics');
  t.equal(m.status, 200);
  t.match(m.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await m.text();
  t.match(text, /safespot_requests_total\{listener="forward",protocol="http",action="block",category="adult"\} 1/);
  t.notMatch(text, /blocked\.test|10\.9\.8\.7/, 'no URL or client address is served');

  const h = await get(admin.port, '/healthz');
  t.equal(h.status, 200);
  t.equal(await h.text(), 'ok\n');

  const notReady = await get(admin.port, '/readyz');
  t.equal(notReady.status, 503);
  t.same(await notReady.json(), { ready: false, reasons: ['no policy loaded', 'listener forward not up'] });
  readiness = { ready: true, reasons: [] };
  const ready = await get(admin.port, '/readyz');
  t.equal(ready.status, 200);
  t.same(await ready.json(), { ready: true, reasons: [] });

  const table: Array<[string, string, number]> = [
    ['GET', '/', 404],
    ['GET', '/lists', 404],
    ['GET', '/metrics/../lists', 404],
    ['GET', '/metrics?x=1', 200],
    ['HEAD', '/metrics', 200],
    ['POST', '/metrics', 405],
    ['DELETE', '/readyz', 405],
  ];
  for (const [method, path, status] of table) {
    const r = await get(admin.port, path, { method });
    await r.arrayBuffer();
    t.equal(r.status, status, `${method} ${path}`);
  }
});

t.test('with a token every route but /healthz needs it', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  const admin = await startAdmin({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    registry: metrics.registry,
    isReady: () => ({ ready: true, reasons: [] }),
    extraRoutes: {
      '/private': (_req, res) => res.end('private'),
      '/ca': { public: true, handler: (_req, res) => res.end('ca') },
    },
  });
  t.teardown(() => admin.close());
  const cases: Array<{ path: string; auth?: string; status: number }> = [
    { path: '/metrics', status: 401 },
    { path: '/metrics', auth: `Bearer ${TOKEN}`, status: 200 },
    { path: '/metrics', auth: `bearer ${TOKEN}`, status: 200 },
    { path: '/metrics', auth: `Bearer ${TOKEN}x`, status: 401 },
    { path: '/metrics', auth: `Bearer ${TOKEN.slice(0, -1)}`, status: 401 },
    { path: '/metrics', auth: 'Bearer ', status: 401 },
    { path: '/metrics', auth: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, status: 401 },
    { path: '/metrics', auth: TOKEN, status: 401 },
    { path: '/readyz', status: 401 },
    { path: '/readyz', auth: `Bearer ${TOKEN}`, status: 200 },
    { path: '/healthz', status: 200 },
    { path: '/private', status: 401 },
    { path: '/private', auth: `Bearer ${TOKEN}`, status: 200 },
    { path: '/ca', status: 200 },
    { path: '/nothing', status: 404 },
  ];
  for (const c of cases) {
    const r = await get(admin.port, c.path, c.auth ? { headers: { authorization: c.auth } } : {});
    const body = await r.text();
    t.equal(r.status, c.status, `${c.path} with ${c.auth ? JSON.stringify(c.auth.slice(0, 12)) : 'no auth'}`);
    if (r.status === 401) {
      t.equal(r.headers.get('www-authenticate'), 'Bearer realm="safespot-admin"');
      t.notMatch(body, TOKEN, 'the token is never echoed');
    }
  }
});

t.test('refuses a non-loopback host without a token; loopback detection', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  await t.rejects(
    startAdmin({ host: '0.0.0.0', port: 0, registry: metrics.registry, isReady: () => ({ ready: true, reasons: [] }) }),
    { code: 'ERR_CONFIG_INVALID', message: /tokenFile/ },
  );
  const table: Array<[string, boolean]> = [
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['::1', true],
    ['[::1]', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.1', false],
    ['10.0.0.1', false],
  ];
  for (const [host, want] of table) t.equal(isLoopbackHost(host), want, host);
  // A port in use is a clear error, not a crash.
  const first = await startAdmin({ host: '127.0.0.1', port: 0, registry: metrics.registry, isReady: () => ({ ready: true, reasons: [] }) });
  t.teardown(() => first.close());
  await t.rejects(
    startAdmin({ host: '127.0.0.1', port: first.port, registry: metrics.registry, isReady: () => ({ ready: true, reasons: [] }) }),
    { code: 'ERR_CONFIG_INVALID', message: /cannot listen/ },
  );
});

t.test('token file reading and the constant-time comparison', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good');
  writeFileSync(good, `${TOKEN}\n`);
  t.equal(readTokenFile(good), TOKEN);
  const short = join(dir, 'short');
  writeFileSync(short, 'tiny-secret\n');
  t.throws(() => readTokenFile(short), { code: 'ERR_CONFIG_INVALID' });
  try {
    readTokenFile(short);
  } catch (err) {
    t.notMatch((err as Error).message, 'tiny-secret', 'the error never shows the token');
  }
  t.throws(() => readTokenFile(join(dir, 'missing')), { code: 'ERR_CONFIG_READ' });
  const expected = createHash('sha256').update(TOKEN).digest();
  t.ok(bearerMatches(`Bearer ${TOKEN}`, expected));
  t.notOk(bearerMatches(undefined, expected));
  t.notOk(bearerMatches('Bearer', expected));
  t.notOk(bearerMatches(`Bearer ${TOKEN} extra`, expected));
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  t.ok(basicMatches(`Basic ${b64(`staff:${TOKEN}`)}`, expected), 'Basic: the token as the password');
  t.ok(basicMatches(`basic ${b64(`:${TOKEN}`)}`, expected), 'Basic: any user name, the scheme in any case');
  t.notOk(basicMatches(`Basic ${b64(`a:b:${TOKEN}`)}`, expected), 'the password is all after the first colon');
  for (const bad of [undefined, 'Basic', `Basic ${b64(TOKEN)}`, `Basic ${b64(`${TOKEN}:`)}`, `Basic ${b64(`staff:${TOKEN}x`)}`, `Basic ${b64(`staff:${TOKEN}`)} extra`, `Bearer ${b64(`staff:${TOKEN}`)}`, 'Basic %%%%', `Basic ${TOKEN}`]) {
    t.notOk(basicMatches(bad, expected), `Basic refused: ${String(bad)}`);
  }
});

t.test('a throwing route or readiness check is a 500, and the listener carries on; close() ends keep-alive connections', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  const admin = await startAdmin({
    host: '127.0.0.1',
    port: 0,
    registry: metrics.registry,
    isReady: () => {
      throw new Error('broken readiness');
    },
    extraRoutes: { '/boom': () => Promise.reject(new Error('boom')) },
  });
  const r1 = await get(admin.port, '/readyz');
  t.equal(r1.status, 500);
  await r1.arrayBuffer();
  const r2 = await get(admin.port, '/boom');
  t.equal(r2.status, 500);
  await r2.arrayBuffer();
  const r3 = await get(admin.port, '/healthz');
  t.equal(r3.status, 200);
  await r3.arrayBuffer();
  // A raw keep-alive connection that stays open must not keep close() waiting.
  const agent = new http.Agent({ keepAlive: true });
  await new Promise<void>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: admin.port, path: '/healthz', agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });
  await admin.close();
  agent.destroy();
  t.equal(admin.server.listening, false, 'closed');
});
