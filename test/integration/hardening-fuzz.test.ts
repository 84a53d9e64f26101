/**
 * Parsers under fuzzing (issue 9, item 1), with real inputs.
 *
 * 1. The ClientHello reader, on a corpus captured at test time from the TLS clients of this machine
 *    (curl, openssl, Node, Python's ssl module, headless Chromium), then mutated with fast-check: bit
 *    flips, byte inserts and deletes, every length field set to extremes, truncation, refragmenting.
 *    Every outcome is need-more | parsed | invalid, nothing throws, and what a parse returns is
 *    bounded by its input (no amplification).
 * 2. The HTTP head path of a live proxy (forward and transparent listeners), through raw sockets:
 *    random bytes and mutated valid requests. Each connection gets an HTTP answer or a close, the
 *    process carries on, and a good client still gets its page afterwards.
 */
import t from 'tap';
import fc from 'fast-check';
import { parseClientHello } from '../../proxy/client-hello.js';
import { records } from '../helpers/client-hello-builder.js';
import { captureClientHello, type HelloClient } from '../helpers/hello-capture.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange, openSocket } from '../helpers/sockets.js';
import { startHttpUpstream } from '../helpers/upstream.js';

const KINDS = new Set(['need-more', 'parsed', 'invalid']);

/**
 * Send bytes; read until the server closes, or until an answer came and the line went quiet (a
 * request that was served keeps its connection alive for Node's 5 s keep-alive timeout otherwise).
 */
async function probe(port: number, bytes: Buffer): Promise<Buffer> {
  const s = await openSocket(port);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let quiet: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => s.destroy(), 15_000);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      clearTimeout(quiet);
      quiet = setTimeout(() => s.destroy(), 300);
    });
    s.once('close', () => {
      clearTimeout(guard);
      clearTimeout(quiet);
      resolve(Buffer.concat(chunks));
    });
    s.write(bytes);
  });
}

/** The outcome is one of the three, and a parse yields no more than its input held. */
function sane(bytes: Uint8Array): boolean {
  const r = parseClientHello(bytes);
  if (!KINDS.has(r.kind)) return false;
  if (r.kind !== 'parsed') return true;
  const h = r.hello;
  const size = (h.sni?.length ?? 0) + h.alpn.reduce((a, p) => a + p.length, 0) + h.supportedVersions.length * 2;
  return r.consumed <= bytes.length && size <= bytes.length && (h.sni === null || h.sni.length <= 255);
}

/** Offsets and widths of every length field of a one-record ClientHello (RFC 8446 §4.1.2, §4.2). */
function lengthFields(b: Buffer): Array<{ at: number; width: 1 | 2 | 3 }> {
  const out: Array<{ at: number; width: 1 | 2 | 3 }> = [{ at: 3, width: 2 }, { at: 6, width: 3 }];
  let p = 5 + 4 + 2 + 32;
  out.push({ at: p, width: 1 });
  p += 1 + b[p]!;
  out.push({ at: p, width: 2 });
  p += 2 + b.readUInt16BE(p);
  out.push({ at: p, width: 1 });
  p += 1 + b[p]!;
  if (p + 2 > b.length) return out;
  out.push({ at: p, width: 2 });
  const end = p + 2 + b.readUInt16BE(p);
  p += 2;
  while (p + 4 <= end && p + 4 <= b.length) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    out.push({ at: p + 2, width: 2 });
    // Inner lengths of the extensions the reader looks into.
    if (type === 0 && len >= 5) out.push({ at: p + 4, width: 2 }, { at: p + 7, width: 2 });
    if (type === 16 && len >= 3) out.push({ at: p + 4, width: 2 }, { at: p + 6, width: 1 });
    if (type === 43 && len >= 1) out.push({ at: p + 4, width: 1 });
    p += 4 + len;
  }
  return out;
}

function setLength(b: Buffer, f: { at: number; width: 1 | 2 | 3 }, value: number): Buffer {
  const c = Buffer.from(b);
  const max = 2 ** (8 * f.width) - 1;
  const v = Math.max(0, Math.min(max, value));
  if (f.width === 1) c[f.at] = v;
  else if (f.width === 2) c.writeUInt16BE(v, f.at);
  else c.writeUIntBE(v, f.at, 3);
  return c;
}

