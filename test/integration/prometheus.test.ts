import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { journalObserver, openJournal } from '../../audit/journal.js';
import { combineObservers, createMetrics, metricsObserver } from '../../audit/metrics.js';
import { computeReport, loadReportInput } from '../../audit/report.js';
import { startAdmin } from '../../appliance/admin/listener.js';
import { startPrometheus } from '../helpers/prometheus.js';

const TOKEN = 'test-token-0123456789abcdef';

async function metricsText(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (res.status !== 200) throw new Error(`/metrics ${res.status}`);
  return res.text();
}

function promtool(text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    p.once('error', reject);
    p.once('exit', (code) => resolve({ code, out }));
    p.stdin.end(text);
  });
}

t.test('promtool check metrics accepts the real /metrics output', async (t) => {
  const have = await promtool('').catch((err: Error) => ({ code: null, out: err.message }));
  if (have.code === null) throw new Error(`promtool is not installed (${have.out}): run \`bash test/setup-system.sh\` as root or \`apt-get install -y prometheus\``);
  const metrics = createMetrics({ categories: ['adult', 'csam'], lists: ['demo-urls', 'demo-images'] });
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, token: TOKEN, registry: metrics.registry, isReady: () => ({ ready: true, reasons: [] }) });
  t.teardown(() => admin.close());
  // Exercise every family so that histograms, info gauges and labelled gauges are all present.
  const o = metricsObserver(metrics);
  o.verdict({ listener: 'forward', protocol: 'connect', action: 'block', category: 'adult', list: 'demo-urls', durationSeconds: 3e-6 });
  o.imageBlocked({ category: 'csam', match: 'sha256', list: 'demo-images', action: 'block' });
  metrics.policyEntries.set('demo-urls', 10);
  metrics.policyLastRefresh.set('demo-urls', 1_750_000_000);
  metrics.policyInfo.set('b1-0123abcd');
  metrics.filteringActive.set(true);
  metrics.selftestSuccess.set('adult', true);
  metrics.selftestLastRun.set(1_750_000_000);
  const text = await metricsText(admin.port);
  t.match(text, /^safespot_build_info\{version="[^"]+",node="[^"]+"\} 1$/m);
  const r = await promtool(text);
  t.equal(r.code, 0, `promtool exit status (output: ${r.out.trim() || 'none'})`);
  t.equal(r.out.trim(), '', 'no lint findings');
  const bad = await promtool('# TYPE nodejs_active_handles_total gauge\nnodejs_active_handles_total 3\n');
  t.not(bad.code, 0, 'promtool does reject a gauge named *_total (the check can fail)');
});

t.test('a real Prometheus scrapes exact counts; the journal report agrees', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-prom-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const categories = ['adult', 'csam', 'malware'];
  const metrics = createMetrics({ categories, lists: ['adult-urls', 'hotline', 'malware-domains', 'images'] });
  const journal = openJournal({ path: join(dir, 'journal.db'), retentionDays: 30, recordUrls: false, recordClients: false });
  t.teardown(() => journal.close());
  const observer = combineObservers(metricsObserver(metrics), journalObserver(journal));
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, token: TOKEN, registry: metrics.registry, isReady: () => ({ ready: true, reasons: [] }) });
  t.teardown(() => admin.close());
  const prom = await startPrometheus({ targets: [`127.0.0.1:${admin.port}`], bearerToken: TOKEN });
  t.teardown(() => prom.stop());

  await prom.waitForScrape();
  t.equal(await prom.query('up{job="safespot"}'), 1, 'the scrape with the bearer token succeeds');
  t.equal(await prom.query('sum(safespot_requests_total{action="block", category="adult"})'), 0, 'the block series exists at 0 before the first block');
  const from = Date.now();

  const N = 41;
  const M: Record<string, number> = { adult: 17, csam: 5, malware: 2 };
  const monitored = 3;
  const images = { csam: { pdq: 4, md5: 1 } };
  const listOf: Record<string, string> = { adult: 'adult-urls', csam: 'hotline', malware: 'malware-domains' };
  for (let i = 0; i < N; i++) {
    observer.verdict({ listener: i % 2 ? 'forward' : 'tls', protocol: i % 2 ? 'http' : 'tls', action: 'allow', category: null, list: null, durationSeconds: 2e-6 });
  }
  for (const [category, m] of Object.entries(M)) {
    for (let i = 0; i < m; i++) {
      observer.verdict({ listener: 'forward', protocol: 'connect', action: 'block', category, list: listOf[category]!, durationSeconds: 4e-6, url: 'http://blocked.test/', client: '10.0.0.3' });
    }
  }
  for (let i = 0; i < monitored; i++) observer.verdict({ listener: 'http', protocol: 'http', action: 'monitor', category: 'adult', list: 'adult-urls', durationSeconds: 1e-5 });
  for (const [match, n] of Object.entries(images.csam)) {
    for (let i = 0; i < n; i++) observer.imageBlocked({ category: 'csam', match: match as 'pdq' | 'md5', list: 'images', action: 'block' });
  }
  // A self-test canary block: counted under listener="selftest", journaled, kept out of the report's figures.
  observer.verdict({ listener: 'selftest', protocol: 'http', action: 'block', category: 'adult', list: 'adult-urls', durationSeconds: 1e-6 });

  await prom.waitForScrape();
  t.equal(await prom.query('sum(safespot_requests_total{action="allow"})'), N, `N = ${N} allowed`);
  for (const [category, m] of Object.entries(M)) {
    t.equal(await prom.query(`sum(safespot_requests_total{action="block", category="${category}", listener!="selftest"})`), m, `M = ${m} blocked ${category}`);
  }
  t.equal(await prom.query('sum(safespot_requests_total{action="monitor"})'), monitored);
  t.equal(await prom.query('sum(safespot_requests_total{listener="selftest"})'), 1);
  t.equal(await prom.query('safespot_images_blocked_total{category="csam", match="pdq"}'), images.csam.pdq);
  t.equal(await prom.query('safespot_images_blocked_total{category="csam", match="md5"}'), images.csam.md5);
  const total = N + Object.values(M).reduce((a, b) => a + b, 0) + monitored + 1;
  t.equal(await prom.query('safespot_decision_duration_seconds_count'), total, 'every verdict observed once in the histogram');
  t.equal(await prom.query('safespot_decision_duration_seconds_bucket{le="0.000005"}'), N + Object.values(M).reduce((a, b) => a + b, 0) + 1, 'bucket boundaries as configured');

  journal.flush();
  const report = computeReport(loadReportInput(journal, { from, to: Date.now() + 1, categories, lists: Object.values(listOf) }));
  for (const [category, m] of Object.entries(M)) {
    const fromProm = await prom.query(`sum(safespot_requests_total{action="block", category="${category}", listener!="selftest"})`);
    t.equal(report.blockedRequests.byCategory[category], fromProm, `report and Prometheus agree on ${category}`);
    t.equal(report.blockedRequests.byCategory[category], m);
  }
  t.equal(report.monitored.requests.total, await prom.query('sum(safespot_requests_total{action="monitor"})'));
  t.equal(report.blockedImages.total, await prom.query('sum(safespot_images_blocked_total)'));
  t.same(report.blockedImages.byMatch, { md5: 1, sha1: 0, sha256: 0, pdq: 4 });
});
