/**
 * The guests' DNS in transparent mode, for real (issue 18): three network namespaces (guest, router
 * running `safespot serve` with listeners.dns on port 5353, upstream with the venue's resolver and
 * "another server" at 198.51.100.53, see ../helpers/dns-netns.ts), the router's rules installed by
 * the shipped docker/router/nftables.sh and iptables.sh with DNS_PORT, and dig on the guest side.
 *
 * The guest asks 198.51.100.53 (a hard-coded public resolver), its IPv6 twin 2001:db8:53::53 and
 * the router's own addresses, over UDP and TCP, port 53 (the listener binds `::`, both families). With the rules: every question reaches safespot's DNS listener; a blocked
 * name gets 0.0.0.0 and never leaves; an allowed one is forwarded to the venue's resolver; CNAME
 * cloaking is caught; the other server sees nothing; DoT/DoQ (853) are rejected. With the rules
 * removed the same questions reach the other server and get its answers: the rules did the work.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createTopology, namespaceSupport, type Topology } from '../helpers/netns.js';
import { IP6, OTHER_DNS, OTHER_DNS6, startFarSide } from '../helpers/dns-netns.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'appliance', 'cli.js');
const DNS_PORT = 5353;

interface Dig { code: number; status: string; answers: string[]; raw: string }

/** dig from the guest: status and the answer section's data, in order. */
async function dig(topo: Topology, server: string, name: string, tcp: boolean): Promise<Dig> {
  const r = await topo.exec(topo.client, 'dig', [`@${server}`, '-p', '53', name, 'A', '+tries=1', '+time=3', '+nocookie', '+noall', '+comments', '+answer', ...(tcp ? ['+tcp'] : [])]);
  const answers = r.stdout.split('\n').filter((l) => l !== '' && !l.startsWith(';')).map((l) => l.split(/\s+/).pop()!.replace(/\.$/, ''));
  return { code: r.code, status: /status: (\w+)/.exec(r.stdout)?.[1] ?? 'none', answers, raw: r.stdout + r.stderr };
}

