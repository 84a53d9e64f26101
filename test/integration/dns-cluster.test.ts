/**
 * The DNS listener in a `serve` cluster (`workers: 2`), as real processes: it runs in the primary
 * (appliance/serve/cluster.ts), on the policy the primary holds and sends to its workers. dig is the
 * client, upstream a recording loopback DNS server. Proves: a blocked name is blocked and never
 * forwarded, an allowed one forwarded; the socket is the primary's (from /proc, not from a hook);
 * SIGHUP with a changed list swaps it for DNS as for the workers' CONNECT; the DNS verdicts are in
 * the cluster's /metrics (the primary's registry merged with the workers') and in the journal
 * (`audit report`); SIGTERM drains and exits 0.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { runCli, serve, tempConfig } from '../helpers/appliance.js';
import { rd, startTestDns } from '../helpers/dns-upstream.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function dig(port: number, name: string, type = 'A'): Promise<{ status: string; answer: string }> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), name, type, '+tries=1', '+time=3', '+nocookie']);
  const answer = /;; ANSWER SECTION:\n([^\n]*)/.exec(stdout)?.[1]?.split(/\s+/).pop() ?? '';
  return { status: /status: (\w+)/.exec(stdout)?.[1] ?? 'none', answer };
}

function metric(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return null;
}

/** Inodes of the UDP sockets bound to `port` on 127.0.0.1 (/proc/net/udp). */
function udpInodes(port: number): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/udp', 'latin1').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && parseInt(f[1]!.split(':')[1]!, 16) === port) out.add(f[9]!);
  }
  return out;
}

function holds(pid: number, inodes: Set<string>): boolean {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && inodes.has(m[1]!)) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

t.test('serve with workers: 2 and listeners.dns: the primary answers DNS on the policy it sends the workers', async (t) => {
  const upstream = await startTestDns([
    { name: 'allowed.test', type: 1, rdata: rd.a('192.0.2.10') },
    { name: 'old.test', type: 1, rdata: rd.a('192.0.2.20') },
    { name: 'new.test', type: 1, rdata: rd.a('192.0.2.30') },
  ]);
  t.teardown(() => upstream.close());
  const { dir, config } = tempConfig(t, 'dns-cluster', [
    'workers: 2',
    'listeners: { forward: { host: 127.0.0.1, port: 0 }, dns: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { dnsServers: ["127.0.0.1:${upstream.port}"] }`,
    'lists:',
    '  - { id: venue, category: adult, kind: domains, source: LIST }',
    // The canary is probed through the primary's DNS listener too (its address from the cluster's composition).
    'selftest: { interval: 1h, canaries: [{ id: venue-host, category: adult, host: old.test }] }',
  ]);
  const list = join(dir, 'venue.txt');
  writeFileSync(list, 'old.test\n');
  writeFileSync(config, readFileSync(config, 'utf8').replace('LIST', list));
  const from = new Date(Date.now() - 60_000).toISOString();
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const port = app.ports.dns!;
  t.ok(port > 0, 'serve started with workers > 1 and names the dns listener (it used to exit 2)');
  const serving = JSON.parse(app.log().split('\n').find((l) => l.includes('"safespot serving"'))!) as { workers?: number[] };
  t.equal(serving.workers?.length, 2, 'two workers');
  const inodes = udpInodes(port);
  t.ok(inodes.size > 0, 'a UDP socket on the DNS port');
  t.ok(holds(app.child.pid!, inodes), 'the primary holds it');
  t.notOk(serving.workers!.some((w) => holds(w, inodes)), 'no worker does');

  t.same(await dig(port, 'old.test'), { status: 'NOERROR', answer: '0.0.0.0' }, 'a listed name is blocked');
  t.same(await dig(port, 'new.test'), { status: 'NOERROR', answer: '192.0.2.30' }, 'an unlisted one forwarded');
  t.same(await dig(port, 'allowed.test'), { status: 'NOERROR', answer: '192.0.2.10' });
  t.equal(upstream.asked('old.test'), 0, 'the blocked name never left the appliance');
  const first = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.match(first, /^safespot_selftest_canary_success\{canary="venue-host",category="adult"\} 1$/m, 'the canary passed, probed by DNS in the primary');
  t.equal(metric(first, 'safespot_requests_total{listener="selftest",protocol="dns",action="block",category="adult"}'), 1, 'its probe counted under selftest');

  // --- SIGHUP with a changed list: DNS and the workers' CONNECT both take it -----------------------
  writeFileSync(list, 'new.test\n');
  const reloads = (): number => app.log().split('"msg":"reloaded"').length - 1;
  const before = reloads();
  app.child.kill('SIGHUP');
  for (let i = 0; i < 200 && reloads() === before; i++) await sleep(50);
  t.ok(reloads() > before, 'reloaded');
  t.same(await dig(port, 'new.test', 'AAAA'), { status: 'NOERROR', answer: '::' }, 'the newly listed name is blocked by DNS');
  t.same(await dig(port, 'old.test'), { status: 'NOERROR', answer: '192.0.2.20' }, 'the name taken off the list is forwarded now');
  t.equal(upstream.asked('new.test'), 1, 'new.test was asked upstream once, before the reload, never after');
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}` });
  t.teardown(() => agent.close());
  // undici's ProxyAgent tunnels with CONNECT; the worker refuses the tunnel with 403.
  await t.rejects(request('http://new.test/', { dispatcher: agent }), /Proxy response \(403\)/, 'a worker blocks the newly listed name too (the same reload)');

  // --- /metrics of the cluster: the primary's DNS verdicts merged with the workers' -----------------
  const text = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.equal(metric(text, 'safespot_requests_total{listener="dns",protocol="dns",action="block",category="adult"}'), 2, 'old.test before, new.test after the reload');
  t.equal(metric(text, 'safespot_requests_total{listener="dns",protocol="dns",action="allow",category="none"}'), 3);
  t.equal(metric(text, 'safespot_requests_total{listener="forward",protocol="connect",action="block",category="adult"}'), 1, 'and the worker\'s block');
  t.notMatch(text, /old\.test|new\.test|127\.0\.0\.1/, 'no name or client address in any label');

  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'SIGTERM drains and exits 0');
  const to = new Date(Date.now() + 60_000).toISOString();
  const report = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'json']);
  t.equal(report.code, 0, report.stderr);
  const rep = JSON.parse(report.stdout) as { blockedRequests: { total: number; byCategory: Record<string, number> } };
  t.equal(rep.blockedRequests.byCategory.adult, 3, 'the journal has the two DNS blocks and the worker\'s one');
});
