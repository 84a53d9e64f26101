/**
 * `safespot serve` with `workers: 2` on every listener, as real processes: the forward listener
 * (CONNECT with real TLS through the tunnel, allowed and blocked), the transparent TLS listener
 * (SNI routing: allowed, and blocked with the alert), the transparent HTTP listener (Host routing)
 * and TLS interception for a profile (the block page over HTTPS, an allowed page and a page-level
 * block inside an intercepted connection, through both the forward and the transparent listener).
 * Every exchange uses its own new connection, so the primary's round-robin spreads them over both
 * workers; then the merged /metrics of the primary must hold exactly the verdicts, ClientHello
 * outcomes and interception outcomes that were caused, summed over the workers, and nothing else.
 *
 * serve-workers.test.ts shows from /proc that both workers accept connections;
 * serve-workers-limits.test.ts shows it again through the connection limit (each worker admits
 * only its share). Here every counter of every worker is accounted for.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { CLI_DEMO_DIR as DEMO, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { clientHello } from '../helpers/client-hello-builder.js';
import { exchange, isAlert, openSocket, readAll, readUntil } from '../helpers/sockets.js';
import { metricValue } from '../helpers/intercept-rig.js';
import { makeTestPki } from '../helpers/pki.js';
import { startHttpsUpstream, startHttpUpstream } from '../helpers/upstream.js';

/** The client networks of the intercepting profile (a managed kiosk); everything else is a guest. */
const KIOSK = '127.0.0.3';

interface HttpsResult {
  /** The proxy's answer to the CONNECT, when it was not 200 (the TLS step never started). */
  readonly refused?: string;
  /** Set when the TLS handshake or the exchange failed. */
  readonly error?: string;
  readonly status?: number;
  readonly body?: string;
}

