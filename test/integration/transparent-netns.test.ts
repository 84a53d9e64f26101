/**
 * Transparent mode for real: three network namespaces (guest client, router running safespot, upstream
 * web server), the router's REDIRECT rules installed by the shipped docker/router scripts, and curl
 * on the guest side. No proxy settings on the client: it talks to the upstream's address, and the
 * router's rules hand the connection to safespot, which routes by SNI / Host.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createTopology, namespaceSupport, type Topology } from '../helpers/netns.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'appliance', 'cli.js');

const UPSTREAM_SCRIPT = `
import https from 'node:https';
import http from 'node:http';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
const [key, cert] = [readFileSync(process.argv[2]), readFileSync(process.argv[3])];
const answer = (req, res) => { res.setHeader('content-type', 'text/plain'); res.end('upstream says hello to ' + req.headers.host + req.url); };
https.createServer({ key, cert }, answer).listen(443, '0.0.0.0');
http.createServer(answer).listen(80, '0.0.0.0');
for (const port of [443, 4433]) {
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => console.log('udp ' + port + ' ' + m.toString()));
  s.bind(port, '0.0.0.0');
}
console.log('upstream ready');
`;

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('transparent mode in network namespaces with the shipped router rules', async (t) => {
  const reason = await namespaceSupport();
  if (reason) {
    t.skip(`network namespaces unavailable: ${reason}`, () => undefined);
    return;
  }
  for (const tool of ['curl', 'openssl']) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => t.fail(`${tool} missing (test/setup-system.sh installs it)`));
  }
  const flavours = [
    { name: 'nftables', script: join(ROOT, 'docker', 'router', 'nftables.sh'), tool: 'nft' },
    { name: 'iptables', script: join(ROOT, 'docker', 'router', 'iptables.sh'), tool: 'iptables' },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'safespot-netns-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=allowed.test', '-addext', 'subjectAltName=DNS:allowed.test,DNS:blocked.test',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  writeFileSync(join(dir, 'upstream.mjs'), UPSTREAM_SCRIPT);
  writeFileSync(join(dir, 'config.yaml'), [
    'listeners:',
    '  http: { host: 0.0.0.0, port: 8080 }',
    '  tls: { host: 0.0.0.0, port: 8443 }',
    'admin: { host: 127.0.0.1, port: 9090 }',
    'clients: [10.231.1.0/24]',
    'upstream:',
    '  hosts: { allowed.test: 10.231.2.2, blocked.test: 10.231.2.2 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(ROOT, 'appliance', 'demo', 'adult.txt')} }`,
    `journal: { path: ${join(dir, 'journal.db')} }`,
    `state: { dir: ${join(dir, 'state')} }`,
    '',
  ].join('\n'));

  for (const flavour of flavours) {
    t.test(`router rules by ${flavour.name}`, async (t) => {
      if (!existsSync(flavour.script)) {
        t.fail(`${flavour.script} is missing`);
        return;
      }
      const has = await run('sh', ['-c', `command -v ${flavour.tool}`]).then(() => true, () => false);
      if (!has) {
        t.fail(`${flavour.tool} missing (test/setup-system.sh installs it)`);
        return;
      }
      const topo: Topology = await createTopology();
      t.teardown(() => topo.destroy());

      const up = topo.spawn(topo.upstream, process.execPath, [join(dir, 'upstream.mjs'), join(dir, 'key.pem'), join(dir, 'cert.pem')]);
      t.teardown(() => void up.kill('SIGKILL'));
      let upOut = '';
      up.stdout?.on('data', (d: Buffer) => (upOut += d.toString()));
      await waitFor('upstream', async () => upOut.includes('upstream ready'));

      const router = topo.spawn(topo.router, process.execPath, [CLI, 'serve', '--config', join(dir, 'config.yaml')]);
      let routerLog = '';
      router.stderr?.on('data', (d: Buffer) => (routerLog += d.toString()));
      t.teardown(() => void router.kill('SIGKILL'));
      await waitFor('safespot ready', async () => {
        const r = await topo.exec(topo.router, 'curl', ['-fsS', 'http://127.0.0.1:9090/readyz'], { timeout: 3000 });
        return r.code === 0;
      }).catch((err) => {
        t.comment(routerLog);
        throw err;
      });

      const rules = await topo.exec(topo.router, 'bash', [flavour.script, 'up', topo.guestIf, '8080', '8443']);
      t.equal(rules.code, 0, `${flavour.name} rules installed: ${rules.stderr}`);

      const curl = (args: string[]) => topo.exec(topo.client, 'curl', ['-sS', '--max-time', '8', '--cacert', join(dir, 'cert.pem'), ...args]);

      const okTls = await curl(['--resolve', 'allowed.test:443:10.231.2.2', 'https://allowed.test/page']);
      t.equal(okTls.code, 0, `allowed HTTPS passes: ${okTls.stderr}`);
      t.equal(okTls.stdout, 'upstream says hello to allowed.test/page', 'byte-exact upstream body over transparent TLS');

      const blockedTls = await curl(['--resolve', 'blocked.test:443:10.231.2.2', 'https://blocked.test/']);
      t.not(blockedTls.code, 0, 'blocked HTTPS is refused');
      t.equal(blockedTls.stdout, '', 'no content for a blocked host');
      t.match(blockedTls.stderr, /alert|access denied|handshake/i, `refusal is a TLS alert: ${blockedTls.stderr.trim()}`);

      const okHttp = await curl(['-i', '--resolve', 'allowed.test:80:10.231.2.2', 'http://allowed.test/x?y=1']);
      t.equal(okHttp.code, 0, okHttp.stderr);
      t.match(okHttp.stdout, /^HTTP\/1\.1 200/);
      t.match(okHttp.stdout, /upstream says hello to allowed\.test\/x\?y=1$/);

      const blockedHttp = await curl(['-i', '--resolve', 'blocked.test:80:10.231.2.2', 'http://blocked.test/']);
      t.equal(blockedHttp.code, 0, blockedHttp.stderr);
      t.match(blockedHttp.stdout, /^HTTP\/1\.1 403/, 'blocked HTTP gets the block page');
      t.notMatch(blockedHttp.stdout, /upstream says hello/);

      // QUIC: UDP 443 from the guest is dropped at the router; other UDP still passes (the rule is specific).
      const udp = `const s=require('dgram').createSocket('udp4');let n=0;for(const p of [443,4433])s.send('probe-'+p,p,'10.231.2.2',()=>{if(++n===2)s.close()});`;
      await topo.exec(topo.client, process.execPath, ['-e', udp]);
      await waitFor('udp 4433 datagram', async () => upOut.includes('udp 4433 probe-4433'), 5000);
      t.notMatch(upOut, /udp 443 probe-443/, 'UDP 443 (QUIC) never reaches the upstream');

      // Without the rules, the guest reaches the upstream directly: proof that the rules did the work.
      const down = await topo.exec(topo.router, 'bash', [flavour.script, 'down', topo.guestIf, '8080', '8443']);
      t.equal(down.code, 0, `rules removed: ${down.stderr}`);
      const direct = await curl(['--resolve', 'blocked.test:443:10.231.2.2', 'https://blocked.test/']);
      t.equal(direct.code, 0, 'with the rules removed the same request goes straight through');
      t.notMatch(routerLog, /10\.231\.1\.2/, 'the operational log names no client address');
    });
  }
});
