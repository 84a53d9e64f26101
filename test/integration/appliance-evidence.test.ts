/**
 * The evidence, end to end: `safespot serve` as a real process, known traffic through its forward
 * listener from undici, a real Prometheus scraping its admin listener, and the audit report read
 * from its journal afterwards. Prometheus, the report and the traffic we sent must agree exactly.
 * Then a `kill -9` in the middle of traffic: the journal keeps everything older than its promised
 * loss window (one second).
 */
import t from 'tap';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { CLI_DEMO_DIR as DEMO, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { makeTestPki } from '../helpers/pki.js';
import { startPrometheus } from '../helpers/prometheus.js';
import { startHttpUpstream, startHttpsUpstream } from '../helpers/upstream.js';


t.test('metrics, Prometheus and the audit report agree with the traffic sent', async (t) => {
  const pki = makeTestPki();
  t.teardown(() => pki.cleanup());
  const http = await startHttpUpstream();
  t.teardown(() => http.close());
  const https = await startHttpsUpstream(pki);
  t.teardown(() => https.close());
  const { config } = tempConfig(t, 'evidence', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'upstream:',
    `  hosts: { plain.test: "127.0.0.1:${http.port}", hotline-canary.test: "127.0.0.1:${http.port}", allowed.test: "127.0.0.1:${https.port}" }`,
    'lists:',
    `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    `  - { id: demo-malware, category: malware, kind: urls, source: ${join(DEMO, 'malware.txt')} }`,
    'selftest: { interval: 1h, canaries: [{ category: csam, url: "http://csam-canary.test/" }] }',
  ]);
  const from = new Date(Date.now() - 60_000).toISOString();

  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const prom = await startPrometheus({ targets: [`127.0.0.1:${app.admin}`] });
  t.teardown(() => prom.stop());

  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false, requestTls: { ca: pki.caCert } });
  t.teardown(() => agent.close());
  const get = async (url: string): Promise<number> => {
    // A fresh agent for each HTTPS request, so every one is its own CONNECT (undici reuses tunnels).
    const fresh = url.startsWith('https:') ? new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, requestTls: { ca: pki.caCert } }) : null;
    try {
      const res = await request(url, { dispatcher: fresh ?? agent });
      await res.body.arrayBuffer();
      return res.statusCode;
    } catch (err) {
      return -1; // a refused CONNECT surfaces as an error in undici
    } finally {
      await fresh?.close();
    }
  };
  const sent = { allowHttp: 5, allowHttps: 3, adultHttp: 4, adultConnect: 2, csamHost: 3, csamPage: 1, malware: 2 };
  for (let i = 0; i < sent.allowHttp; i++) t.equal(await get(`http://plain.test/hello?i=${i}`), 200, 'allowed HTTP passes');
  for (let i = 0; i < sent.allowHttps; i++) t.equal(await get(`https://allowed.test/hello`), 200, 'allowed HTTPS passes');
  for (let i = 0; i < sent.adultHttp; i++) t.equal(await get(`http://blocked.test/x${i}`), 403, 'adult HTTP blocked');
  for (let i = 0; i < sent.adultConnect; i++) t.equal(await get(`https://adult.test/`), -1, 'adult CONNECT refused');
  for (let i = 0; i < sent.csamHost; i++) t.equal(await get(`http://csam-canary.test/any/page${i}`), 403, 'hashed host entry blocks every page');
  t.equal(await get('http://hotline-canary.test/page/1.html'), 403, 'hashed page entry blocks its page');
  t.equal(await get('http://hotline-canary.test/page/2.html'), 404, 'and only that page (allowed; upstream answers 404)');
  for (let i = 0; i < sent.malware; i++) t.equal(await get('http://malware.test/download/payload.exe'), 403, 'malware URL blocked');

  const blocked = { adult: sent.adultHttp + sent.adultConnect, csam: sent.csamHost + sent.csamPage, malware: sent.malware };
  // Each allowed CONNECT is decided twice (authority, then SNI); plain HTTP once.
  const allowed = sent.allowHttp + 2 * sent.allowHttps + 1;

  await prom.waitForScrape();
  for (const [category, n] of Object.entries(blocked)) {
    t.equal(await prom.query(`sum(safespot_requests_total{action="block",category="${category}",listener!="selftest"})`), n, `Prometheus: ${n} ${category} blocks`);
  }
  t.equal(await prom.query('sum(safespot_requests_total{action="allow"})'), allowed, `Prometheus: ${allowed} allow verdicts`);
  t.equal(await prom.query('sum(safespot_requests_total{action="block",listener="forward",protocol="connect"})'), sent.adultConnect, 'blocked CONNECTs by protocol');
  t.equal(await prom.query('safespot_filtering_active'), 1, 'filtering active');
  t.equal(await prom.query('safespot_selftest_success{category="csam"}'), 1, 'self-test passed');
  t.equal(
    await prom.query('sum(safespot_requests_total{listener="selftest",action="block",category="csam"})'),
    2,
    'the self-test went through the forward listener itself (the absolute URL, and CONNECT to its host, which the list blocks whole) and is counted apart from guest traffic',
  );
  t.equal(await prom.query('sum(safespot_policy_entries)'), 3 + 4 + 2, 'entries of all lists');
  t.equal(await prom.query('sum(safespot_decision_duration_seconds_count)'), allowed + blocked.adult + blocked.csam + blocked.malware + 2, 'one latency sample per verdict (guests and the self-test\'s two probes)');

  const metricsText = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.notMatch(metricsText, /blocked\.test|csam-canary|plain\.test|127\.0\.0\.1/, 'no host, URL or client address in any label');

  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'SIGTERM drains and exits 0');

  const to = new Date(Date.now() + 60_000).toISOString();
  const report = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'json']);
  t.equal(report.code, 0, report.stderr);
  const r = JSON.parse(report.stdout) as { blockedRequests: { total: number; byCategory: Record<string, number> }; selftests: { passed: number } };
  t.same(
    Object.fromEntries(Object.entries(r.blockedRequests.byCategory).filter(([, n]) => n > 0)),
    blocked,
    'the report counts exactly the blocks Prometheus saw',
  );
  t.equal(r.blockedRequests.total, blocked.adult + blocked.csam + blocked.malware);
  t.ok(r.selftests.passed >= 1, 'self-test results are in the report');
  t.notMatch(app.log(), /blocked\.test|csam-canary|plain\.test|127\.0\.0\.1:\d+\/|"client"/, 'the operational log names no visited host or client');
});

