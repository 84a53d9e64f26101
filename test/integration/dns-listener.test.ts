/**
 * The DNS listener (proxy/dns/listener.ts) for real: dig and Node's own dns.Resolver as clients,
 * against the listener on loopback, which forwards to a test DNS server on loopback that records
 * every question it receives (test/helpers/dns-upstream.ts). Proves: blocked names and bypass
 * signals are answered locally and never reach the upstream; CNAME cloaking blocks; HTTPS records
 * come back without `ech` and otherwise as the upstream gave them; REFUSED outside `clients`; TC over
 * UDP past the EDNS size with the full answer over TCP; the rate limit; bad bytes on UDP and TCP.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import t from 'tap';
import type { Observer, VerdictEvent } from '../../audit/observer.js';
import { nullObserver } from '../../audit/observer.js';
import { createDnsHooks } from '../../proxy/dns/hook.js';
import { startDnsListener, type DnsListenerOptions } from '../../proxy/dns/listener.js';
import { CidrSet } from '../../policy/ip.js';
import { encryptedDnsListText } from '../../policy/encrypted-dns.js';
import { compilePolicy, PolicyHolder } from '../../policy/policy.js';
import { rd, startTestDns, type TestRecord } from '../helpers/dns-upstream.js';

const run = promisify(execFile);

const ALPN: [number, number[]] = [1, [2, ...Buffer.from('h2'), 2, ...Buffer.from('h3')]];
const V4HINT: [number, number[]] = [4, [192, 0, 2, 7]];
const ECH: [number, number[]] = [5, [0, 4, 0xfe, 0x0d, 0, 0]];
const MANDATORY_ALPN_V4: [number, number[]] = [0, [0, 1, 0, 4]];
const MANDATORY_ECH: [number, number[]] = [0, [0, 5]];

const RECORDS: TestRecord[] = [
  { name: 'allowed.test', type: 1, rdata: rd.a('192.0.2.10') },
  { name: 'www.allowed.test', type: 1, ttl: 120, rdata: rd.a('192.0.2.11') },
  { name: 'blocked.test', type: 1, rdata: rd.a('192.0.2.66') },
  { name: 'cloak.allowed.test', type: 5, rdata: rd.cname('tracker.blocked.test') },
  { name: 'tracker.blocked.test', type: 1, rdata: rd.a('192.0.2.67') },
  { name: 'hop.allowed.test', type: 5, rdata: rd.cname('www.allowed.test') },
  { name: 'https.allowed.test', type: 65, rdata: rd.svcb(1, '', [MANDATORY_ALPN_V4, ALPN, V4HINT, ECH]) },
  { name: 'mech.allowed.test', type: 65, rdata: rd.svcb(1, '', [MANDATORY_ECH, ALPN, ECH]) },
  { name: 'mech.allowed.test', type: 65, rdata: rd.svcb(2, 'alt.allowed.test', [ALPN]) },
  { name: 'big.allowed.test', type: 16, rdata: rd.txt(...Array.from({ length: 12 }, (_, i) => `${i}`.padEnd(200, 'x'))) },
  { name: 'use-application-dns.net', type: 1, rdata: rd.a('192.0.2.99') },
  { name: 'mask.icloud.com', type: 1, rdata: rd.a('192.0.2.98') },
];

function policy() {
  return compilePolicy({
    lists: [
      { id: 'abuse', category: 'csam', kind: 'domains', text: 'csam.test\n', overridable: false },
      { id: 'adult', category: 'adult', kind: 'domains', text: 'blocked.test\n' },
      { id: 'encrypted-dns', category: 'bypass', kind: 'domains', text: encryptedDnsListText() },
    ],
    allow: ['csam.test'],
  });
}

interface Recorder extends Observer {
  verdicts: VerdictEvent[];
  bypasses: string[];
  limits: string[];
  malformed: string[];
}

function recorder(): Recorder {
  const r: Recorder = {
    ...nullObserver,
    verdicts: [],
    bypasses: [],
    limits: [],
    malformed: [],
    verdict: (e) => void r.verdicts.push(e),
    bypass: (k) => void r.bypasses.push(k),
    limitHit: (l) => void r.limits.push(l),
    dnsMalformed: (a) => void r.malformed.push(a),
  };
  return r;
}

function options(upstreamPort: number, over: Partial<DnsListenerOptions> = {}): DnsListenerOptions {
  return {
    endpoint: { host: '127.0.0.1', port: 0 },
    clients: CidrSet.parse(['127.0.0.0/8']),
    servers: [{ host: '127.0.0.1', port: upstreamPort }],
    blocked: 'null',
    blockAddresses: { v4: Uint8Array.of(0, 0, 0, 0), v6: new Uint8Array(16) },
    blockTtl: 60,
    maxTtl: 3600,
    cacheEntries: 1000,
    cacheBytes: 1 << 20,
    https: 'strip-ech',
    rateLimit: { queriesPerSecond: 1000, burst: 2000 },
    tcp: { idleTimeoutMs: 5000, maxConnections: 64, maxInFlight: 8 },
    upstream: { tryTimeoutMs: 1000, tries: 2, maxPending: 1000 },
    recordNames: false,
    recordClients: false,
    clientIpv6Prefix: 64,
    ...over,
  };
}

interface Dig {
  status: string;
  flags: string[];
  answer: string[];
  /** The authority section, TTL column kept (the negative TTL is what is tested). */
  authority: string[];
}

