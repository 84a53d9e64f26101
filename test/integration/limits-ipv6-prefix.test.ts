/**
 * limits.maxConnectionsPerClient for IPv6 clients counts the /64 (limits.clientIpv6Prefix), not the
 * address (issue 22, finding 5): an IPv6 device makes up any address of its /64 (privacy addresses),
 * so per address it could open the limit once per address. Real sockets in a network namespace
 * whose loopback holds addresses of two /64s; the proxy and the clients run there
 * (test/helpers/ipv6-prefix-probe.ts), as the namespace's addresses are not reachable from here.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { clientKey } from '../../proxy/limits.js';
import { namespaceSupport } from '../helpers/netns.js';

const run = promisify(execFile);
const PROBE = join(import.meta.dirname, '..', 'helpers', 'ipv6-prefix-probe.js');

t.test('clientKey: the IPv6 prefix, IPv4 as it is', async (t) => {
  t.equal(clientKey('10.0.0.7', 64), '10.0.0.7');
  t.equal(clientKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64), '2001:db8:1:2:0:0:0:0/64');
  t.equal(clientKey('2001:db8:1:2::1', 64), clientKey('2001:db8:1:2:ffff::9', 64), 'one /64, one key');
  t.not(clientKey('2001:db8:1:2::1', 64), clientKey('2001:db8:1:3::1', 64), 'another /64, another key');
  t.equal(clientKey('2001:db8:1:2::1', 56), clientKey('2001:db8:1:ff::1', 56), 'a /56');
  t.not(clientKey('2001:db8:1:2::1', 56), clientKey('2001:db8:1:100::1', 56));
  t.equal(clientKey('2001:db8:1:2::1', 60), '2001:db8:1:0:0:0:0:0/60', 'a prefix inside a group');
  t.equal(clientKey('2001:db8::1', 128), '2001:db8::1', '/128: the address');
  t.equal(clientKey('::1', 64), '0:0:0:0:0:0:0:0/64');
  t.equal(clientKey('not an address', 64), 'not an address');
});

t.test('in a network namespace: one /64 is one client', async (t) => {
  const reason = await namespaceSupport();
  if (reason) {
    t.skip(`network namespaces unavailable: ${reason}`, () => undefined);
    return;
  }
  const ns = `ss6p${process.pid % 100000}`;
  await run('ip', ['netns', 'add', ns]);
  t.teardown(() => run('ip', ['netns', 'del', ns]).catch(() => undefined));
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const sameNet = ['fd00:5:1::1', 'fd00:5:1::2', 'fd00:5:1:0:aaaa::3', 'fd00:5:1:0:bbbb::4', 'fd00:5:1:0:cccc::5'];
  const otherNet = 'fd00:5:2::1';
  for (const a of [...sameNet, otherNet]) await run('ip', ['-n', ns, 'addr', 'add', `${a}/64`, 'dev', 'lo', 'nodad']);
  const probe = async (prefix: number) => {
    const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, PROBE, String(prefix), '3', ...sameNet, otherNet], { timeout: 30_000 });
    return JSON.parse(stdout) as { refused: { address: string; refused: boolean; status: string | null }[]; perClientRefusals: number };
  };
  const by64 = await probe(64);
  t.same(by64.refused.map((r) => r.refused), [false, false, false, true, true, false], '/64: three from the /64 admitted, the 4th and 5th refused, another /64 admitted');
  t.same(by64.refused.filter((r) => r.refused).map((r) => r.status), ['503', '503'], 'refused with 503 on the forward listener');
  t.equal(by64.perClientRefusals, 2, 'counted as connections_per_client');
  const by128 = await probe(128);
  t.same(by128.refused.map((r) => r.refused), [false, false, false, false, false, false], '/128 (per address, the old way): every address admitted');
  t.equal(by128.perClientRefusals, 0);
});
