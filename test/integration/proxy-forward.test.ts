/**
 * The explicit proxy with plain HTTP: real clients (undici ProxyAgent, curl, raw sockets) through
 * the proxy to a real upstream on port 0. Allowed content passes byte-exact, blocked requests get
 * the block page, hop-by-hop headers are stripped, Via is added, upgrades pass.
 */
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { Readable } from 'node:stream';
import { BIG_SIZE, bigBody, sha256, startHttpUpstream } from '../helpers/upstream.js';
import { runCmd } from '../helpers/commands.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange, openSocket, readUntil } from '../helpers/sockets.js';

const up = await startHttpUpstream();
t.teardown(() => up.close());
const hosts = { 'allowed.test': `127.0.0.1:${up.port}`, 'blocked.test': `127.0.0.1:${up.port}`, 'csam.test': `127.0.0.1:${up.port}` };
const observer = recordingObserver();
const hooks = testHooks();
const proxy = await startTestProxy(t, testOptions(hosts), hooks, observer);
const proxyUrl = `http://127.0.0.1:${proxy.port('forward')}`;
const agent = new ProxyAgent({ uri: proxyUrl, proxyTunnel: false });
t.teardown(() => agent.close());

t.test('undici: an allowed request passes and the upstream sees Host and Via', async (t) => {
  const res = await request('http://allowed.test/echo?x=1', { dispatcher: agent, headers: { 'x-keep': 'yes' } });
  t.equal(res.statusCode, 200);
  const echo = (await res.body.json()) as { url: string; headers: Record<string, string> };
  t.equal(echo.url, '/echo?x=1', 'origin-form target upstream');
  t.equal(echo.headers['host'], 'allowed.test');
  t.equal(echo.headers['x-keep'], 'yes');
  t.match(echo.headers['via'], /1\.1 safespot/);
  t.ok(hooks.calls.includes('request http://allowed.test/echo?x=1'), 'the full URL was decided on');
});

