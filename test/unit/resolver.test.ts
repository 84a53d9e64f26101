/**
 * The resolver (static hosts, then a DNS client with a TTL-capped, bounded cache and shared
 * in-flight queries) with a fake DNS client and a fake clock, and the destination check table.
 */
import t from 'tap';
import { parseHostsValue, privateAddressReason, Resolver, sameAddress, type DnsClient } from '../../proxy/resolver.js';

type Rec = { address: string; ttl: number };

function fakeDns(table: Record<string, { v4?: Rec[]; v6?: Rec[]; fail?: string }>): DnsClient & { queries: string[] } {
  const queries: string[] = [];
  const answer = (name: string, fam: 'v4' | 'v6') => {
    queries.push(`${fam} ${name}`);
    const e = table[name];
    if (!e) return Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' }));
    if (e.fail) return Promise.reject(Object.assign(new Error('fail'), { code: e.fail }));
    const list = e[fam];
    return list ? Promise.resolve(list) : Promise.reject(Object.assign(new Error('nodata'), { code: 'ENODATA' }));
  };
  return { queries, resolve4: (n) => answer(n, 'v4'), resolve6: (n) => answer(n, 'v6') };
}

t.test('upstream.hosts values', async (t) => {
  const cases: [string, { address: string; port: number | null } | null][] = [
    ['10.0.0.5', { address: '10.0.0.5', port: null }],
    ['127.0.0.1:8443', { address: '127.0.0.1', port: 8443 }],
    ['[::1]:8443', { address: '::1', port: 8443 }],
    ['[fd00::1]', { address: 'fd00::1', port: null }],
    ['fd00::1', { address: 'fd00::1', port: null }],
    ['example.test', null],
    ['10.0.0.5:0', null],
    ['10.0.0.5:70000', null],
    ['10.0.0.5:abc', null],
    ['', null],
  ];
  for (const [v, want] of cases) t.same(parseHostsValue(v), want, v || '(empty)');
  t.throws(() => new Resolver({ hosts: { 'bad.test': 'nope' }, dnsCacheTtlMs: 1000, dns: fakeDns({}) }), { code: 'ERR_CONFIG_INVALID' });
});

t.test('order: IP literal, then static hosts (trusted), then DNS', async (t) => {
  const dns = fakeDns({ 'www.example.test': { v4: [{ address: '93.184.216.34', ttl: 300 }] }, 'v6only.test': { v6: [{ address: '2001:db8::1', ttl: 30 }] } });
  const r = new Resolver({ hosts: { 'Local.Test': '10.0.0.5', 'port.test': '127.0.0.1:8443' }, dnsCacheTtlMs: 60_000, dns });
  t.same(await r.resolve('192.0.2.1', 443), { address: '192.0.2.1', port: 443, trusted: false });
  t.same(await r.resolve('[2001:db8::2]', 443), { address: '2001:db8::2', port: 443, trusted: false });
  t.same(await r.resolve('local.test.', 80), { address: '10.0.0.5', port: 80, trusted: true });
  t.same(await r.resolve('PORT.test', 443), { address: '127.0.0.1', port: 8443, trusted: true });
  t.same(await r.resolve('www.example.test', 443), { address: '93.184.216.34', port: 443, trusted: false });
  t.same(await r.resolve('v6only.test', 443), { address: '2001:db8::1', port: 443, trusted: false });
  t.equal(r.isStatic('LOCAL.test'), true);
  t.equal(r.isStatic('www.example.test'), false);
  t.notOk(dns.queries.some((q) => q.includes('local.test') || q.includes('port.test')), 'static names never reach DNS');
});