t.test('kill -9 under traffic loses at most the last second of journal events', async (t) => {
  const { config } = tempConfig(t, 'kill9', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
  ]);
  const from = new Date(Date.now() - 60_000).toISOString();
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  t.teardown(() => agent.close());

  // Blocked requests for ~3 s, each answered (so decided and queued for the journal) at a known time.
  const answeredAt: number[] = [];
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    const res = await request('http://blocked.test/', { dispatcher: agent });
    await res.body.arrayBuffer();
    if (res.statusCode === 403) answeredAt.push(Date.now());
  }
  const killedAt = Date.now();
  app.child.kill('SIGKILL');
  await app.exited;

  const to = new Date(Date.now() + 60_000).toISOString();
  const report = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'json']);
  t.equal(report.code, 0, report.stderr);
  const r = JSON.parse(report.stdout) as { blockedRequests: { total: number } };
  const olderThanWindow = answeredAt.filter((ms) => ms < killedAt - 1000).length;
  t.ok(answeredAt.length > 20, `sent ${answeredAt.length} blocked requests`);
  t.ok(r.blockedRequests.total >= olderThanWindow, `journal kept ${r.blockedRequests.total} of ${answeredAt.length}; every event older than 1 s (${olderThanWindow}) survived`);
  t.ok(r.blockedRequests.total <= answeredAt.length, 'and nothing was invented');
});
