/**
 * dnsListenerOptions (appliance/serve/dns.ts): the blocked-name answer addresses from the config,
 * as the bytes the listener writes into A and AAAA records (policy/ip.ts's parser, every IPv6 form).
 */
import t from 'tap';
import { dnsListenerOptions } from '../../appliance/serve/dns.js';
import { validateConfig } from '../../appliance/config.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const opts = (blockAddress: object) =>
  dnsListenerOptions(validateConfig({ listeners: { dns: { host: '127.0.0.1', port: 0 } }, dns: { blockAddress } }, '/'), []);

t.test('absent: 0.0.0.0 and ::', async (t) => {
  const o = opts({});
  t.equal(hex(o.blockAddresses.v4), '00000000');
  t.equal(hex(o.blockAddresses.v6), '0'.repeat(32));
});

t.test('an IPv4 address is 4 bytes, an IPv6 one 16, in every textual form', async (t) => {
  t.equal(hex(opts({ ipv4: '192.0.2.80' }).blockAddresses.v4), 'c0000250');
  t.equal(hex(opts({ ipv6: '2001:db8::80' }).blockAddresses.v6), '20010db8000000000000000000000080');
  t.equal(hex(opts({ ipv6: '::ffff:192.0.2.80' }).blockAddresses.v6), '00000000000000000000ffffc0000250');
  t.equal(hex(opts({ ipv6: 'fe80::1:2' }).blockAddresses.v6), 'fe800000000000000000000000010002');
});
