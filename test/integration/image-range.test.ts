/**
 * Ranges and the image tap (issue 22, finding 13): a guest who asks for a listed image in parts
 * (`bytes=0-`, two halves, a suffix, several ranges, skipping the magic bytes, an If-Range) gets the
 * placeholder, never bytes of it; an allowed image's range is served exactly from the scanned whole;
 * a large video's ranges still reach the origin untouched. The origin is a real node:http server
 * that honours Range as origins do (single ranges and multipart/byteranges) and records what it was
 * asked; the hook blocks on the SHA-256 of a synthetic image. Real servers on port 0.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import type { Hooks, ImageVerdict } from '../../proxy/hooks.js';
import { completeLength, pickRange, PLACEHOLDER_PNG } from '../../proxy/image-tap.js';
import type { ProxyOptions } from '../../proxy/options.js';
import { allow, block, recordingObserver, testHooks, type RecordingObserver } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange } from '../helpers/sockets.js';

type T = import('tap').Test;

const MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const image = (seed: number, size: number): Buffer => Buffer.concat([MAGIC, Buffer.from(Array.from({ length: size - MAGIC.length }, (_, i) => (i * seed + 7) & 0xff))]);
const LISTED = image(31, 20_000);
const OK = image(17, 20_000);
const VIDEO = Buffer.alloc(3 << 20, 0x42); // larger than images.maxBytes below
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const LISTED_SHA = sha(LISTED);
const ETAG = '"v1"';
const LAST_MODIFIED = 'Tue, 01 Dec 2026 10:00:00 GMT';

interface Asked {
  readonly path: string;
  readonly range: string | undefined;
  readonly ifRange: string | undefined;
  readonly ifNoneMatch: string | undefined;
}

/** Serve `body` honouring a Range as origins do (RFC 9110 §14): one range, several, or the whole. */
function serveRanged(req: IncomingMessage, res: ServerResponse, body: Buffer, type: string): void {
  const head = { 'content-type': type, etag: ETAG, 'last-modified': LAST_MODIFIED, 'accept-ranges': 'bytes' };
  const m = /^bytes=(.+)$/.exec(req.headers.range ?? '');
  const ifRangeOk = req.headers['if-range'] === undefined || req.headers['if-range'] === ETAG || req.headers['if-range'] === LAST_MODIFIED;
  if (!m || !ifRangeOk) {
    res.writeHead(200, { ...head, 'content-length': body.length });
    res.end(body);
    return;
  }
  const parts = m[1]!.split(',').map((p) => {
    const [a, b] = p.trim().split('-') as [string, string];
    if (a === '') return [Math.max(0, body.length - Number(b)), body.length - 1] as const;
    return [Number(a), b === '' ? body.length - 1 : Math.min(Number(b), body.length - 1)] as const;
  });
  // An invalid range (an end before its start) is ignored: the whole.
  if (parts.some(([a, b]) => b < a && a < body.length)) {
    res.writeHead(200, { ...head, 'content-length': body.length });
    res.end(body);
    return;
  }
  if (parts.some(([a]) => a >= body.length)) {
    res.writeHead(416, { 'content-range': `bytes */${body.length}` });
    res.end();
    return;
  }
  if (parts.length === 1) {
    const [a, b] = parts[0]!;
    res.writeHead(206, { ...head, 'content-range': `bytes ${a}-${b}/${body.length}`, 'content-length': b - a + 1 });
    res.end(body.subarray(a, b + 1));
    return;
  }
  const boundary = 'SAFESPOT_TEST_BOUNDARY';
  const chunks = parts.flatMap(([a, b]) => [Buffer.from(`--${boundary}\r\ncontent-type: ${type}\r\ncontent-range: bytes ${a}-${b}/${body.length}\r\n\r\n`), body.subarray(a, b + 1), Buffer.from('\r\n')]);
  const all = Buffer.concat([...chunks, Buffer.from(`--${boundary}--\r\n`)]);
  res.writeHead(206, { 'content-type': `multipart/byteranges; boundary=${boundary}`, etag: ETAG, 'content-length': all.length });
  res.end(all);
}

