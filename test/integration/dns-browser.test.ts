/**
 * A real browser resolving through safespot's DNS listener (issue 18): headless Chromium in a guest
 * network namespace whose /etc/resolv.conf (bind-mounted by `ip netns exec` from
 * /etc/netns/NAME/resolv.conf) names the router, where `safespot serve` listens for DNS on port 53;
 * the router's web rules come from the shipped docker/router/nftables.sh. No proxy setting and no
 * --host-resolver-rules (that maps names inside Chromium and never asks DNS): Chromium's own
 * resolver reads resolv.conf and asks the listener, which forwards allowed names to the venue's
 * recording resolver (../helpers/dns-netns.ts).
 *
 * - An allowed name loads the test origin's page (its DOM, and a screenshot whose pixels are the
 *   page's own background colour).
 * - A blocked name with the default answer (0.0.0.0) fails with a connection error, no content.
 * - A blocked name with dns.blockAddress (an address the router's port-80 rule redirects) shows
 *   safespot's block page, served by the transparent http listener.
 * Screenshots go to $SAFESPOT_TEST_SHOTS as well when that is set, for a person to look at.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { createTopology, namespaceSupport, type Topology } from '../helpers/netns.js';
import { startFarSide } from '../helpers/dns-netns.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'appliance', 'cli.js');
const NFT = join(ROOT, 'docker', 'router', 'nftables.sh');
const BLOCK_ADDRESS = '192.0.2.80';

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-extensions', '--window-size=900,600',
];

function metric(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return null;
}

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The mean colour of a screenshot, [r, g, b]. */
async function meanColour(png: string): Promise<number[]> {
  const stats = await sharp(png).stats();
  return stats.channels.slice(0, 3).map((c) => Math.round(c.mean));
}

