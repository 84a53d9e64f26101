/**
 * Plain HTTP: an upstream that takes the request and never answers holds neither the upstream
 * connection nor the guest's past limits.idleTimeout, on a new upstream connection and on one
 * reused from the keep-alive pool (the request's timeout comes from the agent's socket timeout,
 * not from a per-request setTimeout: proxy/http-forward.ts). The guest's own connection has the
 * same idle timeout, so which of the two fires first is a race: the guest gets a 504
 * (ERR_UPSTREAM_TIMEOUT) or its connection closed, never a wait without end.
 * The upstream is a raw TCP server: its first request on each connection is answered (keep-alive),
 * a request for /hang is read and left unanswered.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { openSocket, readUntil } from '../helpers/sockets.js';

const held: Socket[] = [];
const upstream = createServer((s) => {
  held.push(s);
  s.on('error', () => {});
  let text = '';
  s.on('data', (c: Buffer) => {
    text += c.toString('latin1');
    let end;
    while ((end = text.indexOf('\r\n\r\n')) >= 0) {
      const head = text.slice(0, end);
      text = text.slice(end + 4);
      if (/^GET \/hang /.test(head)) continue; // read, never answered
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n');
    }
  });
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => {
  for (const s of held) s.destroy();
  upstream.close();
});
const port = (upstream.address() as { port: number }).port;
const observer = recordingObserver();
const idleTimeout = 600;
const proxy = await startTestProxy(t, testOptions({ 'slow.test': `127.0.0.1:${port}` }, { limits: { idleTimeout } }), testHooks(), observer);

/** Resolves when the upstream's socket `s` has closed, with the time it took from `since`. */
function closedAfter(s: Socket, since: number): Promise<number> {
  return new Promise((r) => (s.destroyed ? r(Date.now() - since) : s.once('close', () => r(Date.now() - since))));
}

async function get(s: Socket, path: string): Promise<string> {
  const answer = readUntil(s, (b) => {
    const text = b.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    const length = /\r\ncontent-length: (\d+)/i.exec(text);
    return end >= 0 && length !== null && text.length - end - 4 >= Number(length[1]);
  }, 10_000);
  s.write(`GET http://slow.test${path} HTTP/1.1\r\nHost: slow.test\r\n\r\n`);
  return (await answer).toString('latin1');
}

t.test('a new upstream connection that never answers: closed after the idle timeout', async (t) => {
  const s = await openSocket(proxy.port('forward'));
  t.teardown(() => s.destroy());
  const started = Date.now();
  const text = await get(s, '/hang');
  t.match(text, /^(HTTP\/1\.1 504 |)$|^HTTP\/1\.1 504 /, 'a 504 or the connection closed');
  const took = await closedAfter(held.at(-1)!, started);
  t.ok(took >= idleTimeout - 50 && took < 5 * idleTimeout, `the upstream connection closed after the idle timeout (${took} ms)`);
});

t.test('a pooled upstream connection that stops answering: closed after the idle timeout', async (t) => {
  const s = await openSocket(proxy.port('forward'));
  t.teardown(() => s.destroy());
  t.match(await get(s, '/one'), /^HTTP\/1\.1 200 /, 'first request answered (the upstream socket goes back to the pool)');
  const connections = held.length;
  const s2 = await openSocket(proxy.port('forward'));
  t.teardown(() => s2.destroy());
  const started = Date.now();
  const text = await get(s2, '/hang');
  t.equal(held.length, connections, 'the pooled upstream connection was reused');
  t.match(text, /^(HTTP\/1\.1 504 |)$|^HTTP\/1\.1 504 /, 'a 504 or the connection closed');
  const took = await closedAfter(held.at(-1)!, started);
  t.ok(took >= idleTimeout - 50 && took < 5 * idleTimeout, `the upstream connection closed after the idle timeout (${took} ms)`);
  t.equal(observer.count('upstream other'), 0, 'no other upstream failure');
});
