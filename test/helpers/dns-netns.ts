/**
 * The far side of a netns venue (test/helpers/netns.ts) for DNS tests: in the upstream namespace,
 * the venue's real resolver (the recording test server of ./dns-upstream.ts on 10.231.2.2:53, what
 * safespot forwards to) and "another server" a guest may name instead (the same server on
 * 198.51.100.53:53, with its own, different addresses: a hard-coded public resolver), DoT/DoQ
 * listeners on 198.51.100.53:853, and a web origin on 10.231.2.2:80; with `ipv6`, the other server
 * on 2001:db8:53::53 too. Every question a DNS server gets is printed as
 * `seen <resolver|other|other6> <name> <type> <transport>`, so a test can prove where a guest's query
 * went and what never left the appliance.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import type { Topology } from './netns.js';

/** A public-looking resolver address the guest names (TEST-NET-2, RFC 5737), served in the upstream namespace. */
export const OTHER_DNS = '198.51.100.53';
/** Its IPv6 twin (documentation prefix, RFC 3849), with `ipv6: true`. */
export const OTHER_DNS6 = '2001:db8:53::53';
/** IPv6 on the venue's links, with `ipv6: true`: the guest, the router's two sides, the upstream. */
export const IP6 = { client: 'fd00:231:1::2', routerGuest: 'fd00:231:1::1', routerUpstream: 'fd00:231:2::1', upstream: 'fd00:231:2::2' };

const HELPER = pathToFileURL(resolve(import.meta.dirname, 'dns-upstream.js')).href;

const script = (ipv6: boolean): string => `
import http from 'node:http';
import net from 'node:net';
import dgram from 'node:dgram';
import { startTestDns, rd } from ${JSON.stringify(HELPER)};
const servers = {
  resolver: await startTestDns([
    { name: 'allowed.test', type: 1, rdata: rd.a('10.231.2.2') },
    { name: 'www.allowed.test', type: 1, rdata: rd.a('10.231.2.2') },
    { name: 'blocked.test', type: 1, rdata: rd.a('10.231.2.99') },
    { name: 'cloak.allowed.test', type: 5, rdata: rd.cname('www.blocked.test') },
    { name: 'www.blocked.test', type: 1, rdata: rd.a('10.231.2.99') },
  ], { host: '10.231.2.2', port: 53 }),
  other: await startTestDns([
    { name: 'allowed.test', type: 1, rdata: rd.a('203.0.113.77') },
    { name: 'blocked.test', type: 1, rdata: rd.a('203.0.113.66') },
  ], { host: '${OTHER_DNS}', port: 53 }),
${ipv6 ? `  other6: await startTestDns([
    { name: 'allowed.test', type: 1, rdata: rd.a('203.0.113.77') },
    { name: 'blocked.test', type: 1, rdata: rd.a('203.0.113.66') },
  ], { host: '${OTHER_DNS6}', port: 53 }),` : ''}
};
net.createServer((s) => { console.log('tcp 853'); s.destroy(); }).listen(853, '${OTHER_DNS}');
const u = dgram.createSocket('udp4');
u.on('message', (m) => console.log('udp 853 ' + m.toString()));
u.bind(853, '${OTHER_DNS}');
http.createServer((req, res) => {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end('<!doctype html><html><head><title>Allowed origin</title></head><body style="font-family:sans-serif;background:#e8f5e9">'
    + '<h1>allowed.test says hello</h1><p>Served by the test origin at 10.231.2.2, reached by a name resolved through safespot.</p></body></html>');
}).listen(80, '10.231.2.2');
const printed = { resolver: 0, other: 0, other6: 0 };
setInterval(() => {
  for (const [tag, s] of Object.entries(servers)) {
    for (; printed[tag] < s.seen.length; printed[tag]++) {
      const q = s.seen[printed[tag]];
      console.log('seen ' + tag + ' ' + q.name + ' ' + q.type + ' ' + q.transport);
    }
  }
}, 20);
console.log('far side ready');
`;

export interface FarSide {
  readonly child: ChildProcess;
  /** Everything it printed so far. */
  log(): string;
  /** Waits until `line` was printed (a whole line), or throws after `ms`. */
  waitFor(line: string, ms?: number): Promise<void>;
}

/**
 * Adds OTHER_DNS to the upstream namespace (routed by the router), then starts the far side there.
 * With `ipv6`, the links get IPv6 addresses (IP6, no duplicate address detection, so they are usable
 * at once), the router forwards IPv6, and "another server" answers on OTHER_DNS6 too (as `other6`).
 */
export async function startFarSide(topo: Topology, dir: string, opts: { ipv6?: boolean } = {}): Promise<FarSide> {
  const steps: [string, string[]][] = [
    [topo.upstream, ['addr', 'add', `${OTHER_DNS}/32`, 'dev', 'eth0']],
    [topo.router, ['route', 'add', `${OTHER_DNS}/32`, 'via', topo.ip.upstream]],
  ];
  if (opts.ipv6) {
    steps.push(
      [topo.client, ['-6', 'addr', 'add', `${IP6.client}/64`, 'dev', 'eth0', 'nodad']],
      [topo.client, ['-6', 'route', 'add', 'default', 'via', IP6.routerGuest]],
      [topo.router, ['-6', 'addr', 'add', `${IP6.routerGuest}/64`, 'dev', topo.guestIf, 'nodad']],
      [topo.router, ['-6', 'addr', 'add', `${IP6.routerUpstream}/64`, 'dev', 'wan0', 'nodad']],
      [topo.router, ['-6', 'route', 'add', `${OTHER_DNS6}/128`, 'via', IP6.upstream]],
      [topo.upstream, ['-6', 'addr', 'add', `${IP6.upstream}/64`, 'dev', 'eth0', 'nodad']],
      [topo.upstream, ['-6', 'addr', 'add', `${OTHER_DNS6}/128`, 'dev', 'eth0', 'nodad']],
      [topo.upstream, ['-6', 'route', 'add', 'default', 'via', IP6.routerUpstream]],
    );
  }
  for (const [ns, args] of steps) {
    const r = await topo.exec(ns, 'ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  }
  if (opts.ipv6) {
    const r = await topo.exec(topo.router, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    if (r.code !== 0) throw new Error(`sysctl: ${r.stderr}`);
  }
  const file = join(dir, 'far-side.mjs');
  writeFileSync(file, script(opts.ipv6 === true));
  const child = topo.spawn(topo.upstream, process.execPath, [file]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const waitFor = async (line: string, ms = 10_000): Promise<void> => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (out.split('\n').includes(line)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`far side never printed "${line}"; it printed:\n${out}`);
  };
  await waitFor('far side ready');
  return { child, log: () => out, waitFor };
}
