/**
 * Run inside a network namespace (test/integration/limits-ipv6-prefix.test.ts makes it, with
 * addresses of two IPv6 /64s on its loopback): a proxy with a small per-client limit, connections
 * from each local address given, in order; prints which were refused, as JSON on stdout.
 *
 *   node ipv6-prefix-probe.js PREFIX MAX_PER_CLIENT ADDRESS...
 */
import { connect, type Socket } from 'node:net';
import { CidrSet } from '../../policy/ip.js';
import { startProxy } from '../../proxy/server.js';
import { recordingObserver, testHooks } from './hooks.js';
import { testOptions } from './proxy-rig.js';

const [prefix, max, ...from] = process.argv.slice(2);
const obs = recordingObserver();
const proxy = await startProxy(
  testOptions({}, { listeners: { forward: { host: '::', port: 0 } }, clients: CidrSet.parse(['fd00::/8']), limits: { maxConnectionsPerClient: Number(max), clientIpv6Prefix: Number(prefix) } }),
  testHooks(),
  obs,
);
const port = proxy.addresses().forward!.port;
const sockets: { address: string; socket: Socket; closed: boolean; said: string }[] = [];
for (const address of from) {
  const socket = connect({ host: from[0], port, localAddress: address });
  const entry = { address, socket, closed: false, said: '' };
  socket.on('data', (d: Buffer) => (entry.said += d.toString('latin1')));
  socket.on('close', () => (entry.closed = true));
  socket.on('error', () => {});
  await new Promise<void>((r) => socket.once('connect', () => r()).once('error', () => r()));
  sockets.push(entry);
  await new Promise((r) => setTimeout(r, 20)); // in order: each admitted or refused before the next
}
await new Promise((r) => setTimeout(r, 300));
const result = {
  refused: sockets.map((s) => ({ address: s.address, refused: s.closed, status: /^HTTP\/1\.1 (\d+)/.exec(s.said)?.[1] ?? null })),
  perClientRefusals: obs.count('limit connections_per_client'),
};
for (const s of sockets) s.socket.destroy();
await proxy.close(0);
process.stdout.write(JSON.stringify(result) + '\n');