t.test('Chromium in a guest namespace resolves through the DNS listener', async (t) => {
  const reason = await namespaceSupport();
  if (reason) {
    t.skip(`network namespaces unavailable: ${reason}`, () => undefined);
    return;
  }
  if (!(await run('sh', ['-c', 'command -v chromium']).then(() => true, () => false))) {
    t.fail('chromium is missing (test/setup-system.sh installs the Debian package)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'safespot-dns-browser-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const topo: Topology = await createTopology();
  t.teardown(() => topo.destroy());
  // The guest's resolver: the router, as DHCP would hand it out. `ip netns exec` mounts this file
  // over /etc/resolv.conf for every command run in the guest namespace.
  const etc = join('/etc/netns', topo.client);
  t.ok(!existsSync(etc), `${etc} is ours to make`);
  mkdirSync(etc, { recursive: true });
  t.teardown(() => rmSync(etc, { recursive: true, force: true }));
  writeFileSync(join(etc, 'resolv.conf'), `nameserver ${topo.ip.routerGuest}\noptions timeout:2 attempts:1\n`);
  const seenResolv = await topo.exec(topo.client, 'cat', ['/etc/resolv.conf']);
  t.match(seenResolv.stdout, `nameserver ${topo.ip.routerGuest}`, 'the guest namespace sees the router as its resolver');

  const far = await startFarSide(topo, dir);
  t.teardown(() => void far.child.kill('SIGKILL'));
  const rules = await topo.exec(topo.router, 'bash', [NFT, 'up', topo.guestIf, '8080', '8443']);
  t.equal(rules.code, 0, `web rules installed: ${rules.stderr.trim()}`);

  const shots = process.env.SAFESPOT_TEST_SHOTS;
  if (shots) mkdirSync(shots, { recursive: true });
  let n = 0;
  /** The page's DOM and Chromium's messages, then a screenshot of it (null when none was written). */
  const chromium = async (url: string, shot: string): Promise<{ dom: string; stderr: string; png: string | null }> => {
    const dom = await topo.exec(topo.client, 'chromium', [...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, '--dump-dom', url], { timeout: 60_000 });
    const png = join(dir, `${shot}.png`);
    await topo.exec(topo.client, 'chromium', [...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, `--screenshot=${png}`, url], { timeout: 60_000 });
    if (shots && existsSync(png)) copyFileSync(png, join(shots, `${++n}-${shot}.png`));
    return { dom: dom.stdout, stderr: dom.stderr, png: existsSync(png) ? png : null };
  };
  const isPng = (t: Test, png: string | null, what: string): void => {
    t.ok(png !== null, `${what}: screenshot written`);
    if (png !== null) t.same([...readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${what}: a PNG`);
  };

  const serveWith = async (name: string, extra: string[]): Promise<{ metrics: () => Promise<string>; stop: () => void }> => {
    const config = join(dir, `${name}.yaml`);
    writeFileSync(config, [
      'listeners:',
      '  http: { host: 0.0.0.0, port: 8080 }',
      '  tls: { host: 0.0.0.0, port: 8443 }',
      '  dns: { host: 0.0.0.0, port: 53 }',
      'admin: { host: 127.0.0.1, port: 9090 }',
      'clients: [10.231.1.0/24]',
      // The guest's DNS goes to the venue's resolver; the proxy's own connections to the private test
      // origin need it as a trusted static name (upstream.allowPrivate is false).
      'upstream: { dnsServers: ["10.231.2.2:53"], hosts: { allowed.test: 10.231.2.2 } }',
      'lists:',
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(ROOT, 'appliance', 'demo', 'adult.txt')} }`,
      `journal: { path: ${join(dir, `${name}.db`)} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      ...extra,
      '',
    ].join('\n'));
    const child = topo.spawn(topo.router, process.execPath, [CLI, 'serve', '--config', config]);
    let log = '';
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const stop = (): void => void child.kill('SIGKILL');
    t.teardown(stop);
    await waitFor('safespot ready', async () => (await topo.exec(topo.router, 'curl', ['-fsS', 'http://127.0.0.1:9090/readyz'], { timeout: 3000 })).code === 0).catch((err) => {
      t.comment(log);
      throw err;
    });
    const metrics = async (): Promise<string> => (await topo.exec(topo.router, 'curl', ['-fsS', 'http://127.0.0.1:9090/metrics'])).stdout;
    return { metrics, stop };
  };

  t.test('default block answer (0.0.0.0)', async (t) => {
    const app = await serveWith('zero', []);
    const allowed = await chromium('http://allowed.test/', 'allowed');
    t.match(allowed.dom, /<h1>allowed\.test says hello<\/h1>/, 'the allowed page loads');
    isPng(t, allowed.png, 'allowed page');
    await far.waitFor('seen resolver allowed.test 1 udp').then(() => t.pass('Chromium\'s lookup went through safespot to the venue resolver'), (err: Error) => t.fail(err.message));
    if (allowed.png) {
      const [r, g, b] = await meanColour(allowed.png);
      t.ok(g! > 225 && r! > 215 && r! < 240 && b! > 220 && b! < 245, `the screenshot is the page's own light green (mean ${r},${g},${b})`);
    }

    const blocked = await chromium('http://blocked.test/', 'blocked-zero');
    t.notMatch(blocked.dom, /says hello|Page blocked/, 'a blocked name shows no content');
    // Headless Chromium renders no error page: it says why the load failed and writes no screenshot.
    t.match(blocked.stderr, /Page load failed: net::ERR_(CONNECTION_REFUSED|ADDRESS_INVALID|ADDRESS_UNREACHABLE)/, `the load fails with a connection error (${/net::ERR_[A-Z_]+/.exec(blocked.stderr)?.[0] ?? 'no code'})`);
    t.equal(blocked.png, null, 'nothing to screenshot');
    t.notMatch(far.log(), /^seen \w+ blocked\.test /m, 'blocked.test never left the appliance');
    const text = await app.metrics();
    t.ok((metric(text, 'safespot_requests_total{listener="dns",protocol="dns",action="block",category="adult"}') ?? 0) >= 1, 'the DNS block is counted');
    t.ok((metric(text, 'safespot_requests_total{listener="dns",protocol="dns",action="allow",category="none"}') ?? 0) >= 1, 'and the allowed lookup');
    app.stop();
  });

  t.test('dns.blockAddress: the block page', async (t) => {
    await waitFor('the first serve gone', async () => (await topo.exec(topo.router, 'curl', ['-fsS', 'http://127.0.0.1:9090/readyz'], { timeout: 2000 })).code !== 0);
    const app = await serveWith('page', [`dns: { blockAddress: { ipv4: ${BLOCK_ADDRESS} } }`]);
    const blocked = await chromium('http://blocked.test/some/page', 'blocked-page');
    t.match(blocked.dom, /<title>Page blocked<\/title>/, 'the guest lands on safespot\'s block page');
    t.match(blocked.dom, 'Adult content', 'naming the category');
    t.notMatch(blocked.dom, /says hello/, 'no origin content');
    isPng(t, blocked.png, 'block page');
    t.notMatch(far.log(), /^seen \w+ blocked\.test /m, 'blocked.test never left the appliance');
    const text = await app.metrics();
    t.ok((metric(text, 'safespot_requests_total{listener="http",protocol="http",action="block",category="adult"}') ?? 0) >= 1, 'the http listener refused the request it was redirected');
    app.stop();
  });
});
