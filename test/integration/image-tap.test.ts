/**
 * The image tap end to end: `safespot serve` as a real process, an upstream on port 0 serving
 * images generated here with sharp (and a PDQ reference photo re-encoded and resized), lists built
 * by hashing those images. Listed images (md5, sha1, sha256, PDQ) are replaced with the placeholder
 * and 403; unlisted ones pass byte-exact with their headers; a lying Content-Type is still scanned;
 * too large and undecodable bodies are counted and passed or blocked per `images.unscanned`;
 * non-images, HEAD, 304, 206 and streaming bodies are untouched. Metrics and the audit report
 * agree with what was sent. No image file is committed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { scanImage } from '../../appliance/serve/image-scan.js';
import { PLACEHOLDER_PNG } from '../../proxy/image-tap.js';
import { runCli, serve, type Running } from '../helpers/appliance.js';
import { bigBody } from '../helpers/upstream.js';
import { PDQ_VECTORS } from '../helpers/vectors.js';

type T = import('tap').Test;

const PHOTO = join(PDQ_VECTORS, 'images', 'bridge-1-original.jpg');
const hex = (alg: string, b: Uint8Array): string => createHash(alg).update(b).digest('hex');

/** A noise image (incompressible, so its size is predictable), as PNG or JPEG. */
async function noise(w: number, h: number, format: 'png' | 'jpeg'): Promise<Buffer> {
  const img = sharp(randomBytes(w * h * 3), { raw: { width: w, height: h, channels: 3 } });
  return format === 'png' ? img.png().toBuffer() : img.jpeg({ quality: 90 }).toBuffer();
}

interface Route {
  status?: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Stream in small chunks without Content-Length. */
  chunked?: boolean;
}

