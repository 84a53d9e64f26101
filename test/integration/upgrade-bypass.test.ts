/**
 * An Upgrade request must not turn a connection into an unfiltered splice (issue 22, finding 1).
 * A raw upstream that answers every request with an ordinary 200 (never 101) and records what it
 * received; the client sends an allowed Upgrade request, then (pipelined, or after a pause) a
 * request for a blocked host on the same connection. Nothing after the upgrade request may reach
 * the upstream, on the forward and the transparent HTTP listeners. A real 101 still splices.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { openSocket, readAll, readUntil } from '../helpers/sockets.js';

/** A plain-TCP origin that answers each request head with a 200 and keeps the connection open. */
async function startNeverUpgrades(): Promise<{ port: number; received: () => string; close: () => Promise<void> }> {
  let seen = '';
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    let buf = '';
    s.on('data', (chunk) => {
      seen += chunk.toString('latin1');
      buf += chunk.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        buf = buf.slice(end + 4);
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n');
      }
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    received: () => seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const origin = await startNeverUpgrades();
t.teardown(() => origin.close());
const hosts = { 'allowed.test': `127.0.0.1:${origin.port}`, 'blocked.test': `127.0.0.1:${origin.port}` };
const hooks = testHooks();
const proxy = await startTestProxy(t, testOptions(hosts), hooks, recordingObserver());

const UPGRADE = (target: string): string => `GET ${target} HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
const FOLLOW = 'GET /secret.html HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /x HTTP/1.1\r\nHost: blocked.test\r\n\r\n';

for (const listener of ['forward', 'http'] as const) {
  const target = listener === 'forward' ? 'http://allowed.test/ws' : '/ws';
  for (const when of ['pipelined', 'delayed'] as const) {
    t.test(`${listener} listener, follow-ups ${when}: nothing after a refused upgrade reaches the upstream`, async (t) => {
      const before = origin.received().length;
      const s = await openSocket(proxy.port(listener));
      t.teardown(() => s.destroy());
      if (when === 'pipelined') s.write(UPGRADE(target) + FOLLOW);
      else {
        s.write(UPGRADE(target));
        await readUntil(s, (b) => b.includes('\r\n\r\n'));
        s.write(FOLLOW);
      }
      const got = (await readAll(s)).toString('latin1');
      const seen = origin.received().slice(before);
      t.notMatch(seen, /secret\.html/, 'the listed path never reached the upstream');
      t.notMatch(seen, /blocked\.test/, 'the blocked host never reached the upstream');
      if (when === 'pipelined') {
        t.match(seen, /^GET \/ws HTTP\/1\.1/, 'the decided upgrade request did');
        t.ok((got.match(/HTTP\/1\.1 /g) ?? []).length <= 1, 'at most one response came back');
      } else t.equal((got.match(/HTTP\/1\.1 200/g) ?? []).length, 0, 'no 200 for the follow-ups');
    });
  }
}

t.test('an upstream that answers 101 for another protocol is refused, never spliced', async (t) => {
  const odd = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n'));
  });
  await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
  t.teardown(() => odd.close());
  const p2 = await startTestProxy(t, testOptions({ 'allowed.test': `127.0.0.1:${(odd.address() as { port: number }).port}` }), testHooks(), recordingObserver());
  const s = await openSocket(p2.port('forward'));
  t.teardown(() => s.destroy());
  s.write(UPGRADE('http://allowed.test/ws'));
  const got = (await readAll(s)).toString('latin1');
  t.match(got, /^HTTP\/1\.1 502/);
});
