/** policy/ip.ts: addresses and networks, IPv4, IPv6, IPv4-mapped, prefixes and garbage. */
import t from 'tap';
import { CidrSet, isIpv4Mapped, parseCidr, parseIp } from '../../policy/ip.js';

const hex = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString('hex'));

t.test('parseIp', async (t) => {
  const table: Array<[string, string | null]> = [
    ['10.1.2.3', '00000000000000000000ffff0a010203'],
    ['0.0.0.0', '00000000000000000000ffff00000000'],
    ['255.255.255.255', '00000000000000000000ffffffffffff'],
    ['::1', '00000000000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['[::1]', '00000000000000000000000000000001'],
    ['fe80::1%eth0', 'fe800000000000000000000000000001'],
    ['2001:db8::8:800:200c:417a', '20010db8000000000008080020 0c417a'.replace(' ', '')],
    ['2001:DB8:0:0:0:0:0:1', '20010db8000000000000000000000001'],
    ['::ffff:10.1.2.3', '00000000000000000000ffff0a010203'],
    ['1::', '00010000000000000000000000000000'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304'],
    ['256.1.1.1', null],
    ['1.2.3', null],
    ['01.2.3.4', null],
    ['1.2.3.4.5', null],
    ['1.2.3.-4', null],
    ['', null],
    ['abc', null],
    [':::', null],
    ['1::2::3', null],
    ['1:2:3:4:5:6:7:8:9', null],
    ['1:2:3:4:5:6:7', null],
    ['1:2:3:4:5:6:7::8', null],
    ['12345::', null],
    ['g::1', null],
    ['1.2.3.4::', null],
    ['::1.2.3.4:5', null],
    ['1:2:3:4:5:6:7:1.2.3.4', null],
  ];
  for (const [text, want] of table) t.equal(hex(parseIp(text)), want, JSON.stringify(text));
  t.ok(isIpv4Mapped(parseIp('10.0.0.1')!));
  t.notOk(isIpv4Mapped(parseIp('::1')!));
});

t.test('parseCidr', async (t) => {
  const ok: Array<[string, number]> = [
    ['10.0.0.0/8', 104],
    ['0.0.0.0/0', 96],
    ['10.1.2.3', 128],
    ['fc00::/7', 7],
    ['::/0', 0],
    ['::1/128', 128],
  ];
  for (const [text, p] of ok) {
    const c = parseCidr(text);
    t.equal(typeof c === 'string' ? c : c.prefix128, p, text);
  }
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/-1', 'x/8', '[::1]/128', '10.0.0.0/08a']) {
    t.type(parseCidr(bad), 'string', bad);
  }
});

t.test('CidrSet.contains', async (t) => {
  const set = CidrSet.parse(['10.0.0.0/8', '192.168.1.128/25', 'fc00::/7', '2001:db8::1/128', '172.16.0.0/12']);
  const table: Array<[string, boolean]> = [
    ['10.255.0.1', true],
    ['11.0.0.1', false],
    ['192.168.1.128', true],
    ['192.168.1.127', false],
    ['192.168.1.255', true],
    ['172.31.255.255', true],
    ['172.32.0.0', false],
    ['::ffff:10.1.1.1', true],
    ['fd12::1', true],
    ['fe00::1', false],
    ['2001:db8::1', true],
    ['2001:db8::2', false],
    ['::a00:1', false], // IPv4-compatible (not mapped) is not 10.0.0.1
    ['garbage', false],
    ['', false],
  ];
  for (const [addr, want] of table) t.equal(set.contains(addr), want, addr);
  t.equal(CidrSet.parse(['0.0.0.0/0']).contains('1.2.3.4'), true);
  t.equal(CidrSet.parse(['0.0.0.0/0']).contains('::1'), false, 'an IPv4 /0 covers IPv4 only');
  t.equal(CidrSet.parse(['::/0']).contains('1.2.3.4'), true, '::/0 covers everything, mapped IPv4 included');
  t.throws(() => CidrSet.parse(['10.0.0.0/40']), TypeError);
});
