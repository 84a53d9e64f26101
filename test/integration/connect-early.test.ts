/**
 * The CONNECT step opens its connection to the checked destination while the client sends its
 * ClientHello (proxy/upstream.ts, EarlyConnect). What must hold, seen from a raw TCP upstream that
 * records every connection it accepts and every byte it receives:
 * - an allowed hello is the first thing the upstream receives, byte-exact, on that one connection;
 * - a blocked (fronted) SNI, a client that goes silent, one that closes, and bytes that are not TLS
 *   leave the upstream a connection that closes without a single byte on it;
 * - a server that speaks first (allowed with tls.notTls: allow) loses nothing before the splice;
 * - a destination that hung up before the hello arrived is connected to again.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { captureClientHello } from '../helpers/hello-capture.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { isAlert, openSocket, readAll, readUntil } from '../helpers/sockets.js';

interface Accepted {
  bytes: Buffer;
  closed: boolean;
  socket: Socket;
}

/** A TCP server that records what each accepted connection received; `greet` is written on accept. */
async function recorder(opts: { greet?: string; hangUp?: boolean } = {}): Promise<{ port: number; accepted: Accepted[]; server: Server }> {
  const accepted: Accepted[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const a: Accepted = { bytes: Buffer.alloc(0), closed: false, socket };
    accepted.push(a);
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => (a.bytes = Buffer.concat([a.bytes, d])));
    // allowHalfOpen: the proxy's FIN is seen as 'end' while this side stays open.
    socket.on('end', () => (a.closed = true));
    socket.on('close', () => (a.closed = true));
    if (opts.greet) socket.write(opts.greet);
    if (opts.hangUp) socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, accepted, server };
}

/** Wait (bounded: a guard, not a threshold) until `cond` holds. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

async function connectVia(port: number, authority: string): Promise<Socket> {
  const s = await openSocket(port);
  s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  const head = await readUntil(s, (b) => b.includes('\r\n\r\n'));
  if (!head.toString('latin1').startsWith('HTTP/1.1 200 ')) throw new Error(`no 200: ${head.toString('latin1')}`);
  return s;
}

const helloAllowed = await captureClientHello('node', 'allowed.test');
const helloBlocked = await captureClientHello('node', 'blocked.test');

t.test('allowed: the hello is the first byte on the one early connection; refusals send nothing upstream', async (t) => {
  const up = await recorder();
  t.teardown(() => up.server.close());
  const observer = recordingObserver();
  const proxy = await startTestProxy(t, testOptions({ 'allowed.test': `127.0.0.1:${up.port}` }, { tls: { clientHelloTimeout: 300 } }), testHooks(), observer);
  const port = proxy.port('forward');

  await t.test('allowed SNI', async (t) => {
    const before = up.accepted.length;
    const s = await connectVia(port, 'allowed.test:443');
    t.ok(await until(() => up.accepted.length === before + 1), 'the upstream connection is opened while the client has not sent its hello yet');
    t.equal(up.accepted[before]!.bytes.length, 0, 'and nothing is written on it before the hello is decided');
    s.write(helloAllowed);
    t.ok(await until(() => up.accepted[before]!.bytes.length >= helloAllowed.length));
    t.ok(up.accepted[before]!.bytes.equals(helloAllowed), 'the hello arrives byte-exact');
    t.equal(up.accepted.length, before + 1, 'on that connection, no other');
    s.destroy();
    t.ok(await until(() => up.accepted[before]!.closed), 'and it ends with the client');
  });

  const refusals: [string, (s: Socket) => void, (b: Buffer) => boolean][] = [
    ['fronted SNI (blocked.test inside allowed.test)', (s) => s.write(helloBlocked), (b) => isAlert(b, 49)],
    ['silence until the ClientHello timeout', () => {}, (b) => isAlert(b, 40)],
    ['bytes that are not TLS', (s) => s.write('SSH-2.0-x\r\n'), (b) => isAlert(b, 50)],
  ];
  for (const [name, act, answer] of refusals) {
    await t.test(name, async (t) => {
      const before = up.accepted.length;
      const s = await connectVia(port, 'allowed.test:443');
      const reply = readAll(s);
      act(s);
      t.ok(answer(await reply), 'the client gets its alert');
      t.ok(await until(() => up.accepted.length === before + 1 && up.accepted[before]!.closed), 'the early connection is closed');
      t.equal(up.accepted[before]!.bytes.length, 0, 'without a byte sent upstream');
    });
  }

  await t.test('the client closes before its hello', async (t) => {
    const before = up.accepted.length;
    const s = await connectVia(port, 'allowed.test:443');
    t.ok(await until(() => up.accepted.length === before + 1));
    s.destroy();
    t.ok(await until(() => up.accepted[before]!.closed), 'the early connection is closed at once, not at the hello timeout');
    t.equal(up.accepted[before]!.bytes.length, 0);
  });
  t.ok(observer.count('upstream') === 0, `no upstream error counted for connections closed unused (${observer.events.filter((e) => e.startsWith('upstream')).join(', ')})`);
});

t.test('a server that speaks first loses nothing before the splice (tls.notTls: allow)', async (t) => {
  const up = await recorder({ greet: 'SSH-2.0-upstream\r\n' });
  t.teardown(() => up.server.close());
  const proxy = await startTestProxy(t, testOptions({ 'ssh.test': `127.0.0.1:${up.port}` }, { tls: { notTls: 'allow' }, upstream: { ports: [443, 22] } }), testHooks(), recordingObserver());
  const s = await connectVia(proxy.port('forward'), 'ssh.test:22');
  await sleep(100); // the greeting is in the early connection's buffer by now
  const got = readUntil(s, (b) => b.includes('SSH-2.0-upstream\r\n'), 5000);
  s.write('SSH-2.0-client\r\n');
  t.match((await got).toString('latin1'), /^SSH-2\.0-upstream\r\n/, 'the greeting reaches the client once the splice is made');
  t.ok(await until(() => up.accepted[0]!.bytes.toString('latin1') === 'SSH-2.0-client\r\n'), 'and the client bytes reach the server');
  t.equal(up.accepted.length, 1);
  s.destroy();
});

t.test('a destination that hung up before the hello is connected to again', async (t) => {
  const up = await recorder({ hangUp: true });
  t.teardown(() => up.server.close());
  const proxy = await startTestProxy(t, testOptions({ 'allowed.test': `127.0.0.1:${up.port}` }), testHooks(), recordingObserver());
  const s = await connectVia(proxy.port('forward'), 'allowed.test:443');
  t.ok(await until(() => up.accepted.length === 1 && up.accepted[0]!.closed), 'the early connection was closed by the server');
  s.write(helloAllowed);
  t.ok(await until(() => up.accepted.length === 2), 'a second connection is opened for the hello');
  s.destroy();
});
