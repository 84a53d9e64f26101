/**
 * The image tap on intercepted HTTPS: through `serve` with an intercepting profile, a listed image
 * served over HTTPS is replaced with the placeholder (403) and an unlisted one passes byte-exact,
 * and both are counted as scanned. Images are generated noise; nothing is committed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { PLACEHOLDER_PNG } from '../../proxy/image-tap.js';
import { runCli, serve } from '../helpers/appliance.js';
import { metricValue } from '../helpers/intercept-rig.js';
import { makeTestPki } from '../helpers/pki.js';

const noise = (w: number, h: number): Promise<Buffer> => sharp(randomBytes(w * h * 3), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();

t.test('listed images are replaced on intercepted HTTPS, others pass byte-exact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-intercept-img-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const listed = await noise(64, 48);
  const clean = await noise(80, 60);
  const pki = makeTestPki(['img.test']);
  t.teardown(() => pki.cleanup());
  const server = createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
    const body = req.url === '/listed.png' ? listed : req.url === '/clean.png' ? clean : null;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  const port = (server.address() as { port: number }).port;

  const caDir = join(dir, 'ca');
  t.equal((await runCli(['certs', 'init', '--dir', caDir])).code, 0, 'CA created');
  const caPem = readFileSync(join(caDir, 'ca.crt'), 'utf8');
  writeFileSync(join(dir, 'images.txt'), `${createHash('sha256').update(listed).digest('hex')}\n`);
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    `upstream: { hosts: { img.test: "127.0.0.1:${port}" } }`,
    'lists:',
    `  - { id: test-images, category: csam, kind: sha256, source: ${join(dir, 'images.txt')} }`,
    `intercept: { enabled: true, upstreamCa: ${pki.caFile} }`,
    `ca: { dir: ${caDir} }`,
    `journal: { path: ${join(dir, 'journal.db')} }`,
    `state: { dir: ${join(dir, 'state')} }`,
    '',
  ].join('\n'));
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  const before = await metrics();

  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, requestTls: { ca: caPem } });
  t.teardown(() => agent.close());
  const get = async (path: string) => {
    const r = await request(`https://img.test${path}`, { dispatcher: agent });
    return { status: r.statusCode, body: Buffer.from(await r.body.arrayBuffer()) };
  };
  const blocked = await get('/listed.png');
  t.equal(blocked.status, 403, 'listed image refused');
  t.ok(blocked.body.equals(PLACEHOLDER_PNG), 'replaced by the placeholder');
  const passed = await get('/clean.png');
  t.equal(passed.status, 200);
  t.ok(passed.body.equals(clean), 'unlisted image byte-exact');

  const after = await metrics();
  const delta = (name: string, labels: Record<string, string>) => metricValue(after, name, labels) - metricValue(before, name, labels);
  t.equal(delta('safespot_images_scanned_total', { result: 'scanned' }), 2, 'both scanned');
  t.equal(delta('safespot_images_blocked_total', { category: 'csam', match: 'sha256' }), 1, 'one blocked');
  t.equal(delta('safespot_requests_total', { listener: 'forward', protocol: 'https', action: 'allow', category: 'none' }), 2, 'two https requests');
});