async function dig(port: number, name: string, type: string, ...extra: string[]): Promise<Dig> {
  const { stdout } = await run('dig', [`@127.0.0.1`, '-p', String(port), name, type, '+tries=1', '+time=3', '+nocookie', ...extra]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'none';
  const flags = (/;; flags: ([a-z ]+);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(stdout)?.[1] ?? '';
  const answer = section
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(/\s+/).filter((_, i) => i !== 1).join(' ')); // drop the TTL column
  const auth = /;; AUTHORITY SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(stdout)?.[1] ?? '';
  const authority = auth
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(/\s+/).join(' '));
  return { status, flags, answer, authority };
}

t.test('the DNS listener against dig and Node, with a recording upstream', async (t) => {
  const upstream = await startTestDns(RECORDS);
  t.teardown(() => upstream.close());
  const holder = new PolicyHolder();
  holder.swap(policy());
  const obs = recorder();
  const dns = await startDnsListener(options(upstream.port), createDnsHooks(holder), obs);
  t.teardown(() => dns.close());
  const port = dns.address().port;

  t.test('an allowed name is forwarded once, then served from the cache', async (t) => {
    const a = await dig(port, 'allowed.test', 'A');
    t.equal(a.status, 'NOERROR');
    t.same(a.answer, ['allowed.test. IN A 192.0.2.10']);
    const b = await dig(port, 'ALLOWED.test', 'A');
    t.same(b.answer, ['ALLOWED.test. IN A 192.0.2.10'], 'the question case comes back as asked (0x20)');
    t.equal(upstream.asked('allowed.test'), 1, 'the upstream was asked once');
    const v = obs.verdicts.filter((e) => e.listener === 'dns');
    t.ok(v.length >= 2 && v.every((e) => e.protocol === 'dns'), 'verdicts with listener dns, protocol dns');
    t.notOk(v.some((e) => e.url !== undefined || e.client !== undefined), 'no name and no client address by default');
  });

  t.test('blocked names are answered locally and never forwarded', async (t) => {
    t.same((await dig(port, 'blocked.test', 'A')).answer, ['blocked.test. IN A 0.0.0.0']);
    t.same((await dig(port, 'www.blocked.test', 'AAAA')).answer, ['www.blocked.test. IN AAAA ::']);
    const mx = await dig(port, 'blocked.test', 'MX');
    t.equal(mx.status, 'NOERROR');
    t.same(mx.answer, [], 'NODATA for other types');
    const https = await dig(port, 'blocked.test', 'HTTPS');
    t.same(https.answer, [], 'a blocked name loses its HTTPS records too');
    t.same((await dig(port, 'csam.test', 'A')).answer, ['csam.test. IN A 0.0.0.0'], 'csam: the allow entry does not override');
    t.same((await dig(port, 'dns.google', 'A')).answer, ['dns.google. IN A 0.0.0.0'], 'a public DoH endpoint (builtin:encrypted-dns)');
    for (const n of ['blocked.test', 'www.blocked.test', 'csam.test', 'dns.google']) t.equal(upstream.asked(n), 0, `${n} never reached the upstream`);
    const blocks = obs.verdicts.filter((e) => e.action === 'block');
    t.ok(blocks.some((e) => e.category === 'adult' && e.list === 'adult'), 'a block verdict with category and list (journaled like the others)');
    t.ok(obs.bypasses.includes('encrypted_dns_endpoint'));
  });

  t.test('bypass signals: answered locally, never forwarded, counted', async (t) => {
    t.equal((await dig(port, 'use-application-dns.net', 'A')).status, 'NXDOMAIN');
    t.equal((await dig(port, 'mask.icloud.com', 'A')).status, 'NXDOMAIN');
    t.equal((await dig(port, 'mask-h2.icloud.com', 'AAAA')).status, 'NXDOMAIN');
    const ddr = await dig(port, '_dns.resolver.arpa', 'SVCB');
    t.equal(ddr.status, 'NOERROR');
    t.same(ddr.answer, [], 'designated resolvers: NODATA');
    for (const n of ['use-application-dns.net', 'mask.icloud.com', 'mask-h2.icloud.com', '_dns.resolver.arpa']) t.equal(upstream.asked(n), 0, `${n} never forwarded`);
    for (const k of ['encrypted_dns_canary', 'private_relay', 'designated_resolver']) t.ok(obs.bypasses.includes(k), `${k} counted`);
  });

  t.test('local NXDOMAIN and NODATA carry an SOA with the negative TTL (RFC 2308); the block address does not', async (t) => {
    const soa = (name: string): string => `${name}. 60 IN SOA safespot.invalid. hostmaster.safespot.invalid. 1 3600 600 86400 60`;
    const canary = await dig(port, 'use-application-dns.net', 'A');
    t.equal(canary.status, 'NXDOMAIN');
    t.same(canary.authority, [soa('use-application-dns.net')], 'NXDOMAIN: the SOA, owner the question name, MINIMUM = dns.blockTtl');
    t.ok(canary.flags.includes('aa'), 'authoritative');
    const ddr = await dig(port, '_dns.resolver.arpa', 'SVCB');
    t.same(ddr.authority, [soa('_dns.resolver.arpa')], 'NODATA (designated resolvers): the SOA');
    const mx = await dig(port, 'blocked.test', 'MX');
    t.same(mx.authority, [soa('blocked.test')], 'NODATA for a blocked name: the SOA');
    const tcp = await dig(port, 'blocked.test', 'HTTPS', '+tcp');
    t.same(tcp.authority, [soa('blocked.test')], 'the same over TCP');
    const a = await dig(port, 'blocked.test', 'A');
    t.same(a.authority, [], 'a blocked A answer (the block address) has none');
  });

  t.test('CNAME cloaking: a chain to a blocked name blocks; to an allowed one passes', async (t) => {
    t.same((await dig(port, 'cloak.allowed.test', 'A')).answer, ['cloak.allowed.test. IN A 0.0.0.0']);
    t.ok(obs.bypasses.includes('cname_cloaking'));
    t.same((await dig(port, 'hop.allowed.test', 'A')).answer, ['hop.allowed.test. IN CNAME www.allowed.test.', 'www.allowed.test. IN A 192.0.2.11']);
  });

  t.test('HTTPS records: ech removed, alpn / ipv4hint / mandatory as given; mandatory=ech dropped', async (t) => {
    const h = await dig(port, 'https.allowed.test', 'HTTPS');
    t.same(h.answer, ['https.allowed.test. IN HTTPS 1 . mandatory=alpn,ipv4hint alpn="h2,h3" ipv4hint=192.0.2.7']);
    const m = await dig(port, 'mech.allowed.test', 'HTTPS');
    t.same(m.answer, ['mech.allowed.test. IN HTTPS 2 alt.allowed.test. alpn="h2,h3"'], 'the record that made ech mandatory is gone, the other kept');
    t.ok(obs.bypasses.includes('ech_removed'));
  });

  t.test('TC over UDP past the EDNS size; the full answer over TCP and through Node', async (t) => {
    const noEdns = await dig(port, 'big.allowed.test', 'TXT', '+noedns', '+ignore');
    t.ok(noEdns.flags.includes('tc'), 'TC without EDNS (512)');
    t.same(noEdns.answer, [], 'and no records');
    const edns = await dig(port, 'big.allowed.test', 'TXT', '+bufsize=1232', '+ignore');
    t.ok(edns.flags.includes('tc'), 'TC past 1232');
    const tcp = await dig(port, 'big.allowed.test', 'TXT', '+tcp');
    t.equal(tcp.answer.length, 1);
    t.ok(tcp.answer[0]!.length > 2400, 'the whole TXT over TCP');
    t.ok(upstream.seen.some((s) => s.name === 'big.allowed.test' && s.transport === 'tcp'), 'the listener itself went to TCP upstream after a TC');
    const r = new Resolver({ timeout: 3000, tries: 1 });
    r.setServers([`127.0.0.1:${port}`]);
    const txt = await r.resolveTxt('big.allowed.test');
    t.equal(txt[0]!.join('').length, 2400, 'Node retries over TCP and gets it all');
    t.same(await r.resolve4('allowed.test'), ['192.0.2.10']);
    t.same(await r.resolve4('blocked.test'), ['0.0.0.0']);
    await t.rejects(r.resolve4('mask.icloud.com'), { code: 'ENOTFOUND' });
  });

  t.test('bad bytes: FORMERR or dropped, counted; the listener carries on', async (t) => {
    const udp = createSocket('udp4');
    t.teardown(() => udp.close());
    const replies: Buffer[] = [];
    udp.on('message', (m) => replies.push(m));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const send = (b: Uint8Array) => new Promise<void>((r) => udp.send(b, port, '127.0.0.1', () => r()));
    await send(Uint8Array.of(1, 2, 3));
    await send(Uint8Array.from([0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])); // a pointer loop
    await new Promise((r) => setTimeout(r, 300));
    t.equal(replies.length, 1, 'one answer: the 3 bytes were dropped');
    t.equal(replies[0]!.readUInt16BE(0), 0xabcd, 'the id echoed');
    t.equal(replies[0]![3]! & 0xf, 1, 'FORMERR');
    t.same(obs.malformed.slice(-2), ['dropped', 'formerr']);
    // TCP: a framed garbage message, then a real query on the same connection.
    const sock = connect(port, '127.0.0.1');
    t.teardown(() => sock.destroy());
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const junk = Buffer.from([0x11, 0x22, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40]);
    const q = Buffer.from([0x33, 0x44, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, ...Buffer.from('allowed'), 4, ...Buffer.from('test'), 0, 0, 1, 0, 1]);
    sock.write(Buffer.concat([Buffer.from([0, junk.length]), junk, Buffer.from([0, q.length]), q]));
    await new Promise((r) => setTimeout(r, 500));
    const all = Buffer.concat(got);
    const first = all.subarray(2, 2 + all.readUInt16BE(0));
    const second = all.subarray(4 + first.length);
    t.equal(first.readUInt16BE(0), 0x1122);
    t.equal(first[3]! & 0xf, 1, 'FORMERR over TCP');
    t.equal(second.readUInt16BE(0), 0x3344, 'the next query on the same connection is answered');
    t.equal(second[3]! & 0xf, 0, 'NOERROR');
    t.equal((await dig(port, 'allowed.test', 'A')).status, 'NOERROR', 'and everyone else carries on');
  });
});