const CLIENTS: HelloClient[] = ['curl', 'openssl', 'node', 'python', 'chromium'];
const corpus = new Map<HelloClient, Buffer>();
for (const kind of CLIENTS) corpus.set(kind, await captureClientHello(kind, `${kind}-fuzz.test`, kind === 'node' ? ['h2', 'http/1.1'] : []));

t.test('the captured corpus parses, with the SNI each client sent', async (t) => {
  for (const [kind, hello] of corpus) {
    const r = parseClientHello(hello);
    t.equal(r.kind, 'parsed', `${kind}: parsed (${hello.length} bytes)`);
    if (r.kind === 'parsed') t.equal(r.hello.sni, `${kind}-fuzz.test`, `${kind}: SNI`);
  }
  const chromium = parseClientHello(corpus.get('chromium')!);
  if (chromium.kind === 'parsed') t.ok(chromium.hello.alpn.includes('h2'), 'Chromium offers h2');
});

t.test('every prefix of a real hello is need-more; every refragmentation parses the same', async (t) => {
  for (const [kind, hello] of corpus) {
    let bad = 0;
    for (let cut = 0; cut < hello.length; cut++) if (parseClientHello(hello.subarray(0, cut)).kind !== 'need-more') bad++;
    t.equal(bad, 0, `${kind}: all ${hello.length} proper prefixes are need-more`);
    const hs = hello.subarray(5);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 700 }), fc.constantFrom(0x0301, 0x0303), (frag, version) => {
        const r = parseClientHello(records(hs, frag, version));
        return r.kind === 'parsed' && r.hello.sni === `${kind}-fuzz.test`;
      }),
      { numRuns: 100 },
    );
  }
});

t.test('mutated real hellos: bit flips, inserts, deletes, extreme lengths, truncations', async (t) => {
  const hellos = [...corpus.values()];
  const pick = fc.integer({ min: 0, max: hellos.length - 1 }).map((i) => hellos[i]!);
  const runs = 1500;
  fc.assert(
    fc.property(pick, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }), (h, flips) => {
      const b = Buffer.from(h);
      for (const [pos, bit] of flips) b[pos % b.length]! ^= 1 << bit;
      return sane(b);
    }),
    { numRuns: runs },
  );
  fc.assert(
    fc.property(pick, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 }), (h, pos, ins) => {
      const at = pos % (h.length + 1);
      return sane(Buffer.concat([h.subarray(0, at), ins, h.subarray(at)]));
    }),
    { numRuns: runs },
  );
  fc.assert(
    fc.property(pick, fc.nat(), fc.integer({ min: 1, max: 64 }), (h, pos, n) => {
      const at = pos % h.length;
      return sane(Buffer.concat([h.subarray(0, at), h.subarray(at + n)]));
    }),
    { numRuns: runs },
  );
  fc.assert(
    fc.property(pick, fc.nat(), fc.constantFrom(0, 1, 2, 255, 256, 16384, 16385, 65535, 0xffffff, -1, 1e9), fc.nat(), (h, which, value, cut) => {
      const fields = lengthFields(h);
      const f = fields[which % fields.length]!;
      const mutated = setLength(h, f, value === -1 ? 0 : value);
      return sane(mutated) && sane(mutated.subarray(0, cut % (mutated.length + 1)));
    }),
    { numRuns: runs },
  );
  // Every length field at every extreme, exhaustively, on every client's hello.
  let cases = 0;
  for (const h of hellos) {
    for (const f of lengthFields(h)) {
      for (const v of [0, 1, 2 ** (8 * f.width) - 1, 2 ** (8 * f.width - 1)]) {
        cases++;
        if (!sane(setLength(h, f, v))) t.fail(`length field at ${f.at} = ${v}`);
      }
    }
  }
  t.ok(cases > 100, `${cases} extreme length cases, every outcome need-more | parsed | invalid`);
});