function metric(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return null;
}

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('guest DNS redirected to the DNS listener by the shipped router rules', async (t) => {
  const reason = await namespaceSupport();
  if (reason) {
    t.skip(`network namespaces unavailable: ${reason}`, () => undefined);
    return;
  }
  for (const tool of ['dig', 'curl']) {
    if (!(await run('sh', ['-c', `command -v ${tool}`]).then(() => true, () => false))) {
      t.fail(`${tool} missing (test/setup-system.sh installs it)`);
      return;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'safespot-dns-router-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'config.yaml'), [
    'listeners:',
    '  http: { host: 0.0.0.0, port: 8080 }',
    '  tls: { host: 0.0.0.0, port: 8443 }',
    `  dns: { host: "::", port: ${DNS_PORT} }`,
    'admin: { host: 127.0.0.1, port: 9090 }',
    'clients: [10.231.1.0/24, "fd00:231:1::/64"]',
    'upstream: { dnsServers: ["10.231.2.2:53"] }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(ROOT, 'appliance', 'demo', 'adult.txt')} }`,
    `journal: { path: ${join(dir, 'journal.db')} }`,
    `state: { dir: ${join(dir, 'state')} }`,
    '',
  ].join('\n'));

  for (const flavour of [
    { name: 'nftables', script: join(ROOT, 'docker', 'router', 'nftables.sh') },
    { name: 'iptables', script: join(ROOT, 'docker', 'router', 'iptables.sh') },
  ]) {
    t.test(`rules by ${flavour.name}`, async (t) => {
      const topo = await createTopology();
      t.teardown(() => topo.destroy());
      const far = await startFarSide(topo, dir, { ipv6: true });
      t.teardown(() => void far.child.kill('SIGKILL'));

      const router = topo.spawn(topo.router, process.execPath, [CLI, 'serve', '--config', join(dir, 'config.yaml')]);
      let routerLog = '';
      router.stderr?.on('data', (d: Buffer) => (routerLog += d.toString()));
      t.teardown(() => void router.kill('SIGKILL'));
      await waitFor('safespot ready', async () => (await topo.exec(topo.router, 'curl', ['-fsS', 'http://127.0.0.1:9090/readyz'], { timeout: 3000 })).code === 0).catch((err) => {
        t.comment(routerLog);
        throw err;
      });

      // Before the rules: the guest's question to the router's port 53 finds nothing (the listener is on 5353).
      const none = await dig(topo, topo.ip.routerGuest, 'allowed.test', false);
      t.not(none.status, 'NOERROR', `no rules: nothing answers the router's port 53 (${none.raw.trim().split('\n').pop()})`);

      const up = await topo.exec(topo.router, 'env', [`DNS_PORT=${DNS_PORT}`, 'bash', flavour.script, 'up', topo.guestIf, '8080', '8443']);
      t.equal(up.code, 0, `rules installed: ${up.stderr.trim()}`);
      t.match(up.stderr, `53 -> :${DNS_PORT}`, 'the script says where DNS goes');

      for (const tcp of [false, true]) {
        const via = tcp ? 'TCP' : 'UDP';
        const blocked = await dig(topo, OTHER_DNS, 'blocked.test', tcp);
        t.same([blocked.status, blocked.answers], ['NOERROR', ['0.0.0.0']], `${via}: a blocked name asked of ${OTHER_DNS} gets the block answer`);
        // A name per transport: the second would come from safespot's cache, never asked upstream.
        const name = tcp ? 'www.allowed.test' : 'allowed.test';
        const allowed = await dig(topo, OTHER_DNS, name, tcp);
        t.same([allowed.status, allowed.answers], ['NOERROR', ['10.231.2.2']], `${via}: an allowed name gets the venue resolver's answer, not the other server's`);
        await far.waitFor(`seen resolver ${name} 1 udp`).then(
          () => t.pass(`${via}: safespot forwarded it to the venue's resolver`),
          (err: Error) => t.fail(err.message),
        );
      }
      const cloak = await dig(topo, OTHER_DNS, 'cloak.allowed.test', false);
      t.same(cloak.answers, ['0.0.0.0'], 'CNAME cloaking caught behind the redirect');
      const local = await dig(topo, topo.ip.routerGuest, 'blocked.test', false);
      t.same([local.status, local.answers], ['NOERROR', ['0.0.0.0']], 'a question to the router itself (the DHCP resolver) reaches the listener too');
      // A guest copying the self-test's mark (its EDNS option, 65001) is still a guest: counted as dns.
      const marked = await topo.exec(topo.client, 'dig', [`@${topo.ip.routerGuest}`, '-p', '53', 'blocked.test', 'A', '+tries=1', '+time=3', '+nocookie', '+ednsopt=65001', '+short']);
      t.equal(marked.stdout.trim(), '0.0.0.0', `a guest query with the self-test's EDNS option is blocked all the same: ${marked.stderr}`);
      const localAllowed = await dig(topo, topo.ip.routerGuest, 'allowed.test', true);
      t.same(localAllowed.answers, ['10.231.2.2'], 'and over TCP');
      // IPv6 guests: the same rules (nftables' inet table; ip6tables) send their port 53 to the listener.
      for (const [server, tcp] of [[OTHER_DNS6, false], [OTHER_DNS6, true], [IP6.routerGuest, false]] as const) {
        const via = `${tcp ? 'TCP' : 'UDP'} over IPv6 to ${server}`;
        const b = await dig(topo, server, 'blocked.test', tcp);
        t.same([b.status, b.answers], ['NOERROR', ['0.0.0.0']], `${via}: the block answer`);
        const a = await dig(topo, server, 'allowed.test', tcp);
        t.same([a.status, a.answers], ['NOERROR', ['10.231.2.2']], `${via}: the venue resolver's answer`);
      }

      // DoT / DoQ to the other server: rejected at the router (its 853 listeners hear nothing).
      const dot = `const c=require('net').connect(853,'${OTHER_DNS}');c.on('connect',()=>{console.log('connected');c.destroy()});c.on('error',(e)=>console.log(e.code));setTimeout(()=>{console.log('timeout');process.exit()},3000).unref();`;
      t.equal((await topo.exec(topo.client, process.execPath, ['-e', dot])).stdout.trim(), 'ECONNREFUSED', 'TCP 853 (DNS over TLS) rejected at once');
      const doq = `const s=require('dgram').createSocket('udp4');s.on('error',()=>{});s.send('probe-853',853,'${OTHER_DNS}',()=>setTimeout(()=>s.close(),200));`;
      await topo.exec(topo.client, process.execPath, ['-e', doq]);

      // A marker question (a name nobody asked yet): once the resolver has printed it, every earlier
      // question either server got has been printed too.
      await dig(topo, OTHER_DNS, 'marker.allowed.test', false);
      await far.waitFor('seen resolver marker.allowed.test 1 udp');
      const log = far.log();
      t.notMatch(log, /^seen other6? /m, 'the other server (IPv4 and IPv6) got no question while the rules were in place');
      t.notMatch(log, /^seen resolver (www\.)?blocked\.test /m, 'blocked names never left the appliance');
      t.notMatch(log, /^(tcp|udp) 853/m, 'nothing reached port 853');

      const metrics = await topo.exec(topo.router, 'curl', ['-fsS', 'http://127.0.0.1:9090/metrics']);
      t.equal(metric(metrics.stdout, 'safespot_requests_total{listener="dns",protocol="dns",action="block",category="adult"}'), 8, 'the DNS blocks are counted (UDP, TCP, cloaked, via the router, the guest with the self-test mark; three over IPv6)');
      t.equal(metric(metrics.stdout, 'safespot_requests_total{listener="selftest",protocol="dns",action="block",category="adult"}') ?? 0, 0, 'none under selftest: the mark counts from loopback only');
      t.equal(metric(metrics.stdout, 'safespot_bypass_total{kind="cname_cloaking"}'), 1, 'cloaking counted');

      // Rules removed: the same questions go to the server the guest named, and get its answers.
      const down = await topo.exec(topo.router, 'bash', [flavour.script, 'down', topo.guestIf]);
      t.equal(down.code, 0, `rules removed: ${down.stderr.trim()}`);
      for (const tcp of [false, true]) {
        const direct = await dig(topo, OTHER_DNS, 'blocked.test', tcp);
        t.same([direct.status, direct.answers], ['NOERROR', ['203.0.113.66']], `${tcp ? 'TCP' : 'UDP'}: without the rules the other server answers the blocked name`);
        await far.waitFor(`seen other blocked.test 1 ${tcp ? 'tcp' : 'udp'}`).then(() => t.pass('and it saw the question'), (err: Error) => t.fail(err.message));
      }
      const direct6 = await dig(topo, OTHER_DNS6, 'blocked.test', false);
      t.same(direct6.answers, ['203.0.113.66'], 'and over IPv6');
      await far.waitFor('seen other6 blocked.test 1 udp').then(() => t.pass('which saw it'), (err: Error) => t.fail(err.message));
      t.equal((await topo.exec(topo.client, process.execPath, ['-e', dot])).stdout.trim(), 'connected', 'without the rules TCP 853 gets through');
      await topo.exec(topo.client, process.execPath, ['-e', doq]);
      await far.waitFor('udp 853 probe-853').then(() => t.pass('and UDP 853'), (err: Error) => t.fail(err.message));
      const gone = await dig(topo, topo.ip.routerGuest, 'allowed.test', false);
      t.not(gone.status, 'NOERROR', 'and the router\'s port 53 is nobody\'s again');
      t.notMatch(routerLog, /10\.231\.1\.2/, 'the operational log names no client address');
    });
  }
});
