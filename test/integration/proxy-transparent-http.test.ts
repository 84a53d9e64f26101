/**
 * The transparent HTTP listener (traffic redirected from :80): routed by the Host header, decided
 * on the full URL, blocked with the block page; SafeSearch sends the request to the safe front end
 * with the guest's Host header.
 */
import t from 'tap';
import { request } from 'undici';
import { bigBody, sha256, startHttpUpstream } from '../helpers/upstream.js';
import { runCmd } from '../helpers/commands.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange } from '../helpers/sockets.js';

const up = await startHttpUpstream();
t.teardown(() => up.close());
const hosts = {
  'allowed.test': `127.0.0.1:${up.port}`,
  'blocked.test': `127.0.0.1:${up.port}`,
  'safe.search.test': `127.0.0.1:${up.port}`,
  'search.test': '127.0.0.1:1',
};
const observer = recordingObserver();
const hooks = testHooks({ redirect: { 'search.test': 'safe.search.test' } });
const proxy = await startTestProxy(t, testOptions(hosts), hooks, observer);
const base = `http://127.0.0.1:${proxy.port('http')}`;

t.test('routed by Host: allowed content byte-exact, URL decided with the Host', async (t) => {
  const res = await request(`${base}/big`, { headers: { host: 'allowed.test' } });
  t.equal(res.statusCode, 200);
  t.equal(sha256(Buffer.from(await res.body.arrayBuffer())), sha256(bigBody()));
  const echo = await request(`${base}/echo?q=1`, { headers: { host: 'allowed.test' } });
  const e = (await echo.body.json()) as { url: string; headers: Record<string, string> };
  t.equal(e.url, '/echo?q=1');
  t.equal(e.headers['host'], 'allowed.test');
  t.match(e.headers['via'], /safespot/);
  t.ok(hooks.calls.includes('request http://allowed.test/echo?q=1'));
});

t.test('curl with a Host header: blocked page in Albanian, allowed page', async (t) => {
  const blocked = await runCmd('curl', ['-sS', '-i', '-H', 'Host: blocked.test', '-H', 'Accept-Language: sq', `${base}/`]);
  const text = blocked.stdout.toString();
  t.match(text, /^HTTP\/1\.1 403/);
  t.match(text, /cache-control: no-store/i);
  t.match(text, /Përmbajtje për të rritur/);
  const ok = await runCmd('curl', ['-sS', '-H', 'Host: allowed.test', `${base}/hello`]);
  t.equal(ok.stdout.toString(), 'hello from http\n');
});

t.test('no usable Host header gives 400', async (t) => {
  const none = await exchange(proxy.port('http'), 'GET / HTTP/1.0\r\n\r\n');
  t.match(none.toString(), /^HTTP\/1\.1 400/);
  const bad = await exchange(proxy.port('http'), 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n');
  t.match(bad.toString(), /^HTTP\/1\.1 400/);
});

t.test('CONNECT on the transparent listener is refused', async (t) => {
  const r = await exchange(proxy.port('http'), 'CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n');
  t.match(r.toString(), /^HTTP\/1\.1 405/);
});

t.test('SafeSearch: the request goes to the safe front end with the guest Host header', async (t) => {
  const res = await request(`${base}/echo`, { headers: { host: 'search.test' } });
  t.equal(res.statusCode, 200);
  const e = (await res.body.json()) as { headers: Record<string, string> };
  t.equal(e.headers['host'], 'search.test');
});

t.test('a Host naming the proxy itself is refused (no loops)', async (t) => {
  const res = await request(`${base}/hello`, { headers: { host: `127.0.0.1:${proxy.port('http')}` } });
  t.equal(res.statusCode, 403);
  await res.body.dump();
  t.ok(observer.count('upstream refused_destination') >= 1);
});