t.test('cache: TTL respected, capped by dnsCacheTtlMs, in-flight shared, bounded', async (t) => {
  let now = 1_000_000;
  const dns = fakeDns({
    'short.test': { v4: [{ address: '198.51.100.1', ttl: 2 }] },
    'long.test': { v4: [{ address: '198.51.100.2', ttl: 86_400 }] },
    'zero.test': { v4: [{ address: '198.51.100.3', ttl: 0 }] },
  });
  const r = new Resolver({ hosts: {}, dnsCacheTtlMs: 10_000, dns, now: () => now, maxEntries: 2 });
  const count = (name: string) => dns.queries.filter((q) => q === `v4 ${name}`).length;
  await Promise.all([r.resolve('short.test', 443), r.resolve('short.test', 443), r.resolve('short.test', 443)]);
  t.equal(count('short.test'), 1, 'three concurrent lookups, one query');
  now += 1500;
  await r.resolve('short.test', 443);
  t.equal(count('short.test'), 1, 'within the TTL: cached');
  now += 1000;
  await r.resolve('short.test', 443);
  t.equal(count('short.test'), 2, 'after the 2 s TTL: asked again');
  await r.resolve('long.test', 443);
  now += 9_000;
  await r.resolve('long.test', 443);
  t.equal(count('long.test'), 1);
  now += 2_000;
  await r.resolve('long.test', 443);
  t.equal(count('long.test'), 2, 'a day-long TTL is capped at dnsCacheTtlMs');
  await r.resolve('zero.test', 443);
  await r.resolve('zero.test', 443);
  t.equal(count('zero.test'), 2, 'TTL 0 is not cached');
  t.ok(r.cacheSize() <= 2, 'bounded by maxEntries');
});

t.test('failures become ERR_RESOLVE', async (t) => {
  const r = new Resolver({ hosts: {}, dnsCacheTtlMs: 1000, dns: fakeDns({ 'servfail.test': { fail: 'ESERVFAIL' }, 'empty.test': {} }) });
  for (const name of ['nx.test', 'servfail.test', 'empty.test', 'bad name.test', '-'.repeat(300)]) {
    await t.rejects(r.resolve(name, 443), { code: 'ERR_RESOLVE', name: 'SafespotError' }, name.slice(0, 20));
  }
});

t.test('destination check: private, loopback and their IPv6 forms are refused; public passes', async (t) => {
  const refused = [
    '127.0.0.1', '127.1.2.3', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '0.0.0.0',
    '100.64.0.1', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1',
    '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::1', '2002:c0a8:101::1', 'not-an-ip',
  ];
  for (const a of refused) t.not(privateAddressReason(a), null, `${a} refused`);
  const allowed = ['93.184.216.34', '1.1.1.1', '8.8.8.8', '2606:4700::1111', '::ffff:93.184.216.34', '64:ff9b::808:808', '2002:808:808::1', '172.32.0.1', '11.0.0.1'];
  for (const a of allowed) t.equal(privateAddressReason(a), null, `${a} allowed`);
});

