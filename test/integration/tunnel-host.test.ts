/**
 * Plain HTTP inside a CONNECT tunnel is decided on the tunnel's host (issue 22, finding 7): the
 * bytes go to the CONNECT authority, so a Host header or absolute URI naming another host or port
 * gets 421 and never reaches the origin, while the tunnel's own host, in any spelling, is decided
 * and forwarded as before. The hooks here block one URL of an allowed host (a URL-list entry), the
 * case a Host header could once carry past the lists. Real servers on port 0, raw sockets.
 */
import { createServer } from 'node:http';
import t from 'tap';
import type { Hooks } from '../../proxy/hooks.js';
import { allow, block, recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { openSocket, readAll, readUntil } from '../helpers/sockets.js';

const seen: { host: string | undefined; url: string | undefined }[] = [];
const origin = createServer((req, res) => {
  seen.push({ host: req.headers.host, url: req.url });
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`origin saw ${req.url}\n`);
});
await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => (origin.closeAllConnections(), origin.close(() => r()))));
const originPort = (origin.address() as { port: number }).port;

/** listed.test is allowed as a host; its /page is on a URL list. */
const decided: string[] = [];
const hooks: Hooks = {
  ...testHooks(),
  onRequest(url) {
    decided.push(url);
    // A trailing dot is dropped as the policy's canonicalisation drops it (policy/canonicalize.ts).
    const u = new URL(url);
    return { decision: u.pathname === '/page' && u.hostname.replace(/\.$/, '') === 'listed.test' ? block('csam') : allow };
  },
};
const hosts = { 'listed.test': `127.0.0.1:${originPort}`, 'other.test': `127.0.0.1:${originPort}` };
const obs = recordingObserver();
const proxy = await startTestProxy(t, testOptions(hosts), hooks, obs);

/** CONNECT listed.test:80, then the bytes given; everything the proxy sends back. */
async function inTunnel(request: string): Promise<string> {
  const s = await openSocket(proxy.port('forward'));
  s.write('CONNECT listed.test:80 HTTP/1.1\r\nHost: listed.test:80\r\n\r\n');
  const head = await readUntil(s, (b) => b.includes('\r\n\r\n'));
  if (!/^HTTP\/1\.1 200 /.test(head.toString('latin1'))) throw new Error(`CONNECT refused: ${head.toString('latin1')}`);
  s.write(request);
  return (await readAll(s)).toString('latin1');
}

t.test('a Host or absolute URI naming another host or port: 421, and the origin sees nothing', async (t) => {
  const before = seen.length;
  const attempts: [string, string][] = [
    ['Host: other.test', 'GET /page HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n'],
    ['Host: other.test:80', 'GET /page HTTP/1.1\r\nHost: other.test:80\r\nConnection: close\r\n\r\n'],
    ['absolute URI of another host', 'GET http://other.test/page HTTP/1.1\r\nHost: listed.test\r\nConnection: close\r\n\r\n'],
    ['absolute URI of another host, matching Host', 'GET http://other.test/page HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n'],
    ['the same host on another port', 'GET /page HTTP/1.1\r\nHost: listed.test:8080\r\nConnection: close\r\n\r\n'],
    ['a subdomain', 'GET /page HTTP/1.1\r\nHost: www.listed.test\r\nConnection: close\r\n\r\n'],
    ['an IP address', `GET /page HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\nConnection: close\r\n\r\n`],
    ['an upgrade', 'GET /page HTTP/1.1\r\nHost: other.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'],
  ];
  for (const [what, request] of attempts) {
    const res = await inTunnel(request);
    t.match(res, /^HTTP\/1\.1 421 /, `${what}: 421`);
    t.notMatch(res, /origin saw/, `${what}: nothing from the origin`);
  }
  t.equal(seen.length, before, 'the origin was never asked');
  t.notOk(decided.some((u) => u.includes('other.test')), 'another host was never decided on in place of the tunnel\'s');
});

t.test('the tunnel\'s own host, in any spelling, is decided and forwarded', async (t) => {
  const listed = ['Host: listed.test', 'Host: LISTED.TEST', 'Host: listed.test.', 'Host: listed.test:80'];
  for (const host of listed) {
    const res = await inTunnel(`GET /page HTTP/1.1\r\n${host}\r\nConnection: close\r\n\r\n`);
    t.match(res, /^HTTP\/1\.1 403 /, `${host}: the listed URL is blocked`);
  }
  const abs = await inTunnel('GET http://listed.test/page HTTP/1.1\r\nHost: listed.test\r\nConnection: close\r\n\r\n');
  t.match(abs, /^HTTP\/1\.1 403 /, 'absolute URI of the tunnel\'s host: blocked');
  const ok = await inTunnel('GET /fine HTTP/1.1\r\nHost: listed.test\r\nConnection: close\r\n\r\n');
  t.match(ok, /^HTTP\/1\.1 200 [^]*origin saw \/fine/, 'another path of the tunnel\'s host: forwarded');
  t.equal(seen.at(-1)?.host, 'listed.test', 'with the Host the client sent');
});

t.test('keep-alive: a misdirected request ends the connection; the one before it was answered', async (t) => {
  const res = await inTunnel('GET /fine HTTP/1.1\r\nHost: listed.test\r\n\r\nGET /page HTTP/1.1\r\nHost: other.test\r\n\r\nGET /page HTTP/1.1\r\nHost: other.test\r\n\r\n');
  t.match(res, /^HTTP\/1\.1 200 [^]*HTTP\/1\.1 421 /, '200, then 421');
  t.equal(res.match(/HTTP\/1\.1 421 /g)?.length, 1, 'and nothing after it');
});
