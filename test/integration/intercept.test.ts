/**
 * TLS interception through the real `serve` (test/helpers/intercept-rig.ts): undici and curl that
 * trust the safespot CA see the block page over HTTPS and clean allowed pages; page-level hashed
 * entries match HTTPS paths; upstreams with bad certificates are refused with the explanatory
 * page, in the guest's language; excluded hosts are spliced (the client sees the upstream's own certificate); a client that
 * does not trust the CA never gets content; a profile without interception keeps the TLS alert;
 * the admin listener serves the CA (never the key); a burst of new hosts is minted in bounded memory.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { ProxyAgent, request } from 'undici';
import { clientHello } from '../helpers/client-hello-builder.js';
import { runCmd } from '../helpers/commands.js';
import { captureClientHello } from '../helpers/hello-capture.js';
import { exchange, isAlert, openSocket, readAll } from '../helpers/sockets.js';
import { metricValue, startInterceptRig } from '../helpers/intercept-rig.js';

/** CONNECT host:443 through the proxy, then TLS with `ca`; what the client saw. */
function tlsThroughProxy(proxyPort: number, host: string, ca: string | undefined): Promise<{ ok: boolean; cert?: PeerCertificate; alpn?: string | false; error?: string }> {
  return new Promise((resolve) => {
    const raw = netConnect({ host: '127.0.0.1', port: proxyPort });
    raw.on('error', (e) => resolve({ ok: false, error: e.message }));
    raw.once('connect', () => raw.write(`CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`));
    raw.once('data', (head: Buffer) => {
      if (!/^HTTP\/1\.1 200/.test(head.toString('latin1'))) return resolve({ ok: false, error: head.toString('latin1') });
      const s = tlsConnect({ socket: raw, servername: host, ALPNProtocols: ['h2', 'http/1.1'], ...(ca ? { ca } : {}) });
      s.on('error', (e) => resolve({ ok: false, error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }));
      s.once('secureConnect', () => {
        resolve({ ok: true, cert: s.getPeerCertificate(), alpn: s.alpnProtocol ?? false });
        s.destroy();
      });
    });
  });
}

const issuerCn = (c: PeerCertificate | undefined): string => String(c?.issuer?.CN ?? '');