async function origin(t: T): Promise<{ port: number; asked: Asked[] }> {
  const asked: Asked[] = [];
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    asked.push({ path, range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, ifNoneMatch: req.headers['if-none-match'] as string | undefined });
    if (path === '/listed.png') return serveRanged(req, res, LISTED, 'image/png');
    if (path === '/ok.png') return serveRanged(req, res, OK, 'image/png');
    // The same bytes under a type that says nothing: only sniffing the whole finds the image.
    if (path === '/listed.bin') return serveRanged(req, res, LISTED, 'application/octet-stream');
    if (path === '/video.mp4') return serveRanged(req, res, VIDEO, 'video/mp4');
    if (path === '/stubborn.png') {
      // An origin that answers every request with the same part, Range or not.
      res.writeHead(206, { 'content-type': 'image/png', 'content-range': `bytes 0-999/${LISTED.length}`, 'content-length': 1000 });
      res.end(LISTED.subarray(0, 1000));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { port: (server.address() as { port: number }).port, asked };
}

/** Blocks the listed image by its SHA-256; everything else is allowed. Records the bytes it saw. */
function hooks(seen: Buffer[]): Hooks {
  return {
    ...testHooks(),
    onImage: async (img): Promise<ImageVerdict> => {
      seen.push(Buffer.from(img.bytes));
      return sha(Buffer.from(img.bytes)) === LISTED_SHA ? { decision: block('csam'), match: 'sha256', result: 'scanned' } : { decision: allow, result: 'scanned' };
    },
  };
}

function options(port: number, unscanned: 'pass' | 'block' = 'pass'): ProxyOptions {
  return { ...testOptions({ 'img.test': `127.0.0.1:${port}` }), images: { enabled: true, maxBytes: 1 << 20, timeout: 2000, unscanned } };
}

async function rig(t: T, unscanned: 'pass' | 'block' = 'pass'): Promise<{ proxyPort: number; httpPort: number; asked: Asked[]; seen: Buffer[]; obs: RecordingObserver; agent: ProxyAgent }> {
  const o = await origin(t);
  const seen: Buffer[] = [];
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, options(o.port, unscanned), hooks(seen), obs);
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxy.port('forward')}`, proxyTunnel: false });
  t.teardown(() => agent.close());
  return { proxyPort: proxy.port('forward'), httpPort: proxy.port('http'), asked: o.asked, seen, obs, agent };
}

async function get(agent: ProxyAgent, path: string, headers: Record<string, string> = {}) {
  const res = await request(`http://img.test${path}`, { dispatcher: agent, headers });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

t.test('a listed image asked for in parts: the placeholder every time, never a byte of it', async (t) => {
  const r = await rig(t);
  const attempts: [string, string, Record<string, string>][] = [
    ['bytes=0-', '/listed.png', { range: 'bytes=0-' }],
    ['first half', '/listed.png', { range: 'bytes=0-9999' }],
    ['second half', '/listed.png', { range: 'bytes=10000-' }],
    ['past the magic bytes', '/listed.png', { range: 'bytes=8-' }],
    ['a suffix', '/listed.png', { range: 'bytes=-19000' }],
    ['several ranges', '/listed.png', { range: 'bytes=0-99,100-' }],
    ['If-Range with the current ETag', '/listed.png', { range: 'bytes=0-', 'if-range': ETAG }],
    ['with If-None-Match too', '/listed.png', { range: 'bytes=0-', 'if-none-match': '"other"' }],
    ['undeclared type, past the magic bytes', '/listed.bin', { range: 'bytes=8-' }],
    ['undeclared type, the last byte', '/listed.bin', { range: 'bytes=-1' }],
  ];
  for (const [what, path, headers] of attempts) {
    const res = await get(r.agent, path, headers);
    t.equal(res.status, 403, `${what}: 403`);
    t.ok(res.body.equals(PLACEHOLDER_PNG), `${what}: the placeholder`);
    t.equal(res.headers['content-range'], undefined, `${what}: no Content-Range`);
  }
  t.equal(r.obs.count('imageBlocked'), attempts.length, 'each attempt counted as a blocked image');
  t.equal(r.obs.count('image partial'), 0, 'none passed as an unscannable part');
  // Each ranged request was followed by one request for the whole, without Range or validators.
  const whole = r.asked.filter((a) => a.range === undefined);
  t.equal(whole.length, attempts.length, 'one request for the whole per attempt');
  t.ok(whole.every((a) => a.ifRange === undefined && a.ifNoneMatch === undefined), 'the whole was asked for without If-Range or If-None-Match');
  t.ok(r.seen.every((b) => b.equals(LISTED)), 'the hook saw the whole image every time, never a part');
});