t.test('not an open resolver: REFUSED outside clients; the rate limit drops and counts', async (t) => {
  const upstream = await startTestDns(RECORDS);
  t.teardown(() => upstream.close());
  const holder = new PolicyHolder();
  holder.swap(policy());
  const obs = recorder();
  const closed = await startDnsListener(options(upstream.port, { clients: CidrSet.parse(['10.0.0.0/8']) }), createDnsHooks(holder), obs);
  t.teardown(() => closed.close());
  const r = await dig(closed.address().port, 'allowed.test', 'A');
  t.equal(r.status, 'REFUSED');
  t.equal(upstream.asked('allowed.test'), 0, 'nothing forwarded for a stranger');
  t.ok(obs.limits.includes('client_forbidden'));

  const obs2 = recorder();
  const limited = await startDnsListener(options(upstream.port, { rateLimit: { queriesPerSecond: 1, burst: 5 } }), createDnsHooks(holder), obs2);
  t.teardown(() => limited.close());
  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  let answers = 0;
  udp.on('message', () => answers++);
  await new Promise<void>((res) => udp.bind(0, '127.0.0.1', () => res()));
  const q = Buffer.from([0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, ...Buffer.from('allowed'), 4, ...Buffer.from('test'), 0, 0, 1, 0, 1]);
  for (let i = 0; i < 20; i++) {
    q.writeUInt16BE(i, 0);
    udp.send(q, limited.address().port, '127.0.0.1');
  }
  await new Promise((res) => setTimeout(res, 500));
  t.ok(answers >= 5 && answers <= 6, `the burst is answered, the rest dropped (${answers} answers)`);
  t.ok(obs2.limits.filter((l) => l === 'dns_rate').length >= 14, 'each drop counted');
});

