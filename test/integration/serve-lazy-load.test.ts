/**
 * What a `serve` loads, and when. sharp (libvips), node-forge (certs/) and undici cost ~9 MiB of RSS
 * each per process (BENCHMARKS.md, "Soak"); a venue without image lists, interception or https list
 * sources must not pay for them, and one with them must load each at its first use. A probe loaded
 * with `node --require` writes the CommonJS module cache of the real `serve` process to a file on
 * SIGUSR2 (a CommonJS package lands there whether it is required or imported; all three are
 * CommonJS); the test reads it. Positive controls in every case (better-sqlite3, prom-client, and
 * the package a feature needs once used) show that the probe sees what is loaded.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { CLI_DEMO_DIR as DEMO, runCli, serve, tempConfig, type Running } from '../helpers/appliance.js';

type T = import('tap').Test;

const PROBE = `const { writeFileSync } = require('node:fs');
process.on('SIGUSR2', () => writeFileSync(process.env.SAFESPOT_PROBE_OUT, Object.keys(require.cache).join('\\n')));
`;

/** The npm packages a running serve has loaded, read through the probe. */
async function loadedPackages(app: Running, out: string): Promise<Set<string>> {
  const before = existsSync(out) ? readFileSync(out, 'utf8') : undefined;
  app.child.kill('SIGUSR2');
  const deadline = Date.now() + 5_000;
  for (;;) {
    if (existsSync(out)) {
      const text = readFileSync(out, 'utf8');
      if (text !== before && text.length > 0) {
        const names = new Set<string>();
        for (const path of text.split('\n')) {
          const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
          if (m) names.add(m[1]!);
        }
        writeFileSync(out, '');
        return names;
      }
    }
    if (Date.now() > deadline) throw new Error('the probe wrote nothing');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startServe(t: T, prefix: string, lines: readonly string[]): Promise<{ app: Running; loaded: () => Promise<Set<string>> }> {
  const { dir, config } = tempConfig(t, prefix, lines);
  const probe = join(dir, 'probe.cjs');
  const out = join(dir, 'modules.txt');
  writeFileSync(probe, PROBE);
  const app = await serve(config, { nodeArgs: ['--require', probe], env: { SAFESPOT_PROBE_OUT: out } });
  t.teardown(() => void app.child.kill('SIGKILL'));
  return { app, loaded: () => loadedPackages(app, out) };
}

async function startUpstream(t: T, png: Buffer): Promise<number> {
  const server = createServer((req, res) => {
    if (req.url === '/p.png') res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('hello\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

async function get(t: T, app: Running, url: string): Promise<{ status: number; body: Buffer }> {
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  t.teardown(() => agent.close());
  const res = await request(url, { dispatcher: agent });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

const LISTS = [
  'lists:',
  `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
  `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
];

t.test('a serve without image lists, interception or https sources loads none of sharp, node-forge, undici', async (t) => {
  const port = await startUpstream(t, Buffer.alloc(0));
  const { app, loaded } = await startServe(t, 'lazy-default', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { hosts: { plain.test: "127.0.0.1:${port}" } }`,
    ...LISTS,
    'selftest: { interval: 1h, canaries: [] }',
  ]);
  t.equal((await get(t, app, 'http://plain.test/')).status, 200, 'an allowed page passes');
  t.equal((await get(t, app, 'http://blocked.test/')).status, 403, 'a listed host is blocked');
  const metrics = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.match(metrics, /safespot_requests_total\{[^}]*action="block"[^}]*\} 1/, 'the block is counted');
  const pkgs = await loaded();
  t.ok(pkgs.has('better-sqlite3') && pkgs.has('prom-client'), 'the probe sees what serve uses (better-sqlite3, prom-client)');
  for (const name of ['sharp', 'node-forge', 'undici']) t.notOk(pkgs.has(name), `${name} is not loaded`);
});

t.test('an image hash list loads sharp at the first image decoded, not at start', async (t) => {
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 40, g: 120, b: 200 } } }).png().toBuffer();
  const port = await startUpstream(t, png);
  const { dir } = tempConfig(t, 'lazy-pdq-list', []);
  // A synthetic PDQ hash (64 hex digits, quality 100) that matches nothing this test sends.
  const list = join(dir, 'made-up.pdq');
  writeFileSync(list, `${'f0'.repeat(32)},100\n`);
  const { app, loaded } = await startServe(t, 'lazy-pdq', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { hosts: { img.test: "127.0.0.1:${port}" } }`,
    'lists:',
    `  - { id: made-up-pdq, category: csam, kind: pdq, source: ${list} }`,
    'selftest: { interval: 1h, canaries: [] }',
  ]);
  t.equal((await get(t, app, 'http://img.test/hello.txt')).status, 200, 'a page that is not an image passes');
  const atStart = await loaded();
  t.ok(atStart.has('better-sqlite3'), 'the probe sees what is loaded');
  t.notOk(atStart.has('sharp'), 'sharp is not loaded before an image arrives');
  const got = await get(t, app, 'http://img.test/p.png');
  t.equal(got.status, 200, 'the unlisted image passes');
  t.ok(got.body.equals(png), 'byte-exact');
  const metrics = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  t.match(metrics, /safespot_images_scanned_total\{result="scanned"\} 1/, 'the image was scanned');
  const after = await loaded();
  t.ok(after.has('sharp'), 'sharp is loaded once an image was decoded');
  t.notOk(after.has('node-forge') || after.has('undici'), 'node-forge and undici still are not');
});

t.test('admin.serveCa loads the certificate code (node-forge) at start', async (t) => {
  const { dir } = tempConfig(t, 'lazy-ca-dir', []);
  const ca = join(dir, 'ca');
  t.equal((await runCli(['certs', 'init', '--dir', ca])).code, 0, 'certs init');
  const { app, loaded } = await startServe(t, 'lazy-ca', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0, serveCa: true }',
    `ca: { dir: ${ca} }`,
    ...LISTS,
    'selftest: { interval: 1h, canaries: [] }',
  ]);
  const pem = await (await fetch(`http://127.0.0.1:${app.admin}/ca.pem`)).text();
  t.match(pem, /^-----BEGIN CERTIFICATE-----/, 'the CA is served');
  const pkgs = await loaded();
  t.ok(pkgs.has('node-forge'), 'node-forge is loaded');
  t.notOk(pkgs.has('sharp') || pkgs.has('undici'), 'sharp and undici are not');
});
