/**
 * A tunnel whose server closes first (HTTP `Connection: close` inside TLS) lets go of the guest's
 * socket as soon as the guest closes too: the connection leaves the admission gate (and
 * `safespot_connections_active`, and its place under limits.maxConnections) at once, not at the
 * idle timeout. Found under workers (serve-workers-limits.test.ts): `pipe` pauses the guest socket
 * when the upstream finishes, so its FIN was never read (proxy/tunnel.ts).
 */
import t from 'tap';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { openSocket, readUntil } from '../helpers/sockets.js';
import { makeTestPki } from '../helpers/pki.js';
import { startHttpsUpstream } from '../helpers/upstream.js';

/** GET /hello with Connection: close on an open TLS session; resolves when the client side has closed. */
function getAndClose(tls: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    tls.on('data', (c: Buffer) => chunks.push(c));
    tls.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    tls.write('GET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
  });
}

function secured(opts: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(opts);
    s.once('error', reject);
    s.once('secureConnect', () => resolve(s));
  });
}

/** Wait (bounded: a guard, not a threshold) until `cond` holds; false when it never did. */
async function eventually(cond: () => boolean, giveUpMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + giveUpMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

t.test('server closes first: the guest connection is released when the guest closes', async (t) => {
  const pki = makeTestPki(['allowed.test']);
  t.teardown(() => pki.cleanup());
  const up = await startHttpsUpstream(pki);
  t.teardown(() => up.close());
  const observer = recordingObserver();
  // An idle timeout far beyond the test, so only a clean close can release the connections.
  const proxy = await startTestProxy(t, testOptions({ 'allowed.test': `127.0.0.1:${up.port}` }, { limits: { idleTimeout: 600_000 } }), testHooks(), observer);

  await t.test('CONNECT tunnel', async (t) => {
    const raw = await openSocket(proxy.port('forward'));
    const head = readUntil(raw, (b) => b.includes('\r\n\r\n'));
    raw.write('CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n');
    t.match((await head).toString('latin1'), /^HTTP\/1\.1 200 /);
    const tls = await secured({ socket: raw, servername: 'allowed.test', ca: pki.caCert });
    t.equal(proxy.connections(), 1, 'held while the session is open');
    t.match(await getAndClose(tls), /^HTTP\/1\.1 200 [\s\S]*hello from https/);
    t.ok(await eventually(() => proxy.connections() === 0), `released (open now: ${proxy.connections()})`);
    t.equal(observer.count('close forward'), 1, 'counted closed');
  });

  await t.test('transparent TLS', async (t) => {
    const tls = await secured({ host: '127.0.0.1', port: proxy.port('tls'), servername: 'allowed.test', ca: pki.caCert });
    t.equal(proxy.connections(), 1, 'held while the session is open');
    t.match(await getAndClose(tls), /^HTTP\/1\.1 200 [\s\S]*hello from https/);
    t.ok(await eventually(() => proxy.connections() === 0), `released (open now: ${proxy.connections()})`);
    t.equal(observer.count('close tls'), 1, 'counted closed');
  });
});