t.test('destination check: the IANA special-purpose registries, one address per range that is not globally reachable', async (t) => {
  // [range, an address inside it]: each must be refused (finding 6a of issue 22 let several through).
  const notGlobal: [string, string][] = [
    ['0.0.0.0/8', '0.1.2.3'],
    ['10.0.0.0/8', '10.255.0.1'],
    ['100.64.0.0/10', '100.127.255.254'],
    ['127.0.0.0/8', '127.255.255.254'],
    ['169.254.0.0/16', '169.254.0.1'],
    ['172.16.0.0/12', '172.20.0.1'],
    ['192.0.0.0/24', '192.0.0.8'],
    ['192.0.0.0/29 (DS-Lite)', '192.0.0.1'],
    ['192.0.0.170/32 (NAT64 discovery)', '192.0.0.170'],
    ['192.0.2.0/24 (TEST-NET-1)', '192.0.2.1'],
    ['192.88.99.0/24 (6to4 relay, deprecated)', '192.88.99.1'],
    ['192.168.0.0/16', '192.168.255.1'],
    ['198.18.0.0/15 (benchmarking)', '198.19.0.1'],
    ['198.51.100.0/24 (TEST-NET-2)', '198.51.100.7'],
    ['203.0.113.0/24 (TEST-NET-3)', '203.0.113.9'],
    ['240.0.0.0/4', '240.0.0.1'],
    ['255.255.255.255/32', '255.255.255.255'],
    ['::1/128', '::1'],
    ['::/128', '::'],
    ['::ffff:0:0/96 (IPv4-mapped)', '::ffff:10.1.2.3'],
    ['::ffff:0:0:0/96 (SIIT, IPv4-translated)', '::ffff:0:7f00:1'],
    ['::ffff:0:0:0/96 of a public IPv4', '::ffff:0:808:808'],
    ['64:ff9b:1::/48 (local-use NAT64)', '64:ff9b:1::7f00:1'],
    ['64:ff9b:1::/48 of a public IPv4', '64:ff9b:1::808:808'],
    ['100::/64 (discard-only)', '100::1'],
    ['100:0:0:1::/64 (dummy prefix)', '100:0:0:1::1'],
    ['2001::/23 (IETF protocol assignments)', '2001:1::4'],
    ['2001::/32 (Teredo)', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
    ['2001:2::/48 (benchmarking)', '2001:2::1'],
    ['2001:10::/28 (ORCHID, deprecated)', '2001:10::1'],
    ['2001:db8::/32 (documentation)', '2001:db8::1'],
    ['3fff::/20 (documentation)', '3fff:fff::1'],
    ['5f00::/16 (SRv6 SIDs)', '5f00::1'],
    ['fc00::/7', 'fdff::1'],
    ['fe80::/10', 'febf::1'],
    ['fec0::/10 (site-local, deprecated)', 'fec0::1'],
    ['ff00::/8', 'ff0e::1'],
  ];
  for (const [range, a] of notGlobal) t.not(privateAddressReason(a), null, `${range}: ${a} refused`);
  // Registry entries IANA marks globally reachable stay destinations, and so do the edges of the ranges.
  const global = [
    '192.0.0.9', '192.0.0.10', '2001:1::1', '2001:1::2', '2001:3::1', '2001:4:112::1', '2001:20::1', '2001:30::1',
    '64:ff9b::808:808', '192.0.1.255', '192.0.3.0', '198.51.99.255', '203.0.112.255', '203.0.114.0', '2001:200::1',
    '2001:db7:ffff::1', '2001:db9::1', '101::1', '100:0:0:2::1',
  ];
  for (const a of global) t.equal(privateAddressReason(a), null, `${a} allowed`);
});

t.test('sameAddress compares across text forms', async (t) => {
  t.ok(sameAddress('127.0.0.1', '::ffff:127.0.0.1'));
  t.ok(sameAddress('::1', '0:0:0:0:0:0:0:1'));
  t.notOk(sameAddress('127.0.0.1', '127.0.0.2'));
  t.notOk(sameAddress('x', 'x'));
});

t.test('resolveNow: the answers known without waiting, the same as resolve(), and null for the rest', async (t) => {
  let now = 5_000_000;
  const dns = fakeDns({ 'dns.test': { v4: [{ address: '198.51.100.7', ttl: 60 }] }, 'host1': { v4: [{ address: '198.51.100.8', ttl: 60 }] } });
  // An IP literal as a key of upstream.hosts: the literal still wins (IP literals come first).
  const r = new Resolver({ hosts: { 'static.test': '10.0.0.5:8443', '192.0.2.9': '10.9.9.9', 'name9': '10.0.0.9' }, dnsCacheTtlMs: 60_000, dns, now: () => now });
  const cases: [string, ReturnType<Resolver['resolveNow']>][] = [
    ['192.0.2.1', { address: '192.0.2.1', port: 443, trusted: false }],
    ['192.0.2.9', { address: '192.0.2.9', port: 443, trusted: false }],
    ['[2001:db8::2]', { address: '2001:db8::2', port: 443, trusted: false }],
    ['::ffff:127.0.0.1', { address: '::ffff:127.0.0.1', port: 443, trusted: false }],
    ['Static.Test.', { address: '10.0.0.5', port: 8443, trusted: true }],
    ['name9', { address: '10.0.0.9', port: 443, trusted: true }],
    ['dns.test', null],
    ['host1', null],
    ['1.2.3', null],
  ];
  for (const [host, want] of cases) {
    t.same(r.resolveNow(host, 443), want, host);
    if (want !== null) t.same(await r.resolve(host, 443), want, `${host}: resolve() agrees`);
  }
  t.equal(dns.queries.length, 0, 'no DNS query for any of them');
  t.same(await r.resolve('dns.test', 443), { address: '198.51.100.7', port: 443, trusted: false });
  t.same(await r.resolve('host1', 80), { address: '198.51.100.8', port: 80, trusted: false });
  t.same(r.resolveNow('DNS.test', 8443), { address: '198.51.100.7', port: 8443, trusted: false }, 'a cached answer is known now');
  t.same(r.resolveNow('host1', 80), { address: '198.51.100.8', port: 80, trusted: false }, 'also for a name ending in a digit');
  now += 61_000;
  t.equal(r.resolveNow('dns.test', 443), null, 'an expired answer is not');
});
