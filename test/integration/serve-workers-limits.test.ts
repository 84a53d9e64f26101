/**
 * The connection limits under `workers: 2` are the appliance's, not each worker's: with
 * `maxConnections: 6` and `maxConnectionsPerClient: 4`, each worker admits its share (3 and 2,
 * appliance/serve/worker.ts workerLimits), so the appliance as a whole holds 6 open connections
 * and one client 4, then refuses with 503 and counts the refusal, while the connections it holds
 * stay open and working.
 *
 * The connections are opened one after another, each held (a CONNECT tunnel with a completed TLS
 * handshake to the upstream) before the next is opened, so the primary's round-robin alternates
 * between the workers. Two connections beyond the total are refused: one reached each worker, so
 * both workers hold their full share (3 + 3), which also shows that both serve.
 */
import t from 'tap';
import type { Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { serve, tempConfig } from '../helpers/appliance.js';
import { openSocket, readUntil } from '../helpers/sockets.js';
import { metricValue } from '../helpers/intercept-rig.js';
import { makeTestPki } from '../helpers/pki.js';
import { startHttpsUpstream } from '../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Held = { readonly status: 200; readonly tls: TLSSocket } | { readonly status: number; readonly answer: string };

/**
 * CONNECT allowed.test:443 from `from`; on 200, complete a TLS handshake through it and keep it
 * open. A connection refused at admission is answered at once, whatever it sends.
 */
async function hold(forward: number, from: string, ca: string): Promise<Held> {
  const raw: Socket = await openSocket(forward, from);
  const first = readUntil(raw, (b) => b.includes('\r\n\r\n'));
  raw.write('CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n');
  const head = (await first).toString('latin1');
  if (!head.startsWith('HTTP/1.1 200 ')) {
    raw.destroy();
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), answer: head };
  }
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket: raw, servername: 'allowed.test', ca });
    tls.once('error', reject);
    tls.once('secureConnect', () => {
      tls.off('error', reject);
      tls.on('error', () => {});
      resolve({ status: 200, tls });
    });
  });
}
/** One GET on a held connection (Connection: close), read to its end. */
function getOn(tls: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    tls.on('data', (c: Buffer) => chunks.push(c));
    tls.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    tls.write('GET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
  });
}

t.test('workers: 2, maxConnections: 6, maxConnectionsPerClient: 4 hold for the whole appliance', async (t) => {
  const pki = makeTestPki(['allowed.test']);
  t.teardown(() => pki.cleanup());
  const up = await startHttpsUpstream(pki);
  t.teardown(() => up.close());
  const { config } = tempConfig(t, 'workers-limits', [
    'workers: 2',
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { hosts: { allowed.test: "127.0.0.1:${up.port}" } }`,
    'limits: { maxConnections: 6, maxConnectionsPerClient: 4 }',
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  const held: TLSSocket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const open = async (from: string): Promise<Held> => {
    const h = await hold(app.forward, from, pki.caCert);
    if (h.status === 200 && 'tls' in h) held.push(h.tls);
    return h;
  };

  // --- one client: 4 connections for the appliance (2 per worker), the 5th refused -------------------
  for (let i = 1; i <= 4; i++) t.equal((await open('127.0.0.2')).status, 200, `client A, connection ${i}: tunnel open`);
  const fifth = await open('127.0.0.2');
  t.equal(fifth.status, 503, 'client A, connection 5: 503');
  t.match('answer' in fifth ? fifth.answer : '', 'too many connections from this device', 'the per-client refusal');

  // --- other clients: up to 6 for the appliance (3 per worker), then refused on each worker ----------
  for (let i = 5; i <= 6; i++) t.equal((await open('127.0.0.3')).status, 200, `client B: connection ${i} of the appliance open`);
  for (const [i, from] of [[7, '127.0.0.4'], [8, '127.0.0.5']] as const) {
    const over = await open(from);
    t.equal(over.status, 503, `connection ${i} of the appliance: 503`);
    t.match('answer' in over ? over.answer : '', /too many connections, try again/, 'the total refusal');
  }

  const text = await metrics();
  t.equal(metricValue(text, 'safespot_limits_hit_total', { limit: 'connections' }), 2, 'two total-limit refusals, one in each worker');
  t.equal(metricValue(text, 'safespot_limits_hit_total', { limit: 'connections_per_client' }), 1, 'one per-client refusal');
  t.equal(metricValue(text, 'safespot_connections_active', { listener: 'forward' }), 6, 'the appliance holds 6 connections');

  // --- the held connections still work -----------------------------------------------------------------
  t.equal(held.length, 6, 'six held');
  const pages = await Promise.all(held.map((s) => getOn(s)));
  t.ok(pages.every((p) => /^HTTP\/1\.1 200 [\s\S]*hello from https/.test(p)), 'every held tunnel still carries its TLS session to the upstream');

  // --- once they are closed, new connections are admitted again (the limit is on open connections) -----
  const deadline = Date.now() + 30_000;
  while (metricValue(await metrics(), 'safespot_connections_active', { listener: 'forward' }) !== 0) {
    if (Date.now() > deadline) throw new Error('the held connections did not close');
    await sleep(50);
  }
  held.length = 0;
  for (let i = 1; i <= 2; i++) t.equal((await open('127.0.0.2')).status, 200, `client A again, connection ${i}: admitted`);
});