/** One GET over TLS on `socket` (or a new connection), read to the end (Connection: close). */
function getOverTls(tlsOpts: ConnectionOptions, host: string, path: string): Promise<HttpsResult> {
  return new Promise((resolve) => {
    const s = tlsConnect(tlsOpts);
    s.on('error', (e) => resolve({ error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }));
    s.once('secureConnect', () => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
        s.end();
      });
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAccept-Language: en\r\nConnection: close\r\n\r\n`);
    });
  });
}

/** CONNECT host:443 on the forward listener (from `localAddress`), then TLS trusting `ca`, then GET `path`. */
async function httpsViaProxy(forward: number, host: string, path: string, ca: string, localAddress?: string): Promise<HttpsResult> {
  const raw: Socket = await openSocket(forward, localAddress);
  raw.write(`CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`);
  const head = await readUntil(raw, (b) => b.includes('\r\n\r\n'));
  const text = head.toString('latin1');
  if (!text.startsWith('HTTP/1.1 200 ')) {
    raw.destroy();
    return { refused: text };
  }
  return getOverTls({ socket: raw, servername: host, ca }, host, path);
}

/** TLS straight to the transparent TLS listener, routed by `servername`. */
function httpsTransparent(tls: number, host: string, path: string, ca: string, localAddress?: string): Promise<HttpsResult> {
  return getOverTls({ host: '127.0.0.1', port: tls, servername: host, ca, ...(localAddress ? { localAddress } : {}) }, host, path);
}

/** Every non-zero sample of `name` in Prometheus text, keyed by its label text (selftest left out). */
function nonZero(text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name || Number(m[3]) === 0 || (m[2] ?? '').includes('listener="selftest"')) continue;
    out[m[2] ?? ''] = Number(m[3]);
  }
  return out;
}

/** Sum of every sample of `name`. */
const sum = (text: string, name: string): number => Object.values(nonZero(text, name)).reduce((a, b) => a + b, 0);

const series = (listener: string, protocol: string, action: string, category: string): string =>
  `listener="${listener}",protocol="${protocol}",action="${action}",category="${category}"`;

t.test('two workers: CONNECT+TLS, transparent TLS and HTTP, interception; merged metrics exact', async (t) => {
  const pki = makeTestPki(['allowed.test', 'blocked.test', 'localhost']);
  t.teardown(() => pki.cleanup());
  const https = await startHttpsUpstream(pki);
  t.teardown(() => https.close());
  const http = await startHttpUpstream();
  t.teardown(() => http.close());

  const { dir, config } = tempConfig(t, 'workers-tls', []);
  const caDir = join(dir, 'ca');
  const init = await runCli(['certs', 'init', '--dir', caDir]);
  t.equal(init.code, 0, `certs init: ${init.stderr}`);
  const safespotCa = readFileSync(join(caDir, 'ca.crt'), 'utf8');
  const pages = join(dir, 'pages.txt');
  writeFileSync(pages, 'https://allowed.test/private/page.html\n');
  const tlsUp = `"127.0.0.1:${https.port}"`;
  const httpUp = `"127.0.0.1:${http.port}"`;
  // tempConfig wrote journal and state; the rest of the file goes before them.
  const rest = readFileSync(config, 'utf8');
  writeFileSync(config, [
    'workers: 2',
    'listeners:',
    '  forward: { host: 127.0.0.1, port: 0 }',
    '  http: { host: 127.0.0.1, port: 0 }',
    '  tls: { host: 127.0.0.1, port: 0 }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'upstream:',
    `  hosts: { allowed.test: ${tlsUp}, blocked.test: ${tlsUp}, plain.test: ${httpUp}, adult.test: ${httpUp} }`,
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    `  - { id: venue-pages, category: malware, kind: urls, source: ${pages} }`,
    `intercept: { upstreamCa: ${pki.caFile} }`,
    'profiles:',
    `  - { name: kiosk, clients: [${KIOSK}/32], intercept: { enabled: true } }`,
    `ca: { dir: ${caDir} }`,
    rest,
  ].join('\n'));

  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const served = JSON.parse(app.log().split('\n').find((l) => l.includes('"safespot serving"'))!) as { workers?: number[] };
  t.equal(served.workers?.length, 2, 'two workers serve');
  const { forward, http: httpPort, tls } = app.ports as Record<string, number>;
  t.ok(forward && httpPort && tls, `every listener has its real port (${JSON.stringify(app.ports)})`);

  /** What each exchange must add to the counters, built up as the traffic goes. */
  const expected: Record<string, number> = {};
  const expect = (key: string, n = 1): void => {
    expected[key] = (expected[key] ?? 0) + n;
  };
  let hellos = 0;
  let intercepted = 0;
  const N = 3; // exchanges of each kind: enough that round-robin gives both workers some of each

  // --- forward listener, guest (no interception): CONNECT then real TLS to the upstream -------------
  for (let i = 0; i < N; i++) {
    const r = await httpsViaProxy(forward!, 'allowed.test', `/hello?i=${i}`, pki.caCert);
    t.equal(r.status, 200, `CONNECT allowed.test #${i}: 200 over TLS ${r.error ?? r.refused ?? ''}`);
    t.match(r.body, 'hello from https', 'the upstream’s page, its own certificate trusted');
    expect(series('forward', 'connect', 'allow', 'none'));
    expect(series('forward', 'tls', 'allow', 'none'));
    hellos++;
  }
  for (let i = 0; i < N; i++) {
    const r = await httpsViaProxy(forward!, 'blocked.test', '/', pki.caCert);
    t.match(r.refused, /^HTTP\/1\.1 403 /, `CONNECT blocked.test #${i}: 403, no tunnel`);
    expect(series('forward', 'connect', 'block', 'adult'));
  }

  // --- transparent TLS listener, guest: routed by SNI ------------------------------------------------
  for (let i = 0; i < N; i++) {
    const r = await httpsTransparent(tls!, 'allowed.test', `/hello?t=${i}`, pki.caCert);
    t.equal(r.status, 200, `SNI allowed.test #${i}: spliced to the upstream ${r.error ?? ''}`);
    t.match(r.body, 'hello from https');
    expect(series('tls', 'tls', 'allow', 'none'));
    hellos++;
  }
  for (let i = 0; i < N; i++) {
    const reply = await exchange(tls!, clientHello({ sni: 'blocked.test' }));
    t.ok(isAlert(reply, 49), `SNI blocked.test #${i}: access_denied alert (${reply.subarray(0, 7).toString('hex')})`);
    expect(series('tls', 'tls', 'block', 'adult'));
    hellos++;
  }

  // --- transparent HTTP listener: routed by Host ------------------------------------------------------
  for (let i = 0; i < N; i++) {
    const ok = (await exchange(httpPort!, `GET /hello?h=${i} HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n`)).toString('utf8');
    t.match(ok, /^HTTP\/1\.1 200 [\s\S]*hello from http\n/, `Host plain.test #${i}: the upstream's page`);
    expect(series('http', 'http', 'allow', 'none'));
    const no = (await exchange(httpPort!, `GET /x${i} HTTP/1.1\r\nHost: adult.test\r\nAccept-Language: en\r\nConnection: close\r\n\r\n`)).toString('utf8');
    t.match(no, /^HTTP\/1\.1 403 [\s\S]*<title>Page blocked<\/title>/, `Host adult.test #${i}: the block page`);
    expect(series('http', 'http', 'block', 'adult'));
  }

  // --- the intercepting profile (a device that trusts the safespot CA) --------------------------------
  for (let i = 0; i < N; i++) {
    const page = await httpsViaProxy(forward!, 'blocked.test', `/some/page?i=${i}`, safespotCa, KIOSK);
    t.equal(page.status, 403, `kiosk, CONNECT blocked.test #${i}: the block page over HTTPS ${page.error ?? page.refused ?? ''}`);
    t.match(page.body, '<title>Page blocked</title>');
    t.notMatch(page.body, 'hello from', 'never the content');
    // The CONNECT is answered 200 so the page can be shown, and the hello is blocked again. The
    // requests on a connection blocked at its hello get that decision's page without a verdict of
    // their own (proxy/intercept.ts): the block is counted once per decision, not per page view.
    expect(series('forward', 'connect', 'block', 'adult'));
    expect(series('forward', 'tls', 'block', 'adult'));
    hellos++;
    intercepted++;

    const ok = await httpsViaProxy(forward!, 'allowed.test', `/hello?k=${i}`, safespotCa, KIOSK);
    t.equal(ok.status, 200, `kiosk, allowed.test #${i}: the page, through interception ${ok.error ?? ok.refused ?? ''}`);
    t.match(ok.body, 'hello from https');
    expect(series('forward', 'connect', 'allow', 'none'));
    expect(series('forward', 'tls', 'allow', 'none'));
    expect(series('forward', 'https', 'allow', 'none'));
    hellos++;
    intercepted++;

    const listed = await httpsTransparent(tls!, 'allowed.test', '/private/page.html', safespotCa, KIOSK);
    t.equal(listed.status, 403, `kiosk, transparent TLS #${i}: a listed page of an allowed host is blocked inside TLS ${listed.error ?? ''}`);
    t.match(listed.body, '<title>Page blocked</title>');
    expect(series('tls', 'tls', 'allow', 'none'));
    expect(series('tls', 'https', 'block', 'malware'));
    hellos++;
    intercepted++;

    const sni = await httpsTransparent(tls!, 'blocked.test', '/', safespotCa, KIOSK);
    t.equal(sni.status, 403, `kiosk, transparent TLS blocked.test #${i}: the block page over HTTPS ${sni.error ?? ''}`);
    expect(series('tls', 'tls', 'block', 'adult'));
    hellos++;
    intercepted++;
  }
  // A guest (no interception) asking for the listed page: the host is allowed, the page is not seen.
  const guest = await httpsTransparent(tls!, 'allowed.test', '/private/page.html', pki.caCert);
  t.equal(guest.status, 404, 'a guest’s TLS is spliced: the upstream answers (its own 404), nothing intercepted');
  expect(series('tls', 'tls', 'allow', 'none'));
  hellos++;

  // --- the primary's merged /metrics ----------------------------------------------------------------------
  const text = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.same(nonZero(text, 'safespot_requests_total'), expected, 'safespot_requests_total: exactly the verdicts caused, summed over both workers');
  t.same(nonZero(text, 'safespot_client_hello_total'), { 'result="sni"': hellos }, `safespot_client_hello_total: ${hellos} hellos with SNI, nothing else`);
  t.same(nonZero(text, 'safespot_intercept_connections_total'), { 'outcome="intercepted"': intercepted }, `${intercepted} connections intercepted, none failed or excluded`);
  t.same(nonZero(text, 'safespot_upstream_errors_total'), {}, 'no upstream errors');
  t.same(nonZero(text, 'safespot_limits_hit_total'), {}, 'no limit hit');
  t.equal(metricValue(text, 'safespot_filtering_active'), 1, 'filtering active in every process');
  // Every exchange above has ended on the client's side; the workers must let go of each connection
  // (a server that closes first, as these do with Connection: close, included).
  let open = sum(text, 'safespot_connections_active');
  for (const deadline = Date.now() + 10_000; open !== 0 && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 100));
    open = sum(await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text(), 'safespot_connections_active');
  }
  t.equal(open, 0, 'no guest connection is left open in any worker');
  const ready = await fetch(`http://127.0.0.1:${app.admin}/readyz`);
  t.equal(ready.status, 200, 'ready');

  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'SIGTERM drains and exits 0');
});
