/**
 * Slow and greedy clients against a real `safespot serve` (issue 9, item 2), all in one run:
 * - slowloris: request heads and ClientHellos trickled a byte at a time,
 * - idle connections that send nothing, on the HTTP and the TLS listener,
 * - one client opening far more connections than maxConnectionsPerClient,
 * while a well-behaved client fetches pages. Each abuser is cut off by its own limit (checked per
 * socket, and in `safespot_limits_hit_total` read from /metrics); the good client gets every page
 * (its latency is printed as a comment, never asserted). Loopback addresses 127.0.x.y stand in for
 * different guests.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { CLI_DEMO_DIR as DEMO, serve } from '../helpers/appliance.js';
import { clientHello } from '../helpers/client-hello-builder.js';
import { exchange, isAlert, openSocket, readAll } from '../helpers/sockets.js';
import { startHttpUpstream } from '../helpers/upstream.js';

const HANDSHAKE_FAILURE = 40;
const HEADER_TRICKLERS = 150;
const HELLO_TRICKLERS = 100;
const IDLE_HTTP = 40;
const IDLE_TLS = 20;
const PER_CLIENT = 40;
const GREEDY = 100;

function limits(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^safespot_limits_hit_total\{limit="([a-z_]+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** A socket that writes `bytes` one byte every `everyMs` until the server closes it; resolves with what it got. */
async function trickle(port: number, local: string, bytes: Buffer, everyMs: number): Promise<Buffer> {
  const s = await openSocket(port, local);
  const got = readAll(s, 20_000);
  let i = 0;
  const timer = setInterval(() => {
    if (s.writable && i < bytes.length) s.write(bytes.subarray(i, ++i));
  }, everyMs);
  try {
    return await got;
  } finally {
    clearInterval(timer);
  }
}

t.test('slowloris, idle and greedy clients are cut off by their limits while a good client is served', async (t) => {
  const up = await startHttpUpstream();
  t.teardown(() => up.close());
  const dir = mkdtempSync(join(tmpdir(), 'safespot-slow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [
    'listeners: { forward: { host: 127.0.0.1, port: 0 }, tls: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { hosts: { allowed.test: "127.0.0.1:${up.port}" } }`,
    `limits: { headersTimeout: 1s, maxConnectionsPerClient: ${PER_CLIENT}, maxConnections: 2000, idleTimeout: 30s }`,
    'tls: { clientHelloTimeout: 1s }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    `journal: { path: ${join(dir, 'journal.db')} }`,
    `state: { dir: ${join(dir, 'state')} }`,
    '',
  ].join('\n'));
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const tlsPort = app.ports.tls!;
  const before = limits(await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text());

  const head = Buffer.from('GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
  const hello = clientHello({ sni: 'allowed.test', alpn: ['h2', 'http/1.1'] });
  // Spread the abusers over several addresses so that the per-client limit is not what stops them.
  const addr = (net: number, i: number, per: number): string => `127.0.${net}.${1 + Math.floor(i / per)}`;
  const headerSlow = Array.from({ length: HEADER_TRICKLERS }, (_, i) => trickle(app.forward, addr(1, i, 30), head, 300));
  const helloSlow = Array.from({ length: HELLO_TRICKLERS }, (_, i) => trickle(tlsPort, addr(2, i, 30), hello, 300));
  const idle: Array<Promise<Buffer>> = [];
  for (let i = 0; i < IDLE_HTTP; i++) idle.push(openSocket(app.forward, addr(3, i, 30)).then((s) => readAll(s, 20_000)));
  const idleTls: Array<Promise<Buffer>> = [];
  for (let i = 0; i < IDLE_TLS; i++) idleTls.push(openSocket(tlsPort, '127.0.4.1').then((s) => readAll(s, 20_000)));

  // The greedy client: far more connections than its share, all opened at once and sending nothing.
  const greedy: Socket[] = [];
  const greedyAnswers: Array<Promise<Buffer>> = [];
  for (let i = 0; i < GREEDY; i++) {
    const s = await openSocket(app.forward, '127.0.0.9');
    greedy.push(s);
    greedyAnswers.push(readAll(s, 20_000));
  }

  // The good client, meanwhile, from its own address.
  const latencies: number[] = [];
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = process.hrtime.bigint();
    const res = await exchange(app.forward, `GET http://allowed.test/hello?i=${i} HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n`, '127.0.0.1');
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    statuses.push(Number(/^HTTP\/1\.1 (\d{3})/.exec(res.toString())?.[1] ?? 0));
    await new Promise((r) => setTimeout(r, 100));
  }
  t.same(statuses, Array(10).fill(200), 'the good client got every page');
  latencies.sort((a, b) => a - b);
  t.comment(`good client latency under attack: median ${latencies[5]!.toFixed(1)} ms, max ${latencies[9]!.toFixed(1)} ms (not asserted)`);

  const greedyGot = await Promise.all(greedyAnswers);
  const refused = greedyGot.filter((b) => /^HTTP\/1\.1 503/.test(b.toString()));
  const timedOut = greedyGot.filter((b) => /^HTTP\/1\.1 408/.test(b.toString()));
  t.equal(refused.length, GREEDY - PER_CLIENT, `the greedy client: ${GREEDY - PER_CLIENT} connections over its share refused with 503`);
  t.equal(timedOut.length, PER_CLIENT, 'its admitted connections, sending nothing, ended by the headers timeout (408)');

  const headerGot = await Promise.all(headerSlow);
  t.equal(headerGot.filter((b) => /^HTTP\/1\.1 408/.test(b.toString())).length, HEADER_TRICKLERS, 'every header trickler got 408');
  const helloGot = await Promise.all(helloSlow);
  t.equal(helloGot.filter((b) => isAlert(b, HANDSHAKE_FAILURE)).length, HELLO_TRICKLERS, 'every ClientHello trickler got handshake_failure');
  const idleGot = await Promise.all(idle);
  t.equal(idleGot.filter((b) => /^HTTP\/1\.1 408/.test(b.toString())).length, IDLE_HTTP, 'idle HTTP connections got 408');
  const idleTlsGot = await Promise.all(idleTls);
  t.equal(idleTlsGot.filter((b) => isAlert(b, HANDSHAKE_FAILURE)).length, IDLE_TLS, 'idle TLS connections got handshake_failure');
  for (const s of greedy) s.destroy();

  // Counted, each under its own limit.
  let after: Record<string, number> = {};
  let text = '';
  for (let i = 0; i < 40; i++) {
    text = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
    after = limits(text);
    if (/safespot_connections_active\{listener="forward"\} 0/.test(text) && /safespot_connections_active\{listener="tls"\} 0/.test(text)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
  t.equal(delta('connections_per_client'), GREEDY - PER_CLIENT, 'connections_per_client counted once per refusal');
  t.equal(delta('headers_timeout'), HEADER_TRICKLERS + IDLE_HTTP + PER_CLIENT, 'headers_timeout: tricklers, idle and greedy connections');
  t.equal(delta('client_hello_timeout'), HELLO_TRICKLERS + IDLE_TLS, 'client_hello_timeout: tricklers and idle TLS connections');
  t.equal(delta('connections'), 0, 'the total limit was never the one that acted');
  t.match(text, /safespot_connections_active\{listener="forward"\} 0/, 'no forward connection left open');
  t.match(text, /safespot_connections_active\{listener="tls"\} 0/, 'no TLS connection left open');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'serve still exits cleanly');
});
