/**
 * The figures certification asks for (issue 21, point 5), from a real `safespot serve` with the
 * forward and DNS listeners under real traffic (undici-free raw HTTP, CONNECT and dig):
 * safespot_list_hits_total{list} is there at 0 before any traffic and counts each list's hits
 * (canaries not); the period report's `certification` section gives blocked requests by listener
 * (dns included), distinct blocked sites (a host blocked over HTTP and DNS counts once), hits per
 * list, canaries and the figures in CSV and HTML; each verdict row carries the keyed tag that the
 * key in state.dir gives, and no blocked host is anywhere in the journal file.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { CLI_DEMO_DIR, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { runCmd } from '../helpers/commands.js';
import { proxyConnect as connectStatus, proxyGet as get } from '../helpers/blocked-traffic.js';
import { rd, startTestDns } from '../helpers/dns-upstream.js';

const run = promisify(execFile);

async function dig(port: number, name: string): Promise<string> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), name, 'A', '+tries=1', '+time=3', '+nocookie']);
  return /status: (\w+)/.exec(stdout)?.[1] ?? 'none';
}

function metric(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return null;
}

t.test('certification figures from a real serve: list hits, blocks by listener, distinct sites without hosts on disk', async (t) => {
  const upstream = await startTestDns([{ name: 'allowed.test', type: 1, rdata: rd.a('192.0.2.10') }]);
  t.teardown(() => upstream.close());
  const { dir, config } = tempConfig(t, 'audit-figures', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 }, dns: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { dnsServers: ["127.0.0.1:${upstream.port}"] }`,
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
    '  - { id: mal, category: malware, kind: domains, source: mal.txt }',
    'selftest: { interval: 1h, canaries: [{ id: adult-one, category: adult, url: "http://blocked.test/" }, { id: mal-one, category: malware, host: malware.test }] }',
  ]);
  writeFileSync(join(dir, 'mal.txt'), 'malware.test\n');
  const from = new Date(Date.now() - 60_000).toISOString();
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const metricsUrl = `http://127.0.0.1:${app.admin}/metrics`;

  let text = await (await fetch(metricsUrl)).text();
  t.equal(metric(text, 'safespot_list_hits_total{list="demo-adult"}'), 0, 'pre-initialised, and the canaries of the start self-test are not hits');
  t.equal(metric(text, 'safespot_list_hits_total{list="mal"}'), 0);
  t.equal(statSync(join(dir, 'state', 'site-tag.key')).mode & 0o777, 0o600, 'the site-tag key is 0600 in the state folder');

  // Forward: blocked.test x3, adult.test x2 (two paths), CONNECT adult-video.test once; DNS: blocked.test x2, malware.test once.
  for (let i = 0; i < 3; i++) t.equal(await get(app.forward, 'http://blocked.test/'), 403);
  t.equal(await get(app.forward, 'http://adult.test/a'), 403);
  t.equal(await get(app.forward, 'http://ADULT.test./b'), 403, 'the same site in another spelling');
  t.match(await connectStatus(app.forward, 'adult-video.test:443'), /^HTTP\/1\.1 403/);
  const dnsPort = app.ports.dns!;
  for (let i = 0; i < 2; i++) t.equal(await dig(dnsPort, 'blocked.test'), 'NOERROR');
  await dig(dnsPort, 'malware.test');
  t.equal(await dig(dnsPort, 'allowed.test'), 'NOERROR');

  text = await (await fetch(metricsUrl)).text();
  t.equal(metric(text, 'safespot_list_hits_total{list="demo-adult"}'), 8, '3 + 2 + 1 over HTTP and CONNECT, 2 over DNS');
  t.equal(metric(text, 'safespot_list_hits_total{list="mal"}'), 1);

  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);
  const journal = join(dir, 'journal.db');
  const to = new Date(Date.now() + 60_000).toISOString();

  const raw = readFileSync(journal);
  for (const host of ['blocked.test', 'adult.test', 'adult-video.test', 'malware.test']) t.equal(raw.indexOf(host), -1, `no "${host}" anywhere in the journal file`);
  const key = Buffer.from(readFileSync(join(dir, 'state', 'site-tag.key'), 'utf8').trim(), 'hex');
  const tag = (h: string) => `site:${createHmac('sha256', key).update(h).digest('hex').slice(0, 16)}`;
  const rows = await runCmd('sqlite3', ['-json', journal, "SELECT listener, detail FROM events WHERE kind = 'verdict' AND action = 'block' AND listener <> 'selftest'"]);
  const tags = (JSON.parse(rows.stdout.toString()) as Array<{ listener: string; detail: string }>).map((r) => r.detail);
  t.equal(tags.length, 9);
  t.equal(tags.filter((d) => d === tag('blocked.test')).length, 5, 'blocked.test over HTTP and DNS: one tag, HMAC with the state key');
  t.equal(tags.filter((d) => d === tag('adult.test')).length, 2, 'ADULT.test. is adult.test');
  t.ok(tags.includes(tag('adult-video.test')) && tags.includes(tag('malware.test')));

  const json = await runCli(['audit', 'report', '--journal', journal, '--from', from, '--to', to, '--format', 'json']);
  t.equal(json.code, 0, json.stderr);
  const c = (JSON.parse(json.stdout) as { certification: Record<string, unknown> }).certification as {
    blockedRequestsByListener: Record<string, number>;
    blockedRequestsByListenerAndCategory: Array<{ listener: string; category: string; count: number }>;
    distinctBlockedSites: { total: number; byCategory: Record<string, number>; untaggedEvents: number; note: string };
    listHits: Record<string, { requests: number; images: number; total: number }>;
    listWorstFreshnessSeconds: Record<string, number>;
    selftestsByCanary: Record<string, { category: string; passed: number; failed: number }>;
  };
  t.same(c.blockedRequestsByListener, { forward: 6, http: 0, tls: 0, dns: 3 }, 'blocked requests by listener, dns included');
  t.same(c.blockedRequestsByListenerAndCategory, [
    { listener: 'dns', category: 'adult', count: 2 },
    { listener: 'dns', category: 'malware', count: 1 },
    { listener: 'forward', category: 'adult', count: 6 },
  ]);
  t.same(c.distinctBlockedSites.total, 4, 'four distinct sites');
  t.same(c.distinctBlockedSites.byCategory, { adult: 3, malware: 1 });
  t.equal(c.distinctBlockedSites.untaggedEvents, 0);
  t.match(c.distinctBlockedSites.note, /n²\/2\^65/, 'the error bound is stated');
  t.same(c.listHits, { 'demo-adult': { requests: 8, images: 0, total: 8 }, mal: { requests: 1, images: 0, total: 1 } }, 'hits per list, as the metric says');
  t.same(Object.keys(c.listWorstFreshnessSeconds).sort(), ['demo-adult', 'mal']);
  t.match(c.selftestsByCanary, { 'adult-one': { category: 'adult', passed: 1, failed: 0 }, 'mal-one': { category: 'malware', passed: 1, failed: 0 } }, 'self-tests per canary');

  const csv = await runCli(['audit', 'report', '--journal', journal, '--from', from, '--to', to, '--format', 'csv']);
  t.equal(csv.code, 0, csv.stderr);
  t.match(csv.stdout, /\r\ndistinct_blocked_sites,total,,4\r\n/);
  t.match(csv.stdout, /\r\nblocked_requests_by_listener,dns,,3\r\n/);
  t.match(csv.stdout, /\r\nlist_hits,demo-adult,total,8\r\n/);
  const html = await runCli(['audit', 'report', '--journal', journal, '--from', from, '--to', to, '--format', 'html']);
  t.equal(html.code, 0, html.stderr);
  t.match(html.stdout, /<h2>Distinct blocked sites: 4<\/h2>/);
  t.match(html.stdout, /<h2>Self-tests per canary<\/h2>/);
});