t.test('the HTTP head path of a live proxy under random and mutated requests', async (t) => {
  const up = await startHttpUpstream();
  t.teardown(() => up.close());
  const obs = recordingObserver();
  const proxy = await startTestProxy(
    t,
    // Short limits, so that inputs which became a valid head with a body never sent, or a tunnel
    // that never gets its ClientHello, are ended by the proxy's own limits rather than waited for.
    testOptions({ 'allowed.test': `127.0.0.1:${up.port}` }, { limits: { headersTimeout: 500, idleTimeout: 1000, maxHeaderBytes: 4096 }, tls: { clientHelloTimeout: 500 } }),
    testHooks(),
    obs,
  );
  const valid = [
    'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nAccept: */*\r\n\r\n',
    'POST http://allowed.test/echo HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n\r\nhello',
    'POST http://allowed.test/echo HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    'CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n',
    'GET http://blocked.test/ HTTP/1.1\r\nHost: blocked.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  ];
  const transparentValid = ['GET /hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n', 'GET /blocked HTTP/1.1\r\nHost: allowed.test:80\r\nCookie: a=b\r\n\r\n'];
  const mutate = fc.tuple(
    fc.constantFrom(...valid.map((v) => Buffer.from(v, 'latin1'))),
    fc.array(
      fc.oneof(
        fc.record({ op: fc.constant('set' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ op: fc.constant('ins' as const), at: fc.nat(), v: fc.constantFrom(0, 9, 10, 13, 32, 58, 127, 0xff, 0x80) }),
        fc.record({ op: fc.constant('del' as const), at: fc.nat(), v: fc.integer({ min: 1, max: 8 }) }),
      ),
      { minLength: 1, maxLength: 5 },
    ),
  ).map(([b, edits]) => {
    let out = Buffer.from(b);
    for (const e of edits) {
      const at = e.at % (out.length + 1);
      if (e.op === 'set') out[at % out.length] = e.v;
      else if (e.op === 'ins') out = Buffer.concat([out.subarray(0, at), Buffer.from([e.v]), out.subarray(at)]);
      else out = Buffer.concat([out.subarray(0, at), out.subarray(at + e.v)]);
    }
    return out;
  });
  const inputs: Buffer[] = [
    ...fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)), 60),
    ...fc.sample(mutate, 200),
  ];
  const transparentInputs = fc.sample(
    fc.tuple(fc.constantFrom(...transparentValid.map((v) => Buffer.from(v))), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, v]) => {
      const c = Buffer.from(b);
      c[at % c.length] = v;
      return c;
    }),
    60,
  );
  const answers: Array<{ port: number; bytes: Buffer; got: Buffer }> = [];
  const jobs = [
    ...inputs.map((bytes) => ({ port: proxy.port('forward'), bytes })),
    ...transparentInputs.map((bytes) => ({ port: proxy.port('http'), bytes })),
    ...fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), 30).map((a) => ({ port: proxy.port('tls'), bytes: Buffer.from(a) })),
  ];
  // 16 at a time: each either gets its answer or is ended by a limit (headers, idle, ClientHello).
  for (let i = 0; i < jobs.length; i += 16) {
    const batch = jobs.slice(i, i + 16);
    answers.push(...(await Promise.all(batch.map(async (j) => ({ ...j, got: await probe(j.port, j.bytes) })))));
  }
  const httpAnswers = answers.filter((a) => a.port !== proxy.port('tls'));
  const malformedAnswer = httpAnswers.filter((a) => a.got.length > 0 && !/^HTTP\/1\.1 \d{3} /.test(a.got.toString('latin1')));
  t.same(malformedAnswer.map((a) => a.bytes.toString('latin1').slice(0, 80)), [], `${httpAnswers.length} HTTP inputs: each got an HTTP answer or a close`);
  const tlsAnswers = answers.filter((a) => a.port === proxy.port('tls'));
  t.ok(tlsAnswers.every((a) => a.got.length === 0 || a.got[0] === 0x15), `${tlsAnswers.length} TLS inputs: each got an alert or a close`);
  const good = await exchange(proxy.port('forward'), 'GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
  t.match(good.toString(), /^HTTP\/1\.1 200[\s\S]*hello from http/, 'a good client still gets its page afterwards');
  for (let i = 0; i < 40 && proxy.connections() > 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(proxy.connections(), 0, 'no connection left open');
  t.equal(obs.count('open forward') + obs.count('open http') + obs.count('open tls'), obs.count('close forward') + obs.count('close http') + obs.count('close tls'), 'every open was closed');
});
