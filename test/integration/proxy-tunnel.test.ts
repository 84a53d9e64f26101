/**
 * The splice of a CONNECT tunnel (proxy/tunnel.ts), through a real proxy to raw TCP upstreams on
 * port 0: bytes pass both ways byte-exact under backpressure, a client FIN reaches the upstream
 * while the answer still flows back (half-close), a reset on either side ends the other side,
 * and many tunnels leave no socket open and no listener-leak warning.
 */
import t from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { openSocket, readAll, readUntil } from '../helpers/sockets.js';
import { clientHello } from '../helpers/client-hello-builder.js';

const warnings: string[] = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/** The upstream's side of the last accepted connection of each server, for the reset tests. */
const accepted = new Map<string, Socket[]>();
function track(name: string, s: Socket): void {
  s.on('error', () => {});
  (accepted.get(name) ?? accepted.set(name, []).get(name)!).push(s);
}

// half.test: reads everything until the client's FIN, then answers with the length and hash of
// what it got, and closes. Only works if the proxy passes the FIN on and keeps the way back open.
const half = createServer({ allowHalfOpen: true }, (s) => {
  track('half', s);
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('end', () => {
    const all = Buffer.concat(chunks);
    s.end(`${all.length} ${sha(all)}\n`);
  });
});
// big.test: after the first bytes, sends 32 MiB (more than the kernel buffers on the way hold) and closes.
const BIG = randomBytes(32 << 20);
const big = createServer((s) => {
  track('big', s);
  s.once('data', () => s.end(BIG));
});
// reset.test: after the first bytes, sends a little and then resets the connection.
const reset = createServer((s) => {
  track('reset', s);
  s.once('data', () => s.write('partial', () => s.resetAndDestroy()));
});
// sink.test: reads and keeps the connection open.
const sink = createServer((s) => {
  track('sink', s);
  s.resume();
});
const ports: Record<string, number> = {};
for (const [name, server] of Object.entries({ half, big, reset, sink })) {
  ports[name] = await listen(server);
  t.teardown(() => server.close());
}
const hosts = Object.fromEntries(Object.entries(ports).map(([n, p]) => [`${n}.test`, `127.0.0.1:${p}`]));
const observer = recordingObserver();
const proxy = await startTestProxy(t, testOptions(hosts), testHooks(), observer);

/** CONNECT to `name.test`, 200 read, the ClientHello sent: the tunnel is spliced. */
async function tunnel(name: string): Promise<{ s: Socket; hello: Buffer }> {
  const s = await openSocket(proxy.port('forward'));
  s.write(`CONNECT ${name}.test:443 HTTP/1.1\r\nHost: ${name}.test:443\r\n\r\n`);
  const head = await readUntil(s, (b) => b.includes('\r\n\r\n'));
  if (!head.toString('latin1').startsWith('HTTP/1.1 200')) throw new Error(`no tunnel: ${head.toString('latin1')}`);
  const hello = clientHello({ sni: `${name}.test` });
  s.write(hello);
  return { s, hello };
}