t.test('through the transparent HTTP listener too', async (t) => {
  const r = await rig(t);
  const res = await exchange(r.httpPort, 'GET /listed.png HTTP/1.1\r\nHost: img.test\r\nRange: bytes=0-\r\nConnection: close\r\n\r\n');
  t.match(res.toString('latin1'), /^HTTP\/1\.1 403 /, '403');
  t.ok(res.includes(PLACEHOLDER_PNG), 'the placeholder');
  t.notOk(res.includes(LISTED.subarray(100, 200)), 'no bytes of the image');
});

t.test('an allowed image: the range asked for, exactly, from the scanned whole', async (t) => {
  const r = await rig(t);
  const cases: [string, Record<string, string>, number, Buffer, string | undefined][] = [
    ['bytes=0-99', { range: 'bytes=0-99' }, 206, OK.subarray(0, 100), `bytes 0-99/${OK.length}`],
    ['bytes=19990-', { range: 'bytes=19990-' }, 206, OK.subarray(19990), `bytes 19990-19999/${OK.length}`],
    ['an end past the length', { range: 'bytes=19990-50000' }, 206, OK.subarray(19990), `bytes 19990-19999/${OK.length}`],
    ['suffix bytes=-50', { range: 'bytes=-50' }, 206, OK.subarray(OK.length - 50), `bytes 19950-19999/${OK.length}`],
    ['If-Range matching', { range: 'bytes=5-9', 'if-range': ETAG }, 206, OK.subarray(5, 10), `bytes 5-9/${OK.length}`],
    ['If-Range by date', { range: 'bytes=5-9', 'if-range': LAST_MODIFIED }, 206, OK.subarray(5, 10), `bytes 5-9/${OK.length}`],
    ['If-Range not matching: the whole', { range: 'bytes=5-9', 'if-range': '"v0"' }, 200, OK, undefined],
    ['several ranges: the whole', { range: 'bytes=0-9,20-29' }, 200, OK, undefined],
    ['a malformed range: the whole', { range: 'bytes=9-5' }, 200, OK, undefined],
  ];
  for (const [what, headers, status, body, contentRange] of cases) {
    const res = await get(r.agent, '/ok.png', headers);
    t.equal(res.status, status, `${what}: ${status}`);
    t.ok(res.body.equals(body), `${what}: the right bytes`);
    t.equal(res.headers['content-range'], contentRange, `${what}: Content-Range`);
    t.equal(Number(res.headers['content-length']), body.length, `${what}: Content-Length`);
    t.equal(res.headers['content-type'], 'image/png', `${what}: the type kept`);
  }
  const beyond = await get(r.agent, '/ok.png', { range: `bytes=${OK.length + 5}-` });
  t.equal(beyond.status, 416, 'a range past the end: 416 (the origin\'s own: a 416 is no image)');
  t.equal(beyond.headers['content-range'], `bytes */${OK.length}`, '416 names the length');
  t.equal(beyond.body.length, 0, '416 has no body');
  t.equal(r.obs.count('image scanned'), cases.length, 'every whole was scanned once');
  const plain = await get(r.agent, '/ok.png');
  t.equal(plain.status, 200, 'without Range: 200');
  t.ok(plain.body.equals(OK), 'and the whole');
});

t.test('a large video\'s range reaches the origin untouched, in one request', async (t) => {
  const r = await rig(t);
  const res = await get(r.agent, '/video.mp4', { range: 'bytes=1000000-1000099' });
  t.equal(res.status, 206);
  t.equal(res.body.length, 100);
  t.equal(res.headers['content-range'], `bytes 1000000-1000099/${VIDEO.length}`);
  t.same(r.asked.map((a) => a.range), ['bytes=1000000-1000099'], 'one request, with the client\'s Range');
  t.equal(r.seen.length, 0, 'nothing held or scanned');
});