t.test('interception through serve', async (t) => {
  const rig = await startInterceptRig(t);
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${rig.forward}`, requestTls: { ca: rig.caPem } });
  t.teardown(() => agent.close());
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const r = await request(url, { dispatcher: agent, headers });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
  };
  const before = await rig.metrics();

  await t.test('allowed page: clean content from the real upstream, over the minted certificate', async (t) => {
    const r = await get('https://allowed.test/hello');
    t.equal(r.status, 200);
    t.equal(r.body, 'hello from https\n', 'the upstream body, byte for byte');
    t.equal(r.headers['x-upstream'], 'https');
    const seen = await tlsThroughProxy(rig.forward, 'allowed.test', rig.caPem);
    t.ok(seen.ok, 'the client trusts the minted leaf through the safespot CA');
    t.equal(seen.alpn, 'http/1.1', 'ALPN: http/1.1 even though the client offered h2 first');
    t.match(issuerCn(seen.cert), /^safespot local interception CA/, 'issued by the safespot CA');
    t.match(String(seen.cert?.subjectaltname), 'DNS:allowed.test');
    const echo = JSON.parse((await get('https://allowed.test/echo?q=1')).body) as { url: string; headers: Record<string, string> };
    t.equal(echo.url, '/echo?q=1', 'path and query forwarded');
    t.equal(echo.headers.host, 'allowed.test', 'Host forwarded');
    t.match(echo.headers.via, /safespot/, 'Via appended');
  });

  await t.test('blocked host: the readable block page over TLS', async (t) => {
    const r = await get('https://blocked.test/some/page?q=secret', { 'accept-language': 'en' });
    t.equal(r.status, 403);
    t.match(r.body, '<title>Page blocked</title>');
    t.match(r.body, 'Adult content');
    t.match(r.body, 'wifi-help@venue.test');
    t.notMatch(r.body, /blocked\.test|secret/, 'no URL echoed');
  });

  await t.test('page-level hashed entries match HTTPS paths', async (t) => {
    const one = await get('https://hotline-canary.test/page/1.html');
    t.equal(one.status, 403, 'the listed page is blocked');
    t.match(one.body, /may contain images of child sexual abuse/, 'with the hotline text');
    const two = await get('https://hotline-canary.test/page/2.html');
    t.equal(two.status, 404, 'a sibling page is not (the upstream answers 404)');
  });

  await t.test('upstreams with bad certificates are refused with an explanation', async (t) => {
    // [url, Accept-Language of the "otherwise" client, English reason, Albanian reason]
    const cases: Array<[string, string | undefined, RegExp, RegExp]> = [
      ['https://expired.test/hello', undefined, /certificate has expired/, /certifikata e tij ka skaduar/],
      ['https://wrongname.test/hello', 'de-DE', /issued for a different name/, /lëshuar për një emër tjetër/],
      ['https://unknownca.test/hello', 'en-GB,sq;q=0.1', /not issued by a trusted authority|self-signed/, /nuk është lëshuar nga një autoritet i besuar|vetënënshkruar/],
    ];
    for (const [url, otherwise, why, whySq] of cases) {
      const host = new URL(url).hostname;
      const r = await get(url, otherwise === undefined ? {} : { 'accept-language': otherwise });
      t.equal(r.status, 502, `${url}: 502`);
      t.equal(r.headers['content-language'], 'en', `${url} (${otherwise ?? 'no Accept-Language'}): in English`);
      t.match(r.body, 'could not prove its identity', `${url}: explained`);
      t.match(r.body, why, `${url}: the reason`);
      t.notMatch(r.body, 'hello from', `${url}: never the content`);
      t.notMatch(r.body, host, `${url}: neither the URL nor the host on the page`);
      const sq = await get(url, { 'accept-language': 'sq' });
      t.equal(sq.status, 502, `${url} sq: 502`);
      t.equal(sq.headers['content-language'], 'sq', `${url}: Accept-Language sq gets Albanian`);
      t.match(sq.body, '<html lang="sq">');
      t.match(sq.body, 'nuk mundi të vërtetojë identitetin', `${url} sq: explained`);
      t.match(sq.body, whySq, `${url} sq: the reason`);
      t.notMatch(sq.body, 'could not prove', `${url} sq: no English left`);
      t.notMatch(sq.body, host, `${url} sq: neither the URL nor the host on the page`);
    }
  });

  await t.test('excluded hosts are spliced: the client sees the upstream certificate', async (t) => {
    const seen = await tlsThroughProxy(rig.forward, 'excluded.test', rig.upstreamCaPem);
    t.ok(seen.ok, 'trusted through the upstream test CA, not ours');
    t.equal(issuerCn(seen.cert), 'safespot test CA', 'issuer is the upstream PKI');
    const ours = await tlsThroughProxy(rig.forward, 'excluded.test', rig.caPem);
    t.notOk(ours.ok, 'our CA alone does not validate it: nothing was minted');
    const shipped = await tlsThroughProxy(rig.forward, 'www.example.bank', rig.caPem);
    t.notOk(shipped.ok && issuerCn(shipped.cert).startsWith('safespot local'), 'a shipped never-intercept host is not intercepted');
  });

  await t.test('a client that does not trust the CA gets a certificate error, never content', async (t) => {
    const seen = await tlsThroughProxy(rig.forward, 'allowed.test', undefined);
    t.notOk(seen.ok, 'handshake refused by the client');
    t.match(seen.error, /SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify|self.signed/i);
    const plain = new ProxyAgent({ uri: `http://127.0.0.1:${rig.forward}` });
    t.teardown(() => plain.close());
    await t.rejects(request('https://allowed.test/hello', { dispatcher: plain }), 'undici without the CA fails');
  });

  await t.test('curl with --cacert, through the proxy and the transparent listener', async (t) => {
    const viaProxy = await runCmd('curl', ['-sS', '--cacert', rig.caFile, '-x', `http://127.0.0.1:${rig.forward}`, 'https://allowed.test/hello']);
    t.equal(viaProxy.code, 0, viaProxy.stderr);
    t.equal(viaProxy.stdout.toString(), 'hello from https\n');
    const resolve = (h: string) => ['--resolve', `${h}:${rig.tls}:127.0.0.1`];
    const transparent = await runCmd('curl', ['-sS', '--cacert', rig.caFile, ...resolve('allowed.test'), `https://allowed.test:${rig.tls}/hello`]);
    t.equal(transparent.code, 0, transparent.stderr);
    t.equal(transparent.stdout.toString(), 'hello from https\n', 'transparent TLS: routed by SNI, intercepted');
    const blocked = await runCmd('curl', ['-sS', '--cacert', rig.caFile, '-w', '\n%{http_code}', ...resolve('blocked.test'), `https://blocked.test:${rig.tls}/`]);
    t.equal(blocked.code, 0, blocked.stderr);
    t.match(blocked.stdout.toString(), /<title>Page blocked<\/title>[\s\S]*\n403$/, 'transparent TLS: block page, 403');
    const page = await runCmd('curl', ['-sS', '--cacert', rig.caFile, '-o', '/dev/null', '-w', '%{http_code}', ...resolve('hotline-canary.test'), `https://hotline-canary.test:${rig.tls}/page/1.html`]);
    t.equal(page.stdout.toString(), '403', 'transparent TLS: page-level entry blocked');
    const untrusted = await runCmd('curl', ['-sS', ...resolve('allowed.test'), `https://allowed.test:${rig.tls}/hello`]);
    t.equal(untrusted.code, 60, 'curl without --cacert: certificate problem (exit 60)');
    t.equal(untrusted.stdout.length, 0, 'no content');
  });

  await t.test('a profile without interception keeps the TLS refusal', async (t) => {
    const r = await runCmd('curl', ['-sS', '--interface', '127.0.0.2', '--cacert', rig.caFile, '-x', `http://127.0.0.1:${rig.forward}`, 'https://blocked.test/']);
    t.not(r.code, 0, 'curl fails');
    t.equal(r.stdout.length, 0, 'no page');
    // The transparent listener: the raw alert bytes.
    const reply = await exchange(rig.tls, clientHello({ sni: 'blocked.test' }), '127.0.0.2');
    t.ok(isAlert(reply, 49), 'access_denied alert, as without interception');
    const allowed = await runCmd('curl', ['-sS', '--interface', '127.0.0.2', '--cacert', rig.upstreamCaFile, '-x', `http://127.0.0.1:${rig.forward}`, 'https://allowed.test/hello']);
    t.equal(allowed.stdout.toString(), 'hello from https\n', 'allowed hosts are spliced (the upstream certificate validates)');
  });

  await t.test('admin serves the CA certificate, never the key', async (t) => {
    const base = `http://127.0.0.1:${rig.admin}`;
    const pem = await fetch(`${base}/ca.pem`);
    t.equal(pem.status, 200);
    t.equal(await pem.text(), rig.caPem, 'PEM, as on disk');
    const der = Buffer.from(await (await fetch(`${base}/ca.der`)).arrayBuffer());
    t.equal(new X509Certificate(der).fingerprint256, new X509Certificate(rig.caPem).fingerprint256, 'DER of the same certificate');
    const page = await (await fetch(`${base}/ca`)).text();
    t.match(page, new X509Certificate(rig.caPem).fingerprint256, 'install page shows the fingerprint');
    for (const body of [await (await fetch(`${base}/ca.pem`)).text(), page]) t.notMatch(body, /PRIVATE KEY/);
    t.equal((await fetch(`${base}/ca.key`)).status, 404, 'no route for the key');
  });

  await t.test('metrics: https requests, interception outcomes, upstream tls errors', async (t) => {
    const after = await rig.metrics();
    const delta = (name: string, labels: Record<string, string>) => metricValue(after, name, labels) - metricValue(before, name, labels);
    t.ok(delta('safespot_requests_total', { listener: 'forward', protocol: 'https', action: 'allow', category: 'none' }) >= 4, 'allowed https requests');
    t.ok(delta('safespot_requests_total', { listener: 'forward', protocol: 'https', action: 'block', category: 'csam' }) >= 1, 'blocked https page');
    t.ok(delta('safespot_requests_total', { listener: 'tls', protocol: 'https', action: 'allow', category: 'none' }) >= 1, 'transparent https');
    t.ok(delta('safespot_intercept_connections_total', { outcome: 'intercepted' }) >= 5);
    t.ok(delta('safespot_intercept_connections_total', { outcome: 'excluded' }) >= 2);
    t.ok(delta('safespot_intercept_connections_total', { outcome: 'client_handshake_failed' }) >= 2);
    t.equal(delta('safespot_intercept_connections_total', { outcome: 'mint_failed' }), 0);
    t.equal(delta('safespot_upstream_errors_total', { reason: 'tls' }), 6, 'one per request refused for a bad upstream certificate (3 hosts, in en and sq)');
  });
});

