/**
 * HTTP inside intercepted TLS has the same limits as every other guest HTTP layer (issue 19): a
 * head trickled inside the TLS connection gets 408 after limits.headersTimeout (it was held until
 * the idle timeout), a head of more than 2,000 fields reaches the upstream whole (Node's default
 * cut it silently), and a head over limits.maxHeaderBytes gets 431. Through a real serve with
 * interception (test/helpers/intercept-rig.ts), a real TLS client trusting the appliance CA.
 */
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import t from 'tap';
import { metricValue, startInterceptRig } from '../helpers/intercept-rig.js';

const rig = await startInterceptRig(t, ['limits: { headersTimeout: 1s, idleTimeout: 120s }']);

function open(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: rig.tls, servername: 'allowed.test', ca: rig.caPem });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything until the server closes (or 20 s: then what came so far, and `closed` false). */
function readAll(s: TLSSocket): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve({ text, closed: false }), 20_000);
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => {});
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

/** A chunked body's bytes (RFC 9112 §7.1), or the text itself when it is not chunked. */
function dechunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    const size = eol === -1 ? NaN : parseInt(body.slice(at, eol), 16);
    if (!Number.isFinite(size)) return out === '' ? body : out;
    if (size === 0) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

t.test('a head trickled inside the TLS connection: 408 after the headers timeout, counted', async (t) => {
  const s = await open();
  const all = readAll(s);
  s.write('GET /hello HTTP/1.1\r\nHost: allowed.test\r\n');
  // ...and nothing more: the rest of the head never comes.
  const r = await all;
  t.ok(r.closed, 'the appliance closed the connection (not left to the 120 s idle timeout)');
  t.match(r.text, /^HTTP\/1\.1 408 /, '408');
  t.ok(metricValue(await rig.metrics(), 'safespot_limits_hit_total', { limit: 'headers_timeout' }) >= 1, 'counted headers_timeout');
});

t.test('a head of 2,500 fields reaches the upstream whole', async (t) => {
  const s = await open();
  const all = readAll(s);
  const fields = Array.from({ length: 2500 }, (_, i) => `h:${i % 10}\r\n`).join('');
  s.write(`GET /echo HTTP/1.1\r\nHost: allowed.test\r\n${fields}Connection: close\r\n\r\n`);
  const r = await all;
  t.match(r.text, /^HTTP\/1\.1 200 /, '200');
  const json = JSON.parse(dechunk(r.text.slice(r.text.indexOf('\r\n\r\n') + 4))) as { rawHeaders: string[] };
  const got = json.rawHeaders.filter((_, i) => i % 2 === 0 && json.rawHeaders[i] === 'h').length;
  t.equal(got, 2500, 'every one of the 2,500 fields was forwarded');
});

t.test('a head over limits.maxHeaderBytes: 431, counted', async (t) => {
  const s = await open();
  const all = readAll(s);
  s.write(`GET /hello HTTP/1.1\r\nHost: allowed.test\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
  const r = await all;
  t.match(r.text, /^HTTP\/1\.1 431 /, `431 (got ${JSON.stringify(r.text.slice(0, 80))}, closed ${r.closed})`);
  t.ok(metricValue(await rig.metrics(), 'safespot_limits_hit_total', { limit: 'header_size' }) >= 1, 'counted header_size');
});