t.test('an origin that answers only with a part: counted partial, images.unscanned decides', async (t) => {
  for (const unscanned of ['pass', 'block'] as const) {
    const r = await rig(t, unscanned);
    const res = await get(r.agent, '/stubborn.png', { range: 'bytes=0-' });
    t.equal(r.obs.count('image partial'), 1, `${unscanned}: counted partial`);
    t.equal(r.asked.length, 2, `${unscanned}: asked once more for the whole, then gave up`);
    if (unscanned === 'pass') {
      t.equal(res.status, 206, 'pass: the part passes');
      t.equal(res.body.length, 1000);
    } else {
      t.equal(res.status, 403, 'block: the placeholder');
      t.ok(res.body.equals(PLACEHOLDER_PNG));
    }
  }
});

t.test('keep-alive goes on after a ranged image was fetched whole', async (t) => {
  const r = await rig(t);
  const first = 'GET http://img.test/ok.png HTTP/1.1\r\nHost: img.test\r\nRange: bytes=0-9\r\n\r\n';
  const second = 'GET http://img.test/listed.png HTTP/1.1\r\nHost: img.test\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n';
  const res = (await exchange(r.proxyPort, first + second)).toString('latin1');
  t.match(res, /^HTTP\/1\.1 206 [^]*HTTP\/1\.1 403 /, 'a 206 and then a 403 on the same connection');
});

t.test('pickRange and completeLength, byte by byte of the grammar', async (t) => {
  const v = { etag: ETAG, lastModified: LAST_MODIFIED };
  const ask = (range: string | null, ifRange: string | null = null) => ({ range, ifRange });
  t.same(pickRange(ask('bytes=0-0'), 10, v), { start: 0, end: 0 });
  t.same(pickRange(ask('BYTES = 2 - 4'), 10, v), { start: 2, end: 4 }, 'case and spaces');
  t.same(pickRange(ask('bytes=-3'), 10, v), { start: 7, end: 9 });
  t.same(pickRange(ask('bytes=-30'), 10, v), { start: 0, end: 9 }, 'a suffix longer than the whole');
  t.equal(pickRange(ask('bytes=-0'), 10, v), 'unsatisfiable');
  t.equal(pickRange(ask('bytes=10-'), 10, v), 'unsatisfiable');
  t.equal(pickRange(ask('bytes=0-'), 0, v), 'unsatisfiable', 'an empty whole');
  t.same(pickRange(ask('bytes=99999999999999999999-'), 10, v), 'unsatisfiable', 'a huge start');
  for (const bad of ['bytes=', 'bytes=-', 'bytes=a-b', 'bytes=1-2,3-4', 'items=0-1', 'bytes=5-1', '0-1', 'bytes=1-2-3']) t.equal(pickRange(ask(bad), 10, v), null, `${bad}: the whole`);
  t.equal(pickRange(ask(null), 10, v), null, 'no Range: the whole');
  t.equal(pickRange(ask('bytes=0-1', 'W/"v1"'), 10, v), null, 'a weak If-Range never matches');
  t.equal(pickRange(ask('bytes=0-1', '"v2"'), 10, v), null);
  t.equal(pickRange(ask('bytes=0-1', 'Tue, 01 Dec 2026 10:00:01 GMT'), 10, v), null);
  t.same(pickRange(ask('bytes=0-1', '"v1"'), 10, v), { start: 0, end: 1 });
  t.equal(pickRange(ask('bytes=0-1', '"v1"'), 10, { etag: 'W/"v1"', lastModified: null }), null, 'a weak ETag on the whole never matches');
  t.equal(completeLength('bytes 0-99/1234'), 1234);
  t.equal(completeLength('bytes */1234'), 1234);
  t.equal(completeLength('bytes 0-99/*'), null);
  t.equal(completeLength(null), null);
  for (const bad of ['', 'bytes', 'bytes 0-99', 'items 0-1/2', 'bytes 0-99/12a', 'bytes 0-99/1234567890123456']) t.equal(completeLength(bad), null, `${JSON.stringify(bad)}: no length`);
});