t.test('a burst of 100 new hosts is minted in bounded memory', async (t) => {
  const rig = await startInterceptRig(t);
  const rss0 = metricValue(await rig.metrics(), 'process_resident_memory_bytes');
  const names = Array.from({ length: 100 }, (_, i) => `h${i}.burst.test`);
  const results = await Promise.all(
    names.map(
      (name) =>
        new Promise<string>((resolve) => {
          const s = tlsConnect({ host: '127.0.0.1', port: rig.tls, servername: name, ca: rig.caPem });
          s.on('error', (e) => resolve(`error ${e.message}`));
          s.once('secureConnect', () => {
            const san = String(s.getPeerCertificate().subjectaltname);
            // end (not destroy): a reset could discard our Finished before the server reads it.
            s.once('close', () => resolve(san));
            s.end();
          });
        }),
    ),
  );
  t.same(results, names.map((n) => `DNS:${n}`), 'each host got its own leaf, all trusted');
  const text = await rig.metrics();
  t.equal(metricValue(text, 'safespot_intercept_connections_total', { outcome: 'intercepted' }), 100);
  t.equal(metricValue(text, 'safespot_intercept_connections_total', { outcome: 'mint_failed' }), 0);
  const grew = metricValue(text, 'process_resident_memory_bytes') - rss0;
  t.ok(grew < 64 * 1024 * 1024, `resident memory grew by ${(grew / 1048576).toFixed(1)} MiB for 100 hosts`);
});

