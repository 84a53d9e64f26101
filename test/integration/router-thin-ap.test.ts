/**
 * A thin access point in front of a safespot box elsewhere (issue 20, point 1), for real, in four
 * network namespaces wired like a venue whose router cannot run safespot:
 *
 *   guest (10.231.1.2) -- guest0 [router] wan0 -- origin (10.231.2.2: web, UDP, DNS, 853)
 *                                         lan0 -- box (10.231.3.2: safespot serve, a DNS stand-in)
 *
 * The router runs only the shipped rules (docker/router/thin-ap-nftables.sh, thin-ap-iptables.sh,
 * and the OpenWrt fw4 includes in docker/router/openwrt/). fw4 itself cannot run here (it is ucode
 * on OpenWrt), so its includes are checked with `nft -c` and then loaded into a table built by hand
 * in fw4's shape (chains dstnat / forward with policy drop / srcnat with a masquerade, at fw4's hooks
 * and priorities): what is proven is our rules inside that shape, not fw4's generator.
 *
 * With the rules: a blocked request is refused by the box, an allowed one served, the box's journal
 * names the guest's own address (no SNAT), QUIC is dropped, 853 rejected, guest DNS to any server
 * (dig, UDP and TCP) is answered by the box's DNS listener (issue 18: blocked names get 0.0.0.0 and
 * never leave, allowed ones are forwarded to the origin's recording DNS server), guests cannot open
 * the box's other ports, and the box's return route is what makes it work. With the rules removed
 * the same blocked request, and the same DNS question, reach the origin: the rules did the work.
 */
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { pathToFileURL } from 'node:url';
import { namespaceSupport } from '../helpers/netns.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'appliance', 'cli.js');
const ROUTER_DIR = join(ROOT, 'docker', 'router');
const IP = { guest: '10.231.1.2', routerGuest: '10.231.1.1', routerWan: '10.231.2.1', origin: '10.231.2.2', routerLan: '10.231.3.1', box: '10.231.3.2' };

/**
 * The origin: web on 80/443, UDP 443/4433 and 853 listeners that say what reached them, and a real
 * DNS server on 53 (test/helpers/dns-upstream.ts) that prints every question it gets as `seen NAME`.
 */
const ORIGIN_SCRIPT = `
import https from 'node:https';
import http from 'node:http';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { startTestDns, rd } from ${JSON.stringify(pathToFileURL(resolve(import.meta.dirname, '..', 'helpers', 'dns-upstream.js')).href)};
const [key, cert] = [readFileSync(process.argv[2]), readFileSync(process.argv[3])];
const answer = (req, res) => { res.setHeader('content-type', 'text/plain'); res.end('origin says hello to ' + req.headers.host + req.url); };
https.createServer({ key, cert }, answer).listen(443, '0.0.0.0');
http.createServer(answer).listen(80, '0.0.0.0');
net.createServer((s) => { console.log('tcp 853'); s.destroy(); }).listen(853, '0.0.0.0');
for (const port of [443, 4433, 853]) {
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => console.log('udp ' + port + ' ' + m.toString()));
  s.bind(port, '0.0.0.0');
}
const dns = await startTestDns([
  { name: 'allowed.test', type: 1, rdata: rd.a('10.231.2.2') },
  { name: 'blocked.test', type: 1, rdata: rd.a('10.231.2.99') },
], { host: '0.0.0.0', port: 53 });
let printed = 0;
setInterval(() => { for (; printed < dns.seen.length; printed++) console.log('seen ' + dns.seen[printed].name + ' ' + dns.seen[printed].transport); }, 20);
console.log('origin ready');
`;

interface Result { code: number; stdout: string; stderr: string }