async function startUpstream(routes: Map<string, Route>) {
  const server = createServer((req, res) => {
    const r = routes.get((req.url ?? '').split('?')[0]!);
    if (!r) {
      res.writeHead(404).end();
      return;
    }
    if (r.chunked) {
      res.writeHead(r.status ?? 200, r.headers);
      let off = 0;
      const step = (): void => {
        if (off >= r.body.length) return void res.end();
        res.write(r.body.subarray(off, off + 4096));
        off += 4096;
        setImmediate(step);
      };
      step();
      return;
    }
    res.writeHead(r.status ?? 200, { ...r.headers, 'content-length': String(r.body.length) });
    res.end(req.method === 'HEAD' || r.status === 304 ? undefined : r.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The values of one metric, by its label text (`{result="scanned"}`). */
async function metric(app: Running, name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const [labels, value] = [line.slice(name.length, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1))];
    if (value !== 0) out[labels] = value;
  }
  return out;
}

function writeConfig(dir: string, port: number, lists: string[], images: string): string {
  const config = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    config,
    [
      'listeners: { forward: { host: 127.0.0.1, port: 0 }, http: { host: 127.0.0.1, port: 0 } }',
      'admin: { host: 127.0.0.1, port: 0 }',
      `upstream: { hosts: { img.test: "127.0.0.1:${port}" } }`,
      'lists:',
      ...lists,
      `images: ${images}`,
      `journal: { path: ${join(dir, `${Math.random().toString(36).slice(2)}.db`)} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      'selftest: { interval: 1h, canaries: [] }',
      '',
    ].join('\n'),
  );
  return config;
}

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function client(app: Running, t: T) {
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  t.teardown(() => agent.close());
  return async (path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Got> => {
    const res = await request(`http://img.test${path}`, { dispatcher: agent, method: (opts.method ?? 'GET') as 'GET', headers: opts.headers ?? {} });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body };
  };
}

/** A GET through the transparent HTTP listener (Host header routing). */
function viaTransparent(app: Running, path: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: app.ports.http, path, headers: { host: 'img.test' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('the image tap through serve', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-images-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  // Images, generated now.
  const a = await noise(64, 64, 'png');
  const b = await noise(64, 64, 'png');
  const c = await noise(48, 48, 'jpeg');
  const m = await noise(32, 32, 'png');
  const unlisted = await noise(120, 80, 'jpeg');
  const unlistedPng = await noise(40, 40, 'png');
  const big = await noise(300, 300, 'png'); // ~270 KB of noise: over maxBytes below
  t.ok(big.length > 200_000, `big image is ${big.length} bytes`);
  const garbageListed = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(3000)]);
  const garbage = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(3000)]);
  const truncated = (await noise(200, 150, 'jpeg')).subarray(0, 6000);
  const photo = readFileSync(PHOTO);
  const reencoded = await sharp(photo).resize(640).jpeg({ quality: 55 }).toBuffer();
  const photoHash = (await scanImage(photo)).pdq!;
  const copyHash = (await scanImage(reencoded)).pdq!;
  t.ok(photoHash.quality >= 50, 'the reference photo has a usable PDQ');
  t.not(hex('md5', reencoded), hex('md5', photo), 'the copy differs byte-wise');
  t.not(copyHash.hash, photoHash.hash, 'and its PDQ differs (only a near match can catch it)');

  // Lists, built by hashing.
  const files: Record<string, string> = {
    'hot.md5': [a, garbageListed, truncated].map((x) => hex('md5', x)).join('\n') + '\n',
    'hot.sha1': `${hex('sha1', b)}  b.png\n`,
    'adult.sha256': `${hex('sha256', c)}\n`,
    'hot.pdq': `${photoHash.hash},${photoHash.quality}\n`,
    'watch.md5': `${hex('md5', m)}\n`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const lists = [
    `  - { id: hot-md5, category: csam, kind: md5, source: ${join(dir, 'hot.md5')} }`,
    `  - { id: hot-sha1, category: csam, kind: sha1, source: ${join(dir, 'hot.sha1')} }`,
    `  - { id: adult-sha256, category: adult, kind: sha256, source: ${join(dir, 'adult.sha256')} }`,
    `  - { id: hot-pdq, category: csam, kind: pdq, source: ${join(dir, 'hot.pdq')} }`,
    `  - { id: watch, category: adult, kind: md5, mode: monitor, source: ${join(dir, 'watch.md5')} }`,
  ];

  const png = { 'content-type': 'image/png' };
  const jpeg = { 'content-type': 'image/jpeg' };
  const text = Buffer.from('hello, not an image\n');
  const stream = bigBody(300_000);
  const routes = new Map<string, Route>([
    ['/a.png', { headers: png, body: a }],
    ['/b.png', { headers: png, body: b }],
    ['/c.jpg', { headers: jpeg, body: c }],
    ['/m.png', { headers: png, body: m }],
    ['/copy.jpg', { headers: jpeg, body: reencoded }],
    ['/unlisted.jpg', { headers: { ...jpeg, etag: '"u1"', 'x-origin': 'kept' }, body: unlisted }],
    ['/hello.txt', { headers: { 'content-type': 'text/plain' }, body: text }],
    ['/lying.txt', { headers: { 'content-type': 'text/plain' }, body: a }],
    ['/lying-ok.txt', { headers: { 'content-type': 'text/plain' }, body: unlistedPng }],
    ['/big.png', { headers: png, body: big }],
    ['/big-chunked.png', { headers: png, body: big, chunked: true }],
    ['/garbage-listed.jpg', { headers: jpeg, body: garbageListed }],
    ['/garbage.jpg', { headers: jpeg, body: garbage }],
    ['/truncated.jpg', { headers: jpeg, body: truncated }],
    ['/gz.png', { headers: { ...png, 'content-encoding': 'gzip' }, body: gzipSync(b) }],
    ['/range.png', { status: 206, headers: { ...png, 'content-range': `bytes 0-99/${a.length}` }, body: a.subarray(0, 100) }],
    ['/not-modified.png', { status: 304, headers: { ...png, etag: '"a"' }, body: Buffer.alloc(0) }],
    ['/stream.bin', { headers: { 'content-type': 'application/octet-stream' }, body: stream, chunked: true }],
  ]);
  const up = await startUpstream(routes);
  t.teardown(() => up.close());

  const isPlaceholder = (t: T, g: Got, what: string): void => {
    t.equal(g.status, 403, `${what}: 403`);
    t.equal(g.headers['content-type'], 'image/png', `${what}: a PNG`);
    t.equal(g.headers['cache-control'], 'no-store', `${what}: not cached`);
    t.ok(g.body.equals(PLACEHOLDER_PNG), `${what}: the placeholder`);
  };
  const exact = (t: T, g: Got, body: Buffer, type: string, what: string): void => {
    t.equal(g.status, 200, `${what}: 200`);
    t.equal(g.headers['content-type'], type, `${what}: original Content-Type`);
    t.ok(g.body.equals(body), `${what}: byte-exact (${g.body.length} of ${body.length} bytes)`);
  };

  t.test('unscanned: pass', async (t) => {
    const config = writeConfig(dir, up.port, lists, '{ maxBytes: 200000, timeout: 10s, unscanned: pass }');
    const from = new Date(Date.now() - 60_000).toISOString();
    const app = await serve(config);
    t.teardown(() => void app.child.kill('SIGKILL'));
    const get = client(app, t);

    const [sa, sb, sc] = [await scanImage(a), await scanImage(b), await scanImage(c)];
    t.ok(sa.pdq && sb.pdq && sc.pdq, 'the generated images decode');
    isPlaceholder(t, await get('/a.png'), 'md5-listed');
    isPlaceholder(t, await get('/b.png'), 'sha1-listed');
    isPlaceholder(t, await get('/c.jpg'), 'sha256-listed');
    isPlaceholder(t, await get('/copy.jpg'), 're-encoded and resized copy of a PDQ-listed photo');
    isPlaceholder(t, await get('/lying.txt'), 'a listed image served as text/plain');
    isPlaceholder(t, await get('/gz.png'), 'a listed image sent gzip-encoded');
    isPlaceholder(t, await get('/garbage-listed.jpg'), 'an undecodable listed body (exact hash)');
    isPlaceholder(t, await get('/truncated.jpg'), 'a truncated listed JPEG');
    isPlaceholder(t, await viaTransparent(app, '/a.png'), 'through the transparent HTTP listener');

    const u = await get('/unlisted.jpg');
    exact(t, u, unlisted, 'image/jpeg', 'unlisted image');
    t.equal(u.headers.etag, '"u1"', 'unlisted image: upstream headers kept');
    t.equal(u.headers['x-origin'], 'kept');
    t.equal(u.headers['content-length'], String(unlisted.length));
    exact(t, await get('/lying-ok.txt'), unlistedPng, 'text/plain', 'an unlisted image served as text/plain');
    exact(t, await get('/m.png'), m, 'image/png', 'a monitor-listed image passes');
    exact(t, await get('/hello.txt'), text, 'text/plain', 'a non-image');
    exact(t, await get('/big.png'), big, 'image/png', 'too large (Content-Length), unscanned: pass');
    exact(t, await get('/big-chunked.png'), big, 'image/png', 'too large (chunked), unscanned: pass');
    exact(t, await get('/garbage.jpg'), garbage, 'image/jpeg', 'undecodable, unscanned: pass');
    const s = await get('/stream.bin');
    exact(t, s, stream, 'application/octet-stream', 'a chunked non-image stream');
    const r = await get('/range.png', { headers: { range: 'bytes=0-99' } });
    t.equal(r.status, 206, '206 passes');
    t.ok(r.body.equals(a.subarray(0, 100)), '206 body unchanged (even of a listed image)');
    const h = await get('/unlisted.jpg', { method: 'HEAD' });
    t.equal(h.status, 200, 'HEAD passes');
    t.equal(h.body.length, 0);
    const nm = await get('/not-modified.png', { headers: { 'if-none-match': '"a"' } });
    t.equal(nm.status, 304, '304 passes');

    // What was sent: 10 scanned, 1 undecodable listed + 1 undecodable unlisted (the truncated JPEG
    // decodes partly, as the reference does, so it is scanned), 2 too large, 1 partial.
    t.same(
      await metric(app, 'safespot_images_scanned_total'),
      { '{result="scanned"}': 11, '{result="undecodable"}': 2, '{result="too_large"}': 2, '{result="partial"}': 1 },
      'images scanned by result',
    );
    const blocked = {
      '{category="csam",match="md5"}': 5, // a, lying, garbage-listed, truncated, transparent a
      '{category="csam",match="sha1"}': 2, // b, gz
      '{category="adult",match="sha256"}': 1,
      '{category="csam",match="pdq"}': 1,
    };
    t.same(await metric(app, 'safespot_images_blocked_total'), blocked, 'images blocked by category and match');
    t.same(await metric(app, 'safespot_images_monitored_total'), { '{category="adult",match="md5"}': 1 }, 'monitored');
    const entries = await metric(app, 'safespot_policy_entries');
    t.same(entries, { '{list="hot-md5"}': 3, '{list="hot-sha1"}': 1, '{list="adult-sha256"}': 1, '{list="hot-pdq"}': 1, '{list="watch"}': 1 }, 'image lists in policy entries');

    app.child.kill('SIGTERM');
    t.equal(await app.exited, 0);
    const to = new Date(Date.now() + 60_000).toISOString();
    const report = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'json']);
    t.equal(report.code, 0, report.stderr);
    const rep = JSON.parse(report.stdout) as {
      blockedImages: { total: number; byCategory: Record<string, number>; byMatch: Record<string, number> };
      monitored: { images: { total: number } };
    };
    t.equal(rep.blockedImages.total, 9, 'report: blocked images');
    t.match(rep.blockedImages.byCategory, { csam: 8, adult: 1 });
    t.match(rep.blockedImages.byMatch, { md5: 5, sha1: 2, sha256: 1, pdq: 1 });
    t.equal(rep.monitored.images.total, 1, 'report: monitored images');
    t.notMatch(app.log(), /img\.test|unlisted\.jpg/, 'the log names no URL');
  });

  t.test('unscanned: block', async (t) => {
    const config = writeConfig(dir, up.port, lists, '{ maxBytes: 200000, unscanned: block }');
    const app = await serve(config);
    t.teardown(() => void app.child.kill('SIGKILL'));
    const get = client(app, t);
    isPlaceholder(t, await get('/big.png'), 'too large, unscanned: block');
    isPlaceholder(t, await get('/big-chunked.png'), 'too large (chunked), unscanned: block');
    isPlaceholder(t, await get('/garbage.jpg'), 'undecodable, unscanned: block');
    exact(t, await get('/unlisted.jpg'), unlisted, 'image/jpeg', 'a scanned unlisted image still passes');
    exact(t, await get('/hello.txt'), text, 'text/plain', 'a non-image still passes');
    t.same(
      await metric(app, 'safespot_images_scanned_total'),
      { '{result="scanned"}': 1, '{result="undecodable"}': 1, '{result="too_large"}': 2 },
      'counted, never as scanned',
    );
    t.same(await metric(app, 'safespot_images_blocked_total'), {}, 'unscanned blocks are not list matches');
  });

  t.test('images.enabled: false', async (t) => {
    const config = writeConfig(dir, up.port, lists, '{ enabled: false }');
    const app = await serve(config);
    t.teardown(() => void app.child.kill('SIGKILL'));
    const get = client(app, t);
    exact(t, await get('/a.png'), a, 'image/png', 'a listed image passes with the tap off');
    t.same(await metric(app, 'safespot_images_scanned_total'), {}, 'nothing counted');
  });
});
