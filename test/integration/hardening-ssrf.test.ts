/**
 * Not an open proxy, not an SSRF tool (issue 9, item 4). A "trap" listener on loopback stands in for
 * what a guest must never reach (the venue's router, a metadata service, the admin listener): every
 * attempt below must be refused, and the trap must never see a connection.
 *
 * - Clients outside `clients` (a socket bound to 127.0.0.2 while only 127.0.0.1/32 is allowed).
 * - Destinations on loopback, link-local, RFC 1918, 0.0.0.0 and the proxy's own ports, written every
 *   way a URL parser or a resolver accepts: IPv4-mapped IPv6, decimal/octal/hex IPv4, trailing
 *   dots, and DNS names that resolve there (a test DNS server on loopback answers A/AAAA).
 * - The admin port (ownEndpoints) even with allowPrivate true, including through 0.0.0.0.
 * And through a real `safespot serve`: `upstream.dnsServers` wiring, names resolving to loopback,
 * the admin port.
 */
import t from 'tap';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CidrSet } from '../../policy/ip.js';
import { CLI_DEMO_DIR as DEMO, serve } from '../helpers/appliance.js';
import { clientHello } from '../helpers/client-hello-builder.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange, isAlert, openSocket, readAll, readUntil } from '../helpers/sockets.js';
import { startTestDns } from '../helpers/dns.js';
import { startHttpUpstream } from '../helpers/upstream.js';

const ACCESS_DENIED = 49;

/** A listener that must never be reached; counts the connections it gets. */
async function trap(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; hits: () => number }> {
  let hits = 0;
  const server: Server = createServer((s) => {
    hits++;
    s.on('error', () => {});
    s.end('HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\ntrapped');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as { port: number }).port, hits: () => hits };
}

const up = await startHttpUpstream();
t.teardown(() => up.close());
const dns = await startTestDns({
  'loop.test': ['127.0.0.1'],
  localhost: ['127.0.0.1'],
  'meta.test': ['169.254.169.254'],
  'lan.test': ['192.168.1.10'],
  'ten.test': ['10.1.2.3'],
  'zero.test': ['0.0.0.0'],
  'v6loop.test': ['::1'],
  'mapped.test': ['::ffff:127.0.0.1'],
  'ula.test': ['fd00::1'],
  'linklocal6.test': ['fe80::1'],
  'nat64.test': ['64:ff9b::7f00:1'],
  // A public-looking answer first and a loopback one second: IPv4 is preferred, so the A record wins.
  'sneaky.test': ['127.0.0.1', '2001:db8::1'],
});
t.teardown(() => dns.close());

/** A port free on loopback a moment ago (for listeners whose port must be known before they start). */
async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const status = (b: Buffer): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(b.toString('latin1'))?.[1] ?? 0);

/** Hosts (as written in a URL authority) that all lead to loopback, link-local or private space. */
function forbiddenHosts(): string[] {
  return [
    '127.0.0.1', '127.1', '2130706433', '0177.0.0.1', '0x7f.1', '0x7f000001', '127.0.0.1.', '127.000.000.001',
    '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[0:0:0:0:0:ffff:7f00:1]', '[::127.0.0.1]', '[64:ff9b::7f00:1]', '[2002:7f00:1::]',
    '169.254.169.254', '[::ffff:169.254.169.254]', '2852039166', '10.0.0.1', '192.168.0.1', '172.16.0.1', '100.64.0.1',
    '0.0.0.0', '0', '[::]', '[fe80::1]', '[fd00::1]',
    'localhost', 'loop.test', 'LOOP.TEST.', 'loop.test.', 'meta.test', 'lan.test', 'ten.test', 'zero.test', 'v6loop.test', 'mapped.test', 'ula.test',
    'linklocal6.test', 'nat64.test', 'sneaky.test',
  ];
}