t.test('intercept.mintsPerMinute: one client\'s made-up names are refused past its budget, others go on (issue 22, finding 11)', async (t) => {
  const rig = await startInterceptRig(t, [], ', mintsPerMinute: 5');
  const handshake = (name: string, localAddress = '127.0.0.1') =>
    new Promise<string>((resolve) => {
      const options = { host: '127.0.0.1', port: rig.tls, servername: name, ca: rig.caPem, localAddress }; // localAddress reaches net.connect
      const s = tlsConnect(options);
      s.on('error', (e) => resolve(`error ${e.message}`));
      s.once('secureConnect', () => {
        s.once('close', () => resolve('ok'));
        s.end();
      });
    });
  const results: string[] = [];
  for (let i = 0; i < 8; i++) results.push(await handshake(`m${i}.budget.test`));
  t.same(results.slice(0, 5), ['ok', 'ok', 'ok', 'ok', 'ok'], 'the first five new names are minted');
  t.ok(results.slice(5).every((r) => r.startsWith('error')), `the next three are refused: ${results.slice(5).join('; ')}`);
  t.equal(await handshake('m0.budget.test'), 'ok', 'a name already minted needs no budget');
  t.equal(await handshake('other.budget.test', '127.0.0.3'), 'ok', 'another client has its own budget');
  const text = await rig.metrics();
  t.equal(metricValue(text, 'safespot_intercept_connections_total', { outcome: 'mint_budget' }), 3, 'counted mint_budget');
  t.equal(metricValue(text, 'safespot_intercept_connections_total', { outcome: 'intercepted' }), 7);
});

t.test('a guest that stalls mid-handshake is closed after tls.clientHelloTimeout, not the idle timeout', async (t) => {
  const rig = await startInterceptRig(t, ['tls: { clientHelloTimeout: 1s }', 'limits: { idleTimeout: 120s }']);
  const hello = await captureClientHello('node', 'allowed.test');
  const s = await openSocket(rig.tls);
  s.write(hello);
  const started = Date.now();
  // The server's flight comes back; then the guest says nothing more.
  const got = await readAll(s, 20_000);
  t.ok(got.length > 0 && got[0] === 0x16, 'the server flight (a TLS handshake record) came back');
  t.ok(s.destroyed || s.readableEnded, 'the appliance closed the connection');
  t.ok(Date.now() - started < 20_000, `closed after ${Date.now() - started} ms, long before the 120 s idle timeout`);
  const text = await rig.metrics();
  t.ok(metricValue(text, 'safespot_limits_hit_total', { limit: 'client_hello_timeout' }) >= 1, 'counted as client_hello_timeout');
  t.equal(metricValue(text, 'safespot_intercept_connections_total', { outcome: 'client_handshake_failed' }), 1, 'and as a failed handshake');
});

t.test('interception enabled without a CA: serve refuses to start and names certs init', async (t) => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { runCli } = await import('../helpers/appliance.js');
  const dir = mkdtempSync(join(tmpdir(), 'safespot-noca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'c.yaml');
  writeFileSync(config, `listeners: { forward: { host: 127.0.0.1, port: 0 } }\nadmin: null\nprofiles: [{ name: staff, clients: [10.1.0.0/16], intercept: { enabled: true } }]\nca: { dir: ${join(dir, 'none')} }\njournal: { path: ${join(dir, 'j.db')} }\nstate: { dir: ${dir} }\n`);
  const r = await runCli(['serve', '--config', config]);
  t.equal(r.code, 2, 'configuration error exit status');
  t.match(r.stderr, 'profiles[staff].intercept.enabled');
  t.match(r.stderr, 'safespot certs init');
});