t.test('hop-by-hop headers, and those named in Connection, are not forwarded', async (t) => {
  const raw = await exchange(
    proxy.port('forward'),
    'GET http://allowed.test/echo HTTP/1.1\r\nHost: other.test\r\nConnection: close, X-Drop\r\nX-Drop: gone\r\nX-Keep: yes\r\n' +
      'Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nVia: 1.0 earlier\r\n\r\n',
  );
  const text = raw.toString();
  t.match(text, /^HTTP\/1\.1 200/);
  const echo = JSON.parse(/\{.*\}/s.exec(text)?.[0] ?? '{}') as { headers: Record<string, string> };
  t.equal(echo.headers['host'], 'allowed.test', 'Host is the absolute-URI authority (RFC 9112 §3.2.2)');
  t.equal(echo.headers['x-keep'], 'yes');
  for (const h of ['x-drop', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization']) t.notOk(h in echo.headers, `${h} dropped`);
  t.equal(echo.headers['via'], '1.0 earlier, 1.1 safespot', 'Via appended');
});

t.test('a multi-MB body and a chunked stream pass byte-exact', async (t) => {
  const expected = sha256(bigBody());
  for (const path of ['/big', '/chunked']) {
    const res = await request(`http://allowed.test${path}`, { dispatcher: agent });
    t.equal(res.statusCode, 200, path);
    const body = Buffer.from(await res.body.arrayBuffer());
    t.equal(body.length, BIG_SIZE, `${path} length`);
    t.equal(sha256(body), expected, `${path} bytes`);
  }
});

t.test('a streamed request body reaches the upstream unchanged', async (t) => {
  const body = bigBody(2 * 1024 * 1024 + 3);
  const parts = [body.subarray(0, 1000), body.subarray(1000, 700_000), body.subarray(700_000)];
  const res = await request('http://allowed.test/echo', { dispatcher: agent, method: 'POST', body: Readable.from(parts) });
  const echo = (await res.body.json()) as { bodySha256: string; bodyLength: number; method: string };
  t.equal(echo.method, 'POST');
  t.equal(echo.bodyLength, body.length);
  t.equal(echo.bodySha256, sha256(body));
});

t.test('a blocked URL gets the localised block page, never cached, without the URL', async (t) => {
  const res = await request('http://blocked.test/some/page?secret=1', { dispatcher: agent });
  t.equal(res.statusCode, 403);
  t.equal(res.headers['cache-control'], 'no-store');
  t.match(String(res.headers['content-type']), /text\/html/);
  const html = await res.body.text();
  t.match(html, /This page is blocked/);
  t.match(html, /Adult content/);
  t.match(html, /staff@venue\.test/);
  t.match(html, /[0-9A-Z]{5}-[0-9A-Z]{5}/, 'a reference code');
  t.notMatch(html, /blocked\.test|secret|127\.0\.0\.1/, 'no URL, host or client address on the page');

  const sq = await request('http://allowed.test/blocked/page', { dispatcher: agent, headers: { 'accept-language': 'sq-AL,sq;q=0.9,en;q=0.5' } });
  t.equal(sq.statusCode, 403);
  t.equal(sq.headers['content-language'], 'sq');
  t.match(await sq.body.text(), /Kjo faqe është e bllokuar/);

  const csam = await request('http://csam.test/x', { dispatcher: agent });
  t.equal(csam.statusCode, 403);
  t.match(await csam.body.text(), /images of child sexual abuse, as identified by a hotline list/);
});

t.test('curl -x fetches an allowed page and gets 403 for a blocked one', async (t) => {
  const ok = await runCmd('curl', ['-sS', '-x', proxyUrl, 'http://allowed.test/hello']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stdout.toString(), 'hello from http\n');
  const no = await runCmd('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxyUrl, 'http://blocked.test/']);
  t.equal(no.stdout.toString(), '403');
});

t.test('keep-alive: two requests on one client connection', async (t) => {
  const s = await openSocket(proxy.port('forward'));
  t.teardown(() => s.destroy());
  const req = 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n';
  s.write(req);
  const first = await readUntil(s, (b) => b.includes('hello from http\n'));
  t.match(first.toString(), /^HTTP\/1\.1 200/);
  s.write(req);
  const second = await readUntil(s, (b) => b.includes('hello from http\n'));
  t.match(second.toString(), /^HTTP\/1\.1 200/, 'second response on the same socket');
});

t.test('an Upgrade request is decided, then spliced; a blocked one gets 403', async (t) => {
  const s = await openSocket(proxy.port('forward'));
  t.teardown(() => s.destroy());
  s.write('GET http://allowed.test/ws HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  const head = await readUntil(s, (b) => b.includes('\r\n\r\n'));
  t.match(head.toString(), /^HTTP\/1\.1 101/);
  s.write('ping-bytes');
  const echoed = await readUntil(s, (b) => b.includes('ping-bytes'));
  t.ok(echoed.includes('ping-bytes'), 'bytes echoed through the upgraded connection');

  const blocked = await exchange(proxy.port('forward'), 'GET http://blocked.test/ws HTTP/1.1\r\nHost: blocked.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  t.match(blocked.toString(), /^HTTP\/1\.1 403/);
});

t.test('requests that are not proxy requests get 400', async (t) => {
  const origin = await exchange(proxy.port('forward'), 'GET /hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
  t.match(origin.toString(), /^HTTP\/1\.1 400/);
  const userinfo = await exchange(proxy.port('forward'), 'GET http://user@allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
  t.match(userinfo.toString(), /^HTTP\/1\.1 400/);
  const smuggle = await exchange(
    proxy.port('forward'),
    'POST http://allowed.test/echo HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  );
  t.match(smuggle.toString(), /^HTTP\/1\.1 400/, 'Content-Length with Transfer-Encoding is refused');
});

t.test('an unreachable upstream gives 502', async (t) => {
  const closed = await startHttpUpstream();
  const port = closed.port;
  await closed.close();
  // upstream.ports must allow the port, or the refusal would be a 403 before any connect.
  const obs = recordingObserver();
  const p = await startTestProxy(t, testOptions(hosts, { upstream: { ports: [443, 80, port] }, listeners: { forward: { host: '127.0.0.1', port: 0 } } }), testHooks(), obs);
  const a = new ProxyAgent({ uri: `http://127.0.0.1:${p.port('forward')}`, proxyTunnel: false });
  t.teardown(() => a.close());
  const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: a });
  t.equal(res.statusCode, 502);
  await res.body.dump();
  t.ok(obs.count('upstream connect') >= 1);
});

t.test('loopback destinations are refused unless allowPrivate or named in upstream.hosts', async (t) => {
  const obs = recordingObserver();
  const strict = await startTestProxy(t, testOptions(hosts, { upstream: { allowPrivate: false }, listeners: { forward: { host: '127.0.0.1', port: 0 } } }), testHooks(), obs);
  const a = new ProxyAgent({ uri: `http://127.0.0.1:${strict.port('forward')}`, proxyTunnel: false });
  t.teardown(() => a.close());
  for (const url of [`http://127.0.0.1:${up.port}/hello`, `http://[::ffff:127.0.0.1]:${up.port}/hello`, `http://localhost.:${up.port}/hello`]) {
    const res = await request(url, { dispatcher: a });
    await res.body.dump();
    t.ok(res.statusCode === 403 || res.statusCode === 502, `${url} refused (${res.statusCode})`);
  }
  t.ok(obs.count('upstream refused_destination') >= 2, 'counted as refused destinations');
  const named = await request('http://allowed.test/hello', { dispatcher: a });
  t.equal(named.statusCode, 200, 'a name from upstream.hosts is trusted');
  await named.body.dump();
  const wide = await startTestProxy(t, testOptions(hosts, { upstream: { ports: [443, 80, strict.port('forward')] }, listeners: { forward: { host: '127.0.0.1', port: 0 } } }), testHooks(), recordingObserver());
  const w = new ProxyAgent({ uri: `http://127.0.0.1:${wide.port('forward')}`, proxyTunnel: false });
  t.teardown(() => w.close());
  const self = await request(`http://127.0.0.1:${strict.port('forward')}/hello`, { dispatcher: w });
  await self.body.dump();
  t.equal(self.statusCode, 400, 'sanity: the main proxy (allowPrivate) reaches another proxy, which refuses origin-form');
  const loop = await request(`http://127.0.0.1:${proxy.port('forward')}/hello`, { dispatcher: agent });
  await loop.body.dump();
  t.equal(loop.statusCode, 403, 'but never itself, even with allowPrivate');
});

t.test('clients outside the client networks are refused with 403', async (t) => {
  const obs = recordingObserver();
  const { CidrSet } = await import('../../policy/ip.js');
  const narrow = await startTestProxy(
    t,
    testOptions(hosts, { clients: CidrSet.parse(['127.0.0.2/32']), listeners: { forward: { host: '127.0.0.1', port: 0 } } }),
    testHooks(),
    obs,
  );
  const refused = await exchange(narrow.port('forward'), 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n', '127.0.0.1');
  t.match(refused.toString(), /^HTTP\/1\.1 403/);
  t.equal(obs.count('limit client_forbidden'), 1);
  const ok = await exchange(narrow.port('forward'), 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n', '127.0.0.2');
  t.match(ok.toString(), /^HTTP\/1\.1 200[\s\S]*hello from http/);
});


t.test('ownEndpoints (the admin listener) are refused even with allowPrivate; wildcard hosts cover loopback', async (t) => {
  for (const host of ['127.0.0.1', '0.0.0.0']) {
    const obs = recordingObserver();
    const p = await startTestProxy(
      t,
      { ...testOptions(hosts, { upstream: { ports: [443, 80, up.port] }, listeners: { forward: { host: '127.0.0.1', port: 0 } } }), ownEndpoints: [{ host, port: up.port }] },
      testHooks(),
      obs,
    );
    const a = new ProxyAgent({ uri: `http://127.0.0.1:${p.port('forward')}`, proxyTunnel: false });
    t.teardown(() => a.close());
    const res = await request(`http://127.0.0.1:${up.port}/hello`, { dispatcher: a });
    await res.body.dump();
    t.equal(res.statusCode, 403, `own endpoint ${host}:${up.port} refused`);
    t.equal(obs.count('upstream refused_destination'), 1);
  }
});

t.test('a throwing observer does not break traffic; throwing hooks fail closed', async (t) => {
  const throwing = new Proxy(recordingObserver(), {
    get: (target, key) => (key === 'events' || key === 'count' ? Reflect.get(target, key) : () => { throw new Error('observer down'); }),
  });
  const origWrite = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write; // combineObservers reports once on stderr
  t.teardown(() => {
    process.stderr.write = origWrite;
  });
  const p = await startTestProxy(t, testOptions(hosts, { listeners: { forward: { host: '127.0.0.1', port: 0 } } }), testHooks(), throwing);
  const a = new ProxyAgent({ uri: `http://127.0.0.1:${p.port('forward')}`, proxyTunnel: false });
  t.teardown(() => a.close());
  const ok = await request('http://allowed.test/hello', { dispatcher: a });
  t.equal(ok.statusCode, 200);
  t.equal(await ok.body.text(), 'hello from http\n');

  const boom = () => {
    throw new Error('policy bug');
  };
  const q = await startTestProxy(
    t,
    testOptions(hosts, { listeners: { forward: { host: '127.0.0.1', port: 0 } } }),
    { onConnect: boom, onClientHello: boom, onRequest: boom },
    recordingObserver(),
  );
  const b = new ProxyAgent({ uri: `http://127.0.0.1:${q.port('forward')}`, proxyTunnel: false });
  t.teardown(() => b.close());
  const res = await request('http://allowed.test/hello', { dispatcher: b });
  t.equal(res.statusCode, 503, 'fail closed');
  t.match(await res.body.text(), /Filtering is not ready/);
  const c = await exchange(q.port('forward'), 'CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n');
  t.match(c.toString(), /^HTTP\/1\.1 503/);
});
