/**
 * The DNS listener inside `safespot serve` (a real process): configured by listeners.dns and the
 * dns section, forwarding to a recording loopback upstream given by upstream.dnsServers, with the
 * shipped `builtin:encrypted-dns` list. dig is the client. The verdicts show in /metrics with
 * listener="dns", every bypass kind is there from the start, the builtin list also blocks a CONNECT
 * to a DoH endpoint, and the blocked names are in the journal (`audit report`).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { CLI_DEMO_DIR as DEMO, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { rd, startTestDns } from '../helpers/dns-upstream.js';

const run = promisify(execFile);

async function dig(port: number, name: string, type: string): Promise<{ status: string; answer: string }> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), name, type, '+tries=1', '+time=3', '+nocookie']);
  const answer = /;; ANSWER SECTION:\n([^\n]*)/.exec(stdout)?.[1]?.split(/\s+/).pop() ?? '';
  return { status: /status: (\w+)/.exec(stdout)?.[1] ?? 'none', answer };
}

function metric(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return null;
}

t.test('serve with listeners.dns: answers, metrics, CONNECT and the journal', async (t) => {
  const upstream = await startTestDns([
    { name: 'allowed.test', type: 1, rdata: rd.a('192.0.2.10') },
    { name: 'cloak.allowed.test', type: 5, rdata: rd.cname('www.blocked.test') },
  ]);
  t.teardown(() => upstream.close());
  const { config } = tempConfig(t, 'dns-serve', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 }, dns: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { dnsServers: ["127.0.0.1:${upstream.port}"] }`,
    'dns: { blockTtl: 30s, rateLimit: { queriesPerSecond: 100, burst: 200 } }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    '  - { id: encrypted-dns, category: bypass, kind: domains, source: "builtin:encrypted-dns" }',
  ]);
  const from = new Date(Date.now() - 60_000).toISOString();
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const port = app.ports.dns!;
  t.ok(port > 0, 'the serving line names the dns listener');

  const before = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  for (const kind of ['encrypted_dns_canary', 'private_relay', 'designated_resolver', 'ech_removed', 'encrypted_dns_endpoint', 'cname_cloaking']) {
    t.equal(metric(before, `safespot_bypass_total{kind="${kind}"}`), 0, `${kind} pre-initialised at 0`);
  }
  t.equal(metric(before, 'safespot_requests_total{listener="dns",protocol="dns",action="block",category="adult"}'), 0, 'dns request series pre-initialised');

  t.same(await dig(port, 'allowed.test', 'A'), { status: 'NOERROR', answer: '192.0.2.10' });
  t.same(await dig(port, 'blocked.test', 'A'), { status: 'NOERROR', answer: '0.0.0.0' });
  t.same(await dig(port, 'dns.google', 'A'), { status: 'NOERROR', answer: '0.0.0.0' }, 'builtin:encrypted-dns blocks a DoH endpoint');
  t.same(await dig(port, 'cloak.allowed.test', 'A'), { status: 'NOERROR', answer: '0.0.0.0' }, 'CNAME cloaking');
  t.equal((await dig(port, 'mask.icloud.com', 'A')).status, 'NXDOMAIN');
  t.equal((await dig(port, 'use-application-dns.net', 'A')).status, 'NXDOMAIN');
  for (const n of ['blocked.test', 'dns.google', 'mask.icloud.com', 'use-application-dns.net']) t.equal(upstream.asked(n), 0, `${n} never left the appliance`);

  // The same list, by CONNECT through the forward proxy.
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}` });
  t.teardown(() => agent.close());
  await t.rejects(request('https://dns.google/dns-query', { dispatcher: agent }), 'CONNECT to a DoH endpoint refused');

  const text = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.equal(metric(text, 'safespot_requests_total{listener="dns",protocol="dns",action="block",category="adult"}'), 2, 'blocked.test and the cloaked name');
  t.equal(metric(text, 'safespot_requests_total{listener="dns",protocol="dns",action="block",category="bypass"}'), 3, 'dns.google and the two signals');
  t.equal(metric(text, 'safespot_requests_total{listener="dns",protocol="dns",action="allow",category="none"}'), 1);
  t.equal(metric(text, 'safespot_requests_total{listener="forward",protocol="connect",action="block",category="bypass"}'), 1);
  for (const [kind, n] of [['private_relay', 1], ['encrypted_dns_canary', 1], ['encrypted_dns_endpoint', 1], ['cname_cloaking', 1]] as const) {
    t.equal(metric(text, `safespot_bypass_total{kind="${kind}"}`), n, `bypass ${kind}`);
  }
  t.notMatch(text, /blocked\.test|dns\.google|icloud|127\.0\.0\.1/, 'no name or client address in any label');

  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'SIGTERM drains and exits 0');
  const to = new Date(Date.now() + 60_000).toISOString();
  const report = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'json']);
  t.equal(report.code, 0, report.stderr);
  const r = JSON.parse(report.stdout) as { blockedRequests: { total: number; byCategory: Record<string, number> } };
  t.equal(r.blockedRequests.byCategory.adult, 2, 'the journal has the DNS blocks (adult)');
  t.equal(r.blockedRequests.byCategory.bypass, 4, 'and the bypass ones (3 by DNS, 1 CONNECT)');
});

t.test('config errors: an unknown builtin source, a wrong kind, a bad dns option', async (t) => {
  const { config } = tempConfig(t, 'dns-bad', [
    'listeners: { dns: { host: 127.0.0.1, port: 0 } }',
    'lists:',
    '  - { id: a, category: bypass, kind: domains, source: "builtin:nope" }',
    '  - { id: b, category: bypass, kind: urls, source: "builtin:encrypted-dns" }',
  ]);
  const r = await runCli(['check', '--config', config], '');
  t.equal(r.code, 2, 'exit 2');
  t.match(r.stderr, /lists\.0\.source: unknown builtin source "builtin:nope"/);
  t.match(r.stderr, /lists\.1\.kind: builtin:encrypted-dns is a domains list/);
  const bad = tempConfig(t, 'dns-bad2', ['listeners: { dns: { host: 127.0.0.1, port: 0 } }', 'dns: { blocked: maybe, https: drop, unknownKey: 1 }']);
  const r2 = await runCli(['check', '--config', bad.config], '');
  t.equal(r2.code, 2);
  t.match(r2.stderr, /dns\.blocked/);
  t.match(r2.stderr, /dns\.https/);
  t.match(r2.stderr, /unknownKey/, 'unknown keys are errors, every problem listed');
});

t.test('safespot check explains a name for DNS as well as for SNI', async (t) => {
  const { config } = tempConfig(t, 'dns-check', [
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    '  - { id: encrypted-dns, category: bypass, kind: domains, source: "builtin:encrypted-dns" }',
    'profiles: [{ name: kids, clients: [10.0.0.0/8], safeSearch: true }]',
    'dns: { blocked: nxdomain }',
  ]);
  const input = [
    { host: 'blocked.test', dns: 'A' },
    { host: 'dns.google', dns: 'HTTPS' },
    { host: 'mask-h2.icloud.com', dns: 'AAAA' },
    { host: '_dns.resolver.arpa', dns: 64 },
    { host: 'www.google.com', dns: 'A', client: '10.1.2.3' },
    { host: 'allowed.test', dns: 'MX' },
    { host: 'allowed.test', dns: 'NOPE' },
    { url: 'http://allowed.test/', dns: 'A' },
  ];
  const r = await runCli(['check', '--config', config], input.map((l) => JSON.stringify(l)).join('\n') + '\n');
  t.equal(r.code, 0, r.stderr);
  const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(out[0], { action: 'block', category: 'adult', list: 'demo-adult', reason: 'listed in "demo-adult" (adult, domain entry)', rule: 'domain', profile: 'default', dns: { answer: 'blocked', local: 'NXDOMAIN', forwarded: false } }, 'by SNI and by DNS (dns.blocked: nxdomain)');
  t.match(out[1], { action: 'block', category: 'bypass', dns: { answer: 'blocked', forwarded: false } });
  t.match(out[2], { action: 'allow', dns: { answer: 'nxdomain', signal: 'private_relay', forwarded: false } }, 'a signal only DNS gives');
  t.match(out[3], { dns: { answer: 'nodata', signal: 'designated_resolver' } });
  t.match(out[4], { profile: 'kids', dns: { answer: 'cname', target: 'forcesafesearch.google.com' } });
  t.match(out[5], { action: 'allow', dns: { answer: 'forwarded', forwarded: true } });
  t.match(out[6], { error: /"dns" must be a type name/ });
  t.match(out[7], { error: /"dns" goes with "host"/ });
});