t.test('blocked: nxdomain, and the block-page address for A', async (t) => {
  const upstream = await startTestDns(RECORDS);
  t.teardown(() => upstream.close());
  const holder = new PolicyHolder();
  holder.swap(policy());
  const nx = await startDnsListener(options(upstream.port, { blocked: 'nxdomain' }), createDnsHooks(holder), nullObserver);
  t.teardown(() => nx.close());
  const nxa = await dig(nx.address().port, 'blocked.test', 'A');
  t.equal(nxa.status, 'NXDOMAIN');
  t.same(nxa.authority, ['blocked.test. 60 IN SOA safespot.invalid. hostmaster.safespot.invalid. 1 3600 600 86400 60'], 'dns.blocked: nxdomain carries the SOA');
  const page = await startDnsListener(options(upstream.port, { blockAddresses: { v4: Uint8Array.of(192, 0, 2, 80), v6: new Uint8Array(16) } }), createDnsHooks(holder), nullObserver);
  t.teardown(() => page.close());
  t.same((await dig(page.address().port, 'blocked.test', 'A')).answer, ['blocked.test. IN A 192.0.2.80']);
  const empty = await startDnsListener(options(upstream.port, { https: 'empty' }), createDnsHooks(holder), nullObserver);
  t.teardown(() => empty.close());
  t.same((await dig(empty.address().port, 'https.allowed.test', 'HTTPS')).answer, [], 'dns.https: empty answers type 65 with NODATA');
  t.equal(upstream.asked('https.allowed.test'), 0);
  t.same((await dig(empty.address().port, 'allowed.test', 'A')).answer, ['allowed.test. IN A 192.0.2.10'], 'other types still forwarded');
  // No policy at all: fail closed, nothing forwarded.
  const none = await startDnsListener(options(upstream.port), createDnsHooks(new PolicyHolder()), nullObserver);
  t.teardown(() => none.close());
  t.same((await dig(none.address().port, 'www.allowed.test', 'A')).answer, ['www.allowed.test. IN A 0.0.0.0']);
});