function nsExec(ns: string, cmd: string, args: string[], timeout = 20_000): Promise<Result> {
  return new Promise((done) => {
    execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : 1) : 0;
      done({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function nsArgv(ns: string, argv: string[]): Promise<Result> {
  const [cmd, ...args] = argv;
  return nsExec(ns, cmd!, args);
}

function nsSpawn(ns: string, cmd: string, args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.on('error', () => undefined);
  return child;
}

/** dig from the guest namespace: [status, the first answer's data]. */
async function dig(ns: string, server: string, name: string, tcp: boolean): Promise<[string, string]> {
  const r = await nsExec(ns, 'dig', [`@${server}`, name, 'A', '+tries=1', '+time=3', '+nocookie', '+noall', '+comments', '+answer', ...(tcp ? ['+tcp'] : [])]);
  const answer = r.stdout.split('\n').find((l) => l !== '' && !l.startsWith(';'))?.split(/\s+/).pop() ?? '';
  return [/status: (\w+)/.exec(r.stdout)?.[1] ?? 'none', answer];
}

async function must(cmd: string, args: string[]): Promise<void> {
  await run(cmd, args, { timeout: 15_000 });
}

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await Promise.resolve().then(fn).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Venue { guest: string; router: string; box: string; origin: string; destroy(): Promise<void> }

/** Four namespaces, unique per process; veths are made inside them, nothing touches the host. */
async function createVenue(): Promise<Venue> {
  const tag = `${process.pid % 100000}`;
  const v = { guest: `stg${tag}`, router: `str${tag}`, box: `stb${tag}`, origin: `sto${tag}` };
  const names = [v.guest, v.router, v.box, v.origin];
  const destroy = async (): Promise<void> => {
    for (const ns of names) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  };
  try {
    for (const ns of names) {
      await must('ip', ['netns', 'add', ns]);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await must('ip', ['-n', v.guest, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'guest0', 'netns', v.router]);
    await must('ip', ['-n', v.router, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', v.origin]);
    await must('ip', ['-n', v.router, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', v.box]);
    const addrs: [string, string, string][] = [
      [v.guest, 'eth0', IP.guest], [v.router, 'guest0', IP.routerGuest], [v.router, 'wan0', IP.routerWan],
      [v.origin, 'eth0', IP.origin], [v.router, 'lan0', IP.routerLan], [v.box, 'eth0', IP.box],
    ];
    for (const [ns, dev, addr] of addrs) {
      await must('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev]);
      await must('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    await must('ip', ['-n', v.guest, 'route', 'add', 'default', 'via', IP.routerGuest]);
    await must('ip', ['-n', v.origin, 'route', 'add', 'default', 'via', IP.routerWan]);
    // The box has no default route through the router: only the two routes docs/deployment.md asks for.
    await must('ip', ['-n', v.box, 'route', 'add', '10.231.2.0/24', 'via', IP.routerLan]);
    await must('ip', ['-n', v.box, 'route', 'add', '10.231.1.0/24', 'via', IP.routerLan]);
    await must('ip', ['netns', 'exec', v.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  } catch (err) {
    await destroy();
    throw err;
  }
  return { ...v, destroy };
}

/** fw4's table shape around our includes (see the header); `withIncludes: false` is fw4 without them. */
function fw4Shape(dir: string, withIncludes: boolean): string {
  const inc = (name: string): string => (withIncludes ? `    include "${join(dir, name)}"\n` : '');
  return [
    'table inet fw4',
    'delete table inet fw4',
    'table inet fw4 {',
    '  chain dstnat {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    inc('thin-ap-dstnat.nft') + '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    inc('thin-ap-forward.nft') + '    ct state vmap { established : accept, related : accept, invalid : drop }',
    '    iifname "guest0" oifname "wan0" accept comment "zone forwarding guest -> wan"',
    '    iifname { "lan0", "wan0" } accept comment "lan and wan may forward (the box reaches origins)"',
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    inc('thin-ap-input.nft') + '  }',
    '  chain srcnat {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    // The box is reached through a masqueraded zone here, the harder case: the include must keep guests.
    inc('thin-ap-srcnat.nft') + '    oifname { "wan0", "lan0" } iifname "guest0" masquerade',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The shipped includes with the example values replaced by this topology's. */
function localiseIncludes(dir: string): void {
  for (const name of ['thin-ap-dstnat.nft', 'thin-ap-forward.nft', 'thin-ap-input.nft', 'thin-ap-srcnat.nft']) {
    const text = readFileSync(join(ROUTER_DIR, 'openwrt', name), 'utf8')
      .replaceAll('br-guest', 'guest0')
      .replaceAll('192.168.1.10', IP.box);
    writeFileSync(join(dir, name), text);
  }
}

t.test('thin access point: guest -> router (rules only) -> safespot box elsewhere', async (t) => {
  const reason = await namespaceSupport();
  if (reason) {
    t.skip(`network namespaces unavailable: ${reason}`, () => undefined);
    return;
  }
  for (const tool of ['curl', 'openssl', 'nft', 'iptables', 'dig']) {
    const has = await run('sh', ['-c', `command -v ${tool}`]).then(() => true, () => false);
    if (!has) {
      t.fail(`${tool} missing (test/setup-system.sh installs it)`);
      return;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'safespot-thin-ap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=allowed.test', '-addext', 'subjectAltName=DNS:allowed.test,DNS:blocked.test',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  writeFileSync(join(dir, 'listeners.mjs'), ORIGIN_SCRIPT);
  localiseIncludes(dir);

  const flavours: { name: string; up: string[]; down: string[]; prepare?: () => Promise<void> }[] = [
    {
      name: 'nftables',
      up: ['env', 'DNS_PORT=5353', 'bash', join(ROUTER_DIR, 'thin-ap-nftables.sh'), 'up', 'guest0', IP.box, '8080', '8443'],
      down: ['bash', join(ROUTER_DIR, 'thin-ap-nftables.sh'), 'down'],
    },
    {
      name: 'iptables',
      up: ['env', 'DNS_PORT=5353', 'bash', join(ROUTER_DIR, 'thin-ap-iptables.sh'), 'up', 'guest0', IP.box, '8080', '8443'],
      down: ['bash', join(ROUTER_DIR, 'thin-ap-iptables.sh'), 'down'],
    },
    {
      name: 'OpenWrt fw4 includes (in a hand-built fw4-shaped table)',
      up: ['nft', '-f', join(dir, 'fw4-with.nft')],
      down: ['nft', '-f', join(dir, 'fw4-without.nft')],
      prepare: async () => {
        writeFileSync(join(dir, 'fw4-with.nft'), fw4Shape(dir, true));
        writeFileSync(join(dir, 'fw4-without.nft'), fw4Shape(dir, false));
      },
    },
  ];

  for (const flavour of flavours) {
    t.test(flavour.name, async (t) => {
      for (const f of ['thin-ap-nftables.sh', 'thin-ap-iptables.sh']) t.ok(existsSync(join(ROUTER_DIR, f)), `${f} is shipped`);
      await flavour.prepare?.();
      const venue = await createVenue();
      t.teardown(() => venue.destroy());
      const journal = join(dir, `journal-${flavour.name.slice(0, 8)}.db`);
      writeFileSync(join(dir, 'config.yaml'), [
        'listeners:',
        '  http: { host: 0.0.0.0, port: 8080 }',
        '  tls: { host: 0.0.0.0, port: 8443 }',
        '  dns: { host: 0.0.0.0, port: 5353 }',
        'admin: { host: 127.0.0.1, port: 9090 }',
        // Only the guests' subnet: a guest hidden behind the router's address would be refused.
        'clients: [10.231.1.0/24]',
        'upstream:',
        `  hosts: { allowed.test: ${IP.origin}, blocked.test: ${IP.origin} }`,
        `  dnsServers: ["${IP.origin}:53"]`,
        'lists:',
        `  - { id: demo-adult, category: adult, kind: domains, source: ${join(ROOT, 'appliance', 'demo', 'adult.txt')} }`,
        `journal: { path: ${journal}, recordClients: true }`,
        `state: { dir: ${join(dir, `state-${flavour.name.slice(0, 8)}`)} }`,
        '',
      ].join('\n'));

      const logs = { origin: '', serve: '' };
      const origin = nsSpawn(venue.origin, process.execPath, [join(dir, 'listeners.mjs'), join(dir, 'key.pem'), join(dir, 'cert.pem')]);
      t.teardown(() => void origin.kill('SIGKILL'));
      origin.stdout?.on('data', (d: Buffer) => (logs.origin += d.toString()));
      origin.stderr?.on('data', (d: Buffer) => (logs.origin += d.toString()));
      const serve = nsSpawn(venue.box, process.execPath, [CLI, 'serve', '--config', join(dir, 'config.yaml')]);
      t.teardown(() => void serve.kill('SIGKILL'));
      serve.stderr?.on('data', (d: Buffer) => (logs.serve += d.toString()));
      await waitFor('origin listeners', () => logs.origin.includes('origin ready')).catch((err) => {
        t.comment(logs.origin);
        throw err;
      });
      await waitFor('safespot ready on the box', async () => (await nsExec(venue.box, 'curl', ['-fsS', 'http://127.0.0.1:9090/readyz'], 3000)).code === 0)
        .catch((err) => {
          t.comment(logs.serve);
          throw err;
        });

      if (flavour.name.startsWith('OpenWrt')) {
        const check = await nsExec(venue.router, 'nft', ['-c', '-f', join(dir, 'fw4-with.nft')]);
        t.equal(check.code, 0, `nft -c accepts the includes inside fw4's chains: ${check.stderr}`);
        t.equal((await nsArgv(venue.router, flavour.down)).code, 0, 'fw4 shape without our includes loaded');
      }
      const curl = (args: string[]) => nsExec(venue.guest, 'curl', ['-sS', '--max-time', '6', '--cacert', join(dir, 'cert.pem'), ...args]);
      const blockedTls = () => curl(['--resolve', `blocked.test:443:${IP.origin}`, 'https://blocked.test/']);
      const allowedHttp = () => curl(['-i', '--resolve', `allowed.test:80:${IP.origin}`, 'http://allowed.test/x?y=1']);

      // Before: the blocked site is reachable (so what follows is the rules' doing).
      const before = await blockedTls();
      t.equal(before.stdout, 'origin says hello to blocked.test/', `before the rules the guest reaches the origin: ${before.stderr}`);

      const up = await nsArgv(venue.router, flavour.up);
      t.equal(up.code, 0, `rules installed: ${up.stderr}`);

      const okTls = await curl(['--resolve', `allowed.test:443:${IP.origin}`, 'https://allowed.test/page']);
      t.equal(okTls.stdout, 'origin says hello to allowed.test/page', `allowed HTTPS served through the box: ${okTls.stderr}`);
      const blocked = await blockedTls();
      t.not(blocked.code, 0, 'blocked HTTPS is refused');
      t.equal(blocked.stdout, '', 'no content for the blocked host');
      t.match(blocked.stderr, /alert|access denied|handshake/i, `refusal is a TLS alert from the box: ${blocked.stderr.trim()}`);
      const okHttp = await allowedHttp();
      t.match(okHttp.stdout, /^HTTP\/1\.1 200/, okHttp.stderr);
      t.match(okHttp.stdout, /origin says hello to allowed\.test\/x\?y=1$/);
      const blockedHttp = await curl(['-i', '--resolve', `blocked.test:80:${IP.origin}`, 'http://blocked.test/']);
      t.match(blockedHttp.stdout, /^HTTP\/1\.1 403/, 'blocked HTTP gets the block page');
      t.notMatch(blockedHttp.stdout, /origin says hello/);
      // A guest copying the self-test's mark is still a guest: blocked, and counted under http, not selftest.
      const metricsBefore = await nsExec(venue.box, 'curl', ['-fsS', 'http://127.0.0.1:9090/metrics'], 3000);
      const marked = await curl(['-i', '-H', 'X-Safespot-Selftest: selftest', '--resolve', `blocked.test:80:${IP.origin}`, 'http://blocked.test/']);
      t.match(marked.stdout, /^HTTP\/1\.1 403/, 'a marked request from a guest is blocked all the same');
      const metricsAfter = await nsExec(venue.box, 'curl', ['-fsS', 'http://127.0.0.1:9090/metrics'], 3000);
      const blocks = (text: string, listener: string) => [...text.matchAll(new RegExp(`^safespot_requests_total\\{[^}]*listener="${listener}"[^}]*action="block"[^}]*\\} (\\d+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
      t.equal(blocks(metricsAfter.stdout, 'http') - blocks(metricsBefore.stdout, 'http'), 1, 'counted as the guest\'s block on the http listener');
      t.equal(blocks(metricsAfter.stdout, 'selftest') - blocks(metricsBefore.stdout, 'selftest'), 0, 'and not as a self-test (the mark counts from loopback only)');

      // No SNAT: the box's journal holds the guest's own address (recordClients on in this config).
      let clients: string[] = [];
      await waitFor('the journal to hold the blocks', () => {
        const db = new Database(journal, { readonly: true, fileMustExist: true });
        try {
          clients = (db.prepare('SELECT DISTINCT client FROM events WHERE client IS NOT NULL').all() as { client: string }[]).map((r) => r.client);
        } finally {
          db.close();
        }
        return clients.length > 0;
      }, 5000).catch(() => undefined);
      t.same(clients, [IP.guest], 'safespot on the box sees the guest address, not the router\'s');

      // QUIC dropped, 853 rejected (and fast), other UDP passes: the rules are specific.
      const udp = `const s=require('dgram').createSocket('udp4');let n=0;for(const p of [443,4433,853])s.send('probe-'+p,p,'${IP.origin}',()=>{if(++n===3)setTimeout(()=>s.close(),100)});s.on('error',()=>{});`;
      await nsExec(venue.guest, process.execPath, ['-e', udp]);
      await waitFor('udp 4433 datagram at the origin', () => logs.origin.includes('udp 4433 probe-4433'), 5000);
      t.notMatch(logs.origin, /udp 443 probe-443/, 'UDP 443 (QUIC) never reaches the origin');
      t.notMatch(logs.origin, /udp 853 probe-853/, 'UDP 853 (DNS over QUIC) never reaches the origin');
      const dotScript = `const c=require('net').connect(853,'${IP.origin}');c.on('connect',()=>{console.log('connected');c.destroy()});c.on('error',(e)=>console.log(e.code));setTimeout(()=>{console.log('timeout');process.exit()},3000).unref();`;
      const dot = await nsExec(venue.guest, process.execPath, ['-e', dotScript], 5000);
      t.equal(dot.stdout.trim(), 'ECONNREFUSED', 'TCP 853 is rejected at once (a reset, not a silent drop)');
      t.notMatch(logs.origin, /tcp 853/, 'TCP 853 never reaches the origin');

      // Port 53 goes to the box's DNS listener, UDP and TCP, whatever resolver the guest names (here
      // the origin's own DNS server) and the router itself (the resolver DHCP hands out).
      for (const [server, tcp] of [[IP.origin, false], [IP.origin, true], [IP.routerGuest, false]] as const) {
        const via = `${tcp ? 'TCP' : 'UDP'} to ${server}`;
        t.same(await dig(venue.guest, server, 'blocked.test', tcp), ['NOERROR', '0.0.0.0'], `${via}: the box's listener answers a blocked name with the block address`);
        t.same(await dig(venue.guest, server, 'allowed.test', tcp), ['NOERROR', '10.231.2.2'], `${via}: an allowed one is answered (forwarded by the box)`);
      }
      await waitFor('the box\'s question for allowed.test at the origin', () => /^seen allowed\.test udp$/m.test(logs.origin), 5000)
        .then(() => t.pass('the box forwarded the allowed name to its resolver'), (err: Error) => t.fail(err.message));
      t.notMatch(logs.origin, /^seen blocked\.test/m, 'the blocked name never reached the origin\'s DNS server');
      t.notMatch(logs.origin, /^seen allowed\.test tcp$/m, 'nor did the guest\'s own TCP question (only the box\'s, over UDP)');

      // Guests reach the box only through the DNAT: not its listeners (or admin port) directly.
      const direct = await curl(['--connect-timeout', '3', `http://${IP.box}:8080/`]);
      t.not(direct.code, 0, `a guest cannot open the box's ports directly: ${direct.stderr.trim()}`);

      // The box's return route is what the docs say it is: without a route to the guests via the router, nothing works.
      t.equal((await nsExec(venue.box, 'ip', ['route', 'del', '10.231.1.0/24'])).code, 0);
      const noRoute = await curl(['--connect-timeout', '3', '--resolve', `allowed.test:80:${IP.origin}`, 'http://allowed.test/x']);
      t.not(noRoute.code, 0, `without the return route the guest gets nothing: ${noRoute.stderr.trim()}`);
      t.equal((await nsExec(venue.box, 'ip', ['route', 'add', '10.231.1.0/24', 'via', IP.routerLan])).code, 0);
      t.match((await allowedHttp()).stdout, /^HTTP\/1\.1 200/, 'with it back, served again');

      if (flavour.name.startsWith('OpenWrt')) {
        // Why thin-ap-srcnat.nft: without it the zone's masquerade hides the guest behind the router,
        // and the box (clients: the guests' subnet) refuses the router's address.
        writeFileSync(join(dir, 'fw4-nosrcnat.nft'), fw4Shape(dir, true).replace(/^ *include ".*thin-ap-srcnat\.nft"\n/m, ''));
        t.equal((await nsExec(venue.router, 'nft', ['-f', join(dir, 'fw4-nosrcnat.nft')])).code, 0, 'fw4 shape without the srcnat include');
        const hidden = await curl(['-i', '--resolve', `allowed.test:80:${IP.origin}`, 'http://allowed.test/x?y=1']);
        t.match(hidden.stdout, /^HTTP\/1\.1 403/, 'masqueraded, the guest is not recognised as a client: refused');
        t.equal((await nsArgv(venue.router, flavour.up)).code, 0, 'includes back');
        t.match((await allowedHttp()).stdout, /^HTTP\/1\.1 200/, 'with the srcnat include, served again');
      }

      // Removed: the same blocked request goes straight to the origin, and DNS to the origin's port 53.
      const down = await nsArgv(venue.router, flavour.down);
      t.equal(down.code, 0, `rules removed: ${down.stderr}`);
      const after = await blockedTls();
      t.equal(after.stdout, 'origin says hello to blocked.test/', `with the rules removed the blocked request reaches the origin: ${after.stderr}`);
      t.same(await dig(venue.guest, IP.origin, 'blocked.test', false), ['NOERROR', '10.231.2.99'], 'and the DNS question is answered by the origin\'s server again');
      await waitFor('the guest\'s question at the origin', () => /^seen blocked\.test udp$/m.test(logs.origin), 5000)
        .then(() => t.pass('which saw it'), (err: Error) => t.fail(err.message));
      t.notMatch(logs.serve, /10\.231\.1\.2/, 'the box\'s operational log names no client address');
    });
  }
});