const closed = (s: Socket): Promise<void> => new Promise((r) => (s.closed ? r() : s.once('close', () => r())));
/** Whether the socket closes within `ms` (false: it was still open then). Never hangs the test. */
const closesWithin = (s: Socket, ms = 10_000): Promise<boolean> => Promise.race([closed(s).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

async function noConnectionsLeft(): Promise<number> {
  for (let i = 0; i < 200 && proxy.connections() > 0; i++) await new Promise((r) => setTimeout(r, 10));
  return proxy.connections();
}

t.test('half-close: the client FIN reaches the upstream, and its answer still comes back', async (t) => {
  const { s, hello } = await tunnel('half');
  const body = randomBytes(3 << 20);
  s.end(body); // write, then FIN: the upstream answers only after it saw the FIN
  const answer = (await readAll(s)).toString('latin1');
  const sent = Buffer.concat([hello, body]);
  t.equal(answer, `${sent.length} ${sha(sent)}\n`, 'upstream got every byte and the FIN; the answer came back');
  t.equal(await noConnectionsLeft(), 0, 'both sockets closed');
});

t.test('half-close on the transparent TLS listener: a hello, a body and a FIN sent at once still get the answer', async (t) => {
  const s = await openSocket(proxy.port('tls'));
  const hello = clientHello({ sni: 'half.test' });
  const body = randomBytes(1 << 20);
  // Everything, FIN included, may arrive before the ClientHello is even parsed.
  s.end(Buffer.concat([hello, body]));
  const answer = (await readAll(s)).toString('latin1');
  const sent = Buffer.concat([hello, body]);
  t.equal(answer, `${sent.length} ${sha(sent)}\n`, 'upstream got every byte and the FIN; the answer came back');
  t.equal(await noConnectionsLeft(), 0, 'both sockets closed');
});

t.test('half-close through CONNECT when the FIN comes with the CONNECT head and the hello', async (t) => {
  const s = await openSocket(proxy.port('forward'));
  const hello = clientHello({ sni: 'half.test' });
  s.end(Buffer.concat([Buffer.from('CONNECT half.test:443 HTTP/1.1\r\nHost: half.test:443\r\n\r\n'), hello]));
  const all = (await readAll(s)).toString('latin1');
  t.match(all, /^HTTP\/1\.1 200 [^\r]*\r\n\r\n/, 'tunnel established');
  t.equal(all.slice(all.indexOf('\r\n\r\n') + 4), `${hello.length} ${sha(hello)}\n`, 'the answer came back after the FIN');
  t.equal(await noConnectionsLeft(), 0, 'both sockets closed');
});

t.test('32 MiB from the upstream pass byte-exact to a slow reader (backpressure)', async (t) => {
  const { s } = await tunnel('big');
  // Read slowly, so that the proxy still holds unsent bytes for the client when the upstream has
  // already finished and closed cleanly: those must be delivered, not dropped with the upstream.
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => {
    chunks.push(c);
    s.pause();
    setTimeout(() => s.resume(), 1);
  });
  await closed(s);
  const got = Buffer.concat(chunks);
  t.equal(got.length, BIG.length);
  t.equal(sha(got), sha(BIG), 'byte-exact');
  t.equal(await noConnectionsLeft(), 0);
});

t.test('an upstream reset ends the client connection', async (t) => {
  const { s } = await tunnel('reset');
  const ended = closesWithin(s);
  const got = await readAll(s, 10_000);
  t.ok(got.toString('latin1').endsWith('partial') || got.length === 0, 'what came before the reset, nothing after');
  t.ok(await ended, 'the client side was closed by the proxy (within 10 s, not left open)');
  t.equal(await noConnectionsLeft(), 0);
});

t.test('a client reset ends the upstream connection', async (t) => {
  const before = accepted.get('sink')?.length ?? 0;
  const { s } = await tunnel('sink');
  for (let i = 0; i < 200 && (accepted.get('sink')?.length ?? 0) === before; i++) await new Promise((r) => setTimeout(r, 10));
  const up = accepted.get('sink')![before]!;
  s.resetAndDestroy();
  t.ok(await closesWithin(up), 'the upstream side was closed by the proxy (within 10 s)');
  t.equal(await noConnectionsLeft(), 0);
});

t.test('a client that closes cleanly while the upstream keeps its side open: both end', async (t) => {
  const before = accepted.get('sink')?.length ?? 0;
  const { s } = await tunnel('sink');
  for (let i = 0; i < 200 && (accepted.get('sink')?.length ?? 0) === before; i++) await new Promise((r) => setTimeout(r, 10));
  const up = accepted.get('sink')![before]!;
  const upEnded = new Promise<void>((r) => up.once('end', () => r()));
  s.end();
  await upEnded;
  t.pass('the FIN reached the upstream');
  up.end(); // the upstream finishes too: the proxy closes the client side
  t.ok(await closesWithin(s), 'the client side was closed by the proxy (within 10 s)');
  t.equal(await noConnectionsLeft(), 0);
});

t.test('a tunnel cut at the drain deadline closes its upstream side too', async (t) => {
  const other = await startTestProxy(t, testOptions(hosts), testHooks(), recordingObserver());
  const before = accepted.get('sink')?.length ?? 0;
  const s = await openSocket(other.port('forward'));
  s.write('CONNECT sink.test:443 HTTP/1.1\r\nHost: sink.test:443\r\n\r\n');
  await readUntil(s, (b) => b.includes('\r\n\r\n'));
  s.write(clientHello({ sni: 'sink.test' }));
  for (let i = 0; i < 200 && (accepted.get('sink')?.length ?? 0) === before; i++) await new Promise((r) => setTimeout(r, 10));
  const up = accepted.get('sink')![before]!;
  await other.close(0); // destroys the client side of every open connection
  const upClosed = await Promise.race([closed(up).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
  t.ok(upClosed, 'the upstream connection was closed with the client side');
  await closed(s);
});

t.test('60 tunnels one after another: no connection left, no process warning', async (t) => {
  for (let i = 0; i < 60; i++) {
    const { s, hello } = await tunnel('half');
    s.end();
    const answer = (await readAll(s)).toString('latin1');
    if (answer !== `${hello.length} ${sha(hello)}\n`) t.fail(`tunnel ${i}: ${answer}`);
  }
  t.equal(await noConnectionsLeft(), 0);
  t.same(warnings, [], 'no listener-leak warnings');
});
