/**
 * Limits: header size (431), headers timeout (408), idle timeout, total and per-client connections
 * (503 or close), each counted, while another client still gets its page; and close(drainMs).
 */
import t from 'tap';
import { createServer } from 'node:net';
import { bigBody, sha256, startHttpUpstream } from '../helpers/upstream.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange, isAlert, openSocket, readAll, readUntil } from '../helpers/sockets.js';
import { clientHello } from '../helpers/client-hello-builder.js';

const up = await startHttpUpstream();
t.teardown(() => up.close());
const hosts = { 'allowed.test': `127.0.0.1:${up.port}` };
const GET = 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n';

/** A page fetched by a second client (another loopback address) while a limit is being hit. */
async function otherClientGetsPage(port: number): Promise<boolean> {
  const res = await exchange(port, GET, '127.0.0.2');
  return /^HTTP\/1\.1 200[\s\S]*hello from http/.test(res.toString());
}

t.test('oversized request headers get 431, counted; others carry on', async (t) => {
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, testOptions(hosts, { limits: { maxHeaderBytes: 1024 } }), testHooks(), obs);
  const port = proxy.port('forward');
  const res = await exchange(port, `GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
  t.match(res.toString(), /^HTTP\/1\.1 431/);
  t.equal(obs.count('limit header_size'), 1);
  t.ok(await otherClientGetsPage(port));
});

t.test('a client too slow with its headers gets 408, counted; others carry on', async (t) => {
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, testOptions(hosts, { limits: { headersTimeout: 300 } }), testHooks(), obs);
  const port = proxy.port('forward');
  const slow = await openSocket(port);
  const answer = readAll(slow);
  slow.write('GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\n');
  t.ok(await otherClientGetsPage(port), 'another client is served meanwhile');
  t.match((await answer).toString(), /^HTTP\/1\.1 408/);
  t.equal(obs.count('limit headers_timeout'), 1);
});

t.test('the first-head reader of the forward listener: CONNECT heads too slow, silent or too large get 408/431, counted', async (t) => {
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, testOptions(hosts, { limits: { headersTimeout: 300, maxHeaderBytes: 1024 } }), testHooks(), obs);
  const port = proxy.port('forward');
  const slow = await openSocket(port);
  const slowAnswer = readAll(slow);
  slow.write('CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed');
  const silent = await openSocket(port);
  const silentAnswer = readAll(silent);
  t.ok(await otherClientGetsPage(port), 'another client is served meanwhile');
  t.match((await slowAnswer).toString(), /^HTTP\/1\.1 408/, 'an unfinished CONNECT head: 408');
  t.match((await silentAnswer).toString(), /^HTTP\/1\.1 408/, 'a connection that never sends a byte: 408');
  t.equal(obs.count('limit headers_timeout'), 2);
  const big = await exchange(port, `CONNECT allowed.test:443 HTTP/1.1\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`);
  t.match(big.toString(), /^HTTP\/1\.1 431/, 'a CONNECT head over maxHeaderBytes: 431');
  t.equal(obs.count('limit header_size'), 1);
  const smuggle = await exchange(port, 'CONNECT allowed.test:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello');
  t.match(smuggle.toString(), /^HTTP\/1\.1 400/, 'a CONNECT with content: 400');
  t.notOk(obs.events.some((e) => e.startsWith('verdict')), 'none of them reached a decision');
});

t.test('plain HTTP inside a CONNECT tunnel has the headers timeout too', async (t) => {
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, testOptions(hosts, { limits: { headersTimeout: 300 } }), testHooks(), obs);
  const s = await openSocket(proxy.port('forward'));
  const answer = readAll(s);
  s.write('CONNECT allowed.test:80 HTTP/1.1\r\nHost: allowed.test:80\r\n\r\n');
  s.write('GET /hello HTTP/1.1\r\nHost: allowed.test\r\n'); // and never the blank line
  const text = (await answer).toString();
  t.match(text, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 408/, 'the tunnel, then 408 for the unfinished head inside it');
  t.equal(obs.count('limit headers_timeout'), 1);
});

t.test('an idle tunnel is closed after idleTimeout, counted', async (t) => {
  // A TCP echo server stands in for a TLS server: the tunnel does not look past the ClientHello.
  const echo = createServer((c) => {
    c.on('error', () => {});
    c.pipe(c);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const echoPort = (echo.address() as { port: number }).port;
  const obs = recordingObserver();
  const proxy = await startTestProxy(
    t,
    testOptions({ ...hosts, 'echo.test': `127.0.0.1:${echoPort}` }, { limits: { idleTimeout: 300 } }),
    testHooks(),
    obs,
  );
  const s = await openSocket(proxy.port('forward'));
  s.write('CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n');
  await readUntil(s, (b) => b.includes('\r\n\r\n'));
  const hello = clientHello({ sni: 'echo.test' });
  s.write(hello);
  const got = await readAll(s);
  t.same(got, hello, 'the tunnel carried the bytes, then closed when idle');
  t.equal(obs.count('limit idle_timeout'), 1, 'idle close counted once');
});

t.test('per-client connection limit: the extra connection gets 503, another client is served', async (t) => {
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, testOptions(hosts, { limits: { maxConnectionsPerClient: 2 } }), testHooks(), obs);
  const port = proxy.port('forward');
  const held = [await openSocket(port), await openSocket(port)];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const third = await exchange(port, GET);
  t.match(third.toString(), /^HTTP\/1\.1 503/);
  t.equal(obs.count('limit connections_per_client'), 1);
  t.ok(await otherClientGetsPage(port));
  const tlsRefused = await Promise.all([openSocket(proxy.port('tls')), openSocket(proxy.port('tls'))]);
  t.teardown(() => tlsRefused.forEach((s) => s.destroy()));
  const refused = await exchange(proxy.port('tls'), clientHello({ sni: 'allowed.test' }));
  t.ok(isAlert(refused, 80), `the TLS listener answers an internal_error alert over the limit (ERR_LIMIT in the error table): ${refused.toString('hex')}`);
});

t.test('total connection limit: 503 when full, served again after one closes', async (t) => {
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, testOptions(hosts, { limits: { maxConnections: 2 } }), testHooks(), obs);
  const port = proxy.port('forward');
  const a = await openSocket(port, '127.0.0.3');
  const b = await openSocket(port, '127.0.0.4');
  t.teardown(() => [a, b].forEach((s) => s.destroy()));
  const full = await exchange(port, GET, '127.0.0.5');
  t.match(full.toString(), /^HTTP\/1\.1 503/);
  t.equal(obs.count('limit connections'), 1);
  const closedA = new Promise((r) => a.once('close', r));
  a.destroy();
  await closedA;
  while (proxy.connections() > 1) await new Promise((r) => setTimeout(r, 10));
  t.ok(await otherClientGetsPage(port), 'served once a slot is free');
});

t.test('close(drainMs): stops accepting, lets an in-flight download finish, then resolves', async (t) => {
  const proxy = await startTestProxy(t, testOptions(hosts), testHooks(), recordingObserver());
  const port = proxy.port('forward');
  const s = await openSocket(port);
  s.write('GET http://allowed.test/chunked HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
  const headers = await readUntil(s, (b) => b.includes('\r\n\r\n'));
  t.match(headers.toString(), /^HTTP\/1\.1 200/);
  const rest = readAll(s);
  const closing = proxy.close(10_000);
  await t.rejects(openSocket(port), /ECONNREFUSED/, 'no new connections');
  const all = Buffer.concat([headers, await rest]);
  await closing;
  // De-chunk what came after the head and compare with the body the upstream sent.
  const raw = all.subarray(all.indexOf('\r\n\r\n') + 4);
  const parts: Buffer[] = [];
  let i = 0;
  while (i < raw.length) {
    const eol = raw.indexOf('\r\n', i);
    const size = parseInt(raw.subarray(i, eol).toString(), 16);
    if (!size) break;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  t.equal(sha256(Buffer.concat(parts)), sha256(bigBody()), 'the in-flight body completed during the drain');
  t.equal(proxy.connections(), 0);
});

t.test('close(drainMs) destroys what is still open at the deadline', async (t) => {
  const proxy = await startTestProxy(t, testOptions(hosts), testHooks(), recordingObserver());
  const s = await openSocket(proxy.port('forward'));
  s.write('CONNECT allowed.test:80 HTTP/1.1\r\nHost: allowed.test:80\r\n\r\n');
  await readUntil(s, (b) => b.includes('\r\n\r\n'));
  const closed = new Promise((r) => s.once('close', r));
  await proxy.close(100);
  await closed;
  t.equal(proxy.connections(), 0, 'nothing left open');
});