t.test('allowPrivate false: every form of a private destination is refused on every listener; the trap sees nothing', async (t) => {
  const target = await trap(t);
  const obs = recordingObserver();
  const proxy = await startTestProxy(
    t,
    testOptions({ 'allowed.test': `127.0.0.1:${up.port}` }, { upstream: { allowPrivate: false, ports: [443, 80, target.port], dnsServers: [dns.server] } }),
    testHooks(),
    obs,
  );
  // The positive control: a destination the operator named in upstream.hosts is served.
  const ok = await exchange(proxy.port('forward'), 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
  t.equal(status(ok), 200, 'upstream.hosts names are trusted (control)');

  for (const host of forbiddenHosts()) {
    const authority = `${host}:${target.port}`;
    const fwd = await exchange(proxy.port('forward'), `GET http://${authority}/latest/meta-data/ HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
    t.equal(status(fwd), 403, `forward GET http://${authority}/ refused`);
    const tr = await exchange(proxy.port('http'), `GET /latest/meta-data/ HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
    t.equal(status(tr), 403, `transparent Host: ${authority} refused`);
    // CONNECT: the authority is decided, then the ClientHello; the destination check refuses.
    const s = await openSocket(proxy.port('forward'));
    const all = readAll(s);
    s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    const head = await readUntil(s, (b) => b.includes('\r\n\r\n'));
    t.equal(status(head), 403, `CONNECT ${authority}: 403 before any tunnel is opened`);
    s.destroy();
    void all.catch(() => undefined);
  }
  // The transparent TLS listener routes by SNI to port 443: names that resolve to private space.
  for (const name of ['loop.test', 'meta.test', 'lan.test', 'v6loop.test', 'mapped.test', 'localhost', 'zero.test']) {
    const res = await exchange(proxy.port('tls'), clientHello({ sni: name }));
    t.ok(isAlert(res, ACCESS_DENIED), `SNI ${name}: access_denied alert`);
  }
  t.equal(target.hits(), 0, 'the trap was never reached');
  t.ok(obs.count('upstream refused_destination') >= forbiddenHosts().length * 3, 'each refusal counted as refused_destination');
  t.ok(dns.questions.some((q) => q.startsWith('loop.test ')), 'names really went through the test DNS server');
});

t.test('clients outside `clients` are refused on every listener before anything is parsed', async (t) => {
  const obs = recordingObserver();
  const proxy = await startTestProxy(
    t,
    testOptions({ 'allowed.test': `127.0.0.1:${up.port}` }, { clients: CidrSet.parse(['127.0.0.1/32']) }),
    testHooks(),
    obs,
  );
  const get = 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n';
  t.equal(status(await exchange(proxy.port('forward'), get, '127.0.0.2')), 403, 'forward: 127.0.0.2 refused');
  t.equal(status(await exchange(proxy.port('forward'), 'CONNECT allowed.test:443 HTTP/1.1\r\n\r\n', '127.0.0.2')), 403, 'CONNECT from 127.0.0.2 refused');
  t.equal(status(await exchange(proxy.port('http'), 'GET /hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n', '127.0.0.2')), 403, 'transparent http: refused');
  t.ok(isAlert(await exchange(proxy.port('tls'), clientHello({ sni: 'allowed.test' }), '127.0.0.2'), ACCESS_DENIED), 'transparent tls: access_denied');
  t.equal(obs.count('limit client_forbidden'), 4, 'four refusals counted');
  t.equal(obs.count('verdict'), 0, 'no decision was even asked for');
  t.equal(status(await exchange(proxy.port('forward'), get, '127.0.0.1')), 200, 'the allowed client is served');
});

t.test('allowPrivate true: the admin port and the proxy\'s own ports are still refused, in every spelling', async (t) => {
  const admin = await trap(t);
  const obs = recordingObserver();
  // The proxy's own ports are chosen first and allowed in upstream.ports, so what refuses them
  // below is the loop protection, not the port list.
  const [fwd, http, tls] = [await freePort(), await freePort(), await freePort()];
  const proxy = await startTestProxy(
    t,
    {
      ...testOptions({}, {
        listeners: { forward: { host: '127.0.0.1', port: fwd }, http: { host: '127.0.0.1', port: http }, tls: { host: '127.0.0.1', port: tls } },
        upstream: { allowPrivate: true, ports: [443, 80, admin.port, up.port, fwd, http, tls], dnsServers: [dns.server] },
      }),
      ownEndpoints: [{ host: '127.0.0.1', port: admin.port }],
    },
    testHooks(),
    obs,
  );
  // Control: allowPrivate really lets a loopback destination through.
  const control = await exchange(proxy.port('forward'), `GET http://loop.test:${up.port}/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.equal(status(control), 200, 'allowPrivate: loopback upstream reachable (control)');
  const own = [admin.port, proxy.port('forward'), proxy.port('http'), proxy.port('tls')];
  for (const port of own) {
    for (const host of ['127.0.0.1', 'loop.test', '[::ffff:127.0.0.1]', '2130706433', '0x7f.1', '127.0.0.1.', '0.0.0.0', '0', 'zero.test']) {
      const authority = `${host}:${port}`;
      const res = await exchange(proxy.port('forward'), `GET http://${authority}/metrics HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
      t.equal(status(res), 403, `GET http://${authority}/metrics refused`);
    }
  }
  const s = await openSocket(proxy.port('forward'));
  const all = readAll(s);
  s.write(`CONNECT loop.test:${admin.port} HTTP/1.1\r\n\r\n`);
  const head = await readUntil(s, (b) => b.includes('\r\n\r\n'));
  await all.catch(() => undefined);
  t.equal(status(head), 403, 'CONNECT to the admin port refused with 403 before any tunnel');
  t.equal(admin.hits(), 0, 'the admin port was never reached');
});

t.test('through a real serve: upstream.dnsServers, names resolving to loopback, the admin port', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-ssrf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = await trap(t);
  const config = join(dir, 'config.yaml');
  const write = (allowPrivate: boolean): void =>
    writeFileSync(config, [
      'listeners: { forward: { host: 127.0.0.1, port: 0 }, http: { host: 127.0.0.1, port: 0 } }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'clients: [127.0.0.1/32]',
      `upstream: { allowPrivate: ${allowPrivate}, dnsServers: ["${dns.server}"], ports: [443, 80, ${target.port}] }`,
      'lists:',
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
      `journal: { path: ${join(dir, 'journal.db')} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      '',
    ].join('\n'));
  write(false);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  for (const host of ['loop.test', 'meta.test', 'mapped.test', '[::ffff:7f00:1]', '0177.0.0.1']) {
    const res = await exchange(app.forward, `GET http://${host}:${target.port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    t.equal(status(res), 403, `serve: http://${host}:${target.port}/ refused`);
  }
  t.equal(status(await exchange(app.forward, `GET http://loop.test:${target.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`, '127.0.0.2')), 403, 'serve: client outside clients refused');
  const metrics = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.match(metrics, /safespot_upstream_errors_total\{reason="refused_destination"\} 5/, 'five refused destinations counted');
  t.match(metrics, /safespot_limits_hit_total\{limit="client_forbidden"\} 1/, 'one forbidden client counted');
  t.ok(dns.questions.some((q) => q.startsWith('meta.test ')), 'serve asked the configured DNS server');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);

  write(true);
  const open = await serve(config);
  t.teardown(() => void open.child.kill('SIGKILL'));
  for (const host of ['127.0.0.1', 'loop.test', '0.0.0.0', '[::ffff:127.0.0.1]']) {
    const res = await exchange(open.forward, `GET http://${host}:${open.admin}/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    t.equal(status(res), 403, `serve, allowPrivate true: the admin port via ${host} refused`);
    t.notMatch(res.toString(), /safespot_/, 'no metrics leaked through the proxy');
  }
  t.equal(target.hits(), 0, 'the trap was never reached');
  open.child.kill('SIGTERM');
  t.equal(await open.exited, 0);
});

t.test('plain HTTP is held to upstream.ports like CONNECT: 403, counted, and the trap sees nothing', async (t) => {
  const target = await trap(t);
  const obs = recordingObserver();
  // allowPrivate: only the port list stands between a guest and the trap (think port 25 or 6379).
  const proxy = await startTestProxy(t, testOptions({ 'allowed.test': `127.0.0.1:${up.port}`, 'trap.test': '127.0.0.1' }, { upstream: { allowPrivate: true, ports: [443, 80] } }), testHooks(), obs);
  const attempts: [string, number, string][] = [
    ['forward, absolute URI', proxy.port('forward'), `GET http://127.0.0.1:${target.port}/ HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nConnection: close\r\n\r\n`],
    ['forward, a name from upstream.hosts', proxy.port('forward'), `GET http://trap.test:${target.port}/ HTTP/1.1\r\nHost: trap.test:${target.port}\r\nConnection: close\r\n\r\n`],
    ['forward, upgrade', proxy.port('forward'), `GET http://127.0.0.1:${target.port}/ HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`],
    ['transparent http, Host port', proxy.port('http'), `GET / HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nConnection: close\r\n\r\n`],
    ['transparent http, upgrade', proxy.port('http'), `GET / HTTP/1.1\r\nHost: trap.test:${target.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`],
  ];
  for (const [what, port, bytes] of attempts) {
    const res = await exchange(port, bytes);
    t.equal(status(res), 403, `${what}: port ${target.port} refused with 403`);
    // (An upgrade's refusal has its own generic text in http-forward.ts; the status is what counts.)
    if (!what.endsWith('upgrade')) t.match(res.toString('latin1'), new RegExp(`port ${target.port} is not allowed`), `${what}: the page says why`);
  }
  t.equal(obs.count('upstream refused_destination'), attempts.length, 'each counted as a refused destination, as CONNECT counts it');
  t.equal(target.hits(), 0, 'the trap was never reached');
  // The operator's own mapping keeps working: port 80 asked for, the mapped port connected to.
  const mapped = await exchange(proxy.port('forward'), 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
  t.equal(status(mapped), 200, 'allowed.test -> 127.0.0.1:<origin port> still served on port 80');
  const mappedT = await exchange(proxy.port('http'), 'GET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
  t.equal(status(mappedT), 200, 'and through the transparent http listener');
});

t.test('through a real serve: an admin listener on `localhost` is not reachable through the proxy, even with allowPrivate', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-ssrf-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const workers of [1, 2]) {
    // The admin port is chosen first and allowed in upstream.ports: only the own-endpoint check may refuse it.
    const adminPort = await freePort();
    const config = join(dir, `config-${workers}.yaml`);
    writeFileSync(config, [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      `admin: { host: localhost, port: ${adminPort} }`,
      'clients: [127.0.0.1/32]',
      `upstream: { allowPrivate: true, dnsServers: ["${dns.server}"], ports: [443, 80, ${adminPort}] }`,
      `workers: ${workers}`,
      'lists:',
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
      `journal: { path: ${join(dir, `journal-${workers}.db`)} }`,
      `state: { dir: ${join(dir, `state-${workers}`)} }`,
      '',
    ].join('\n'));
    const app = await serve(config);
    t.teardown(() => void app.child.kill('SIGKILL'));
    t.equal(app.admin, adminPort, `workers ${workers}: admin on localhost:${adminPort}`);
    // Whichever of 127.0.0.1 and ::1 `localhost` became, neither spelling reaches it (the other has nothing listening).
    for (const host of ['127.0.0.1', '[::1]', 'localhost', 'loop.test', '[::ffff:127.0.0.1]', '0.0.0.0']) {
      const authority = `${host}:${adminPort}`;
      for (const req of [`GET http://${authority}/metrics HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`, `POST http://${authority}/reload HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`]) {
        const res = await exchange(app.forward, req);
        const code = status(res);
        t.ok(code === 403 || code === 502, `workers ${workers}: ${req.slice(0, req.indexOf(' HTTP'))} refused (${code})`);
        t.notMatch(res.toString(), /safespot_|reload/i, 'nothing from the admin listener came back');
      }
    }
    t.equal(status(await exchange(app.forward, `GET http://127.0.0.1:${adminPort}/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)) === 403 || status(await exchange(app.forward, `GET http://[::1]:${adminPort}/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)) === 403, true, 'the bound address is refused as this appliance');
    app.child.kill('SIGTERM');
    t.equal(await app.exited, 0);
  }
});
