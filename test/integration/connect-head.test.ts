/**
 * The CONNECT head reader of the forward listener (proxy/connect-head.ts): whole, byte by byte,
 * truncated, oversized, smuggling-shaped and random input; and a differential check against
 * node:http's own parser on a real server on port 0: whatever this reader accepts as a CONNECT,
 * node:http accepts too, with the same request target (this reader is never the more lenient one).
 */
import t from 'tap';
import fc from 'fast-check';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { readConnectHead, type ConnectHead } from '../../proxy/connect-head.js';

const MAX = 16384;
const read = (text: string | Buffer, max = MAX): ConnectHead => readConnectHead(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'), max);
const KINDS = new Set(['need-more', 'other', 'connect', 'invalid']);

t.test('a well-formed CONNECT: authority, head length, and the bytes after it are the tunnel', async (t) => {
  const head = 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nUser-Agent: x/1\r\nProxy-Connection: keep-alive\r\n\r\n';
  const r = read(head + '\x16\x03\x01rest');
  t.same(r, { kind: 'connect', authority: 'example.test:443', length: head.length, selftest: false });
  t.same(read('CONNECT [::1]:8443 HTTP/1.0\r\n\r\n'), { kind: 'connect', authority: '[::1]:8443', length: 31, selftest: false });
  // The self-test's mark is a field like any other: its name in any case, any value; its absence, false.
  for (const [field, marked] of [['X-Safespot-Selftest: selftest', true], ['x-SAFESPOT-selftest:', true], ['X-Safespot-Selftests: x', false], ['X-Safespot: selftest', false]] as const) {
    const h = read(`CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n${field}\r\n\r\n`);
    t.equal(h.kind === 'connect' && h.selftest, marked, `${field}: marked ${marked}`);
  }
  t.same(read('CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 0\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n').kind, 'connect', 'CL 0, empty and tabbed values are fine');
  t.same(read('CONNECT a.test:443 HTTP/1.1\r\nX-Obs: caf\xe9\r\n\r\n').kind, 'connect', 'obs-text in a value (RFC 9110 field-vchar)');
});

t.test('every strict prefix of a CONNECT head is need-more; the whole is the CONNECT', async (t) => {
  const head = Buffer.from('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n', 'latin1');
  let wrong = 0;
  for (let n = 0; n < head.length; n++) if (read(head.subarray(0, n)).kind !== 'need-more') wrong++;
  t.equal(wrong, 0, `all ${head.length} prefixes`);
  t.equal(read(head).kind, 'connect');
});

t.test('anything that is not a CONNECT goes to node:http, decided on the first byte that differs', async (t) => {
  for (const text of ['GET http://a.test/ HTTP/1.1\r\n\r\n', 'G', 'connect a.test:443 HTTP/1.1\r\n\r\n', 'CONNECTX', 'CONNECT\t', 'POST / HTTP/1.1\r\n', '\x16\x03\x01', 'C\r\n']) {
    t.equal(read(text).kind, 'other', JSON.stringify(text));
  }
  for (const text of ['', 'C', 'CONN', 'CONNECT']) t.equal(read(text).kind, 'need-more', JSON.stringify(text));
});

t.test('smuggling-shaped and malformed heads are refused with 400 and a reason', async (t) => {
  const bad: Record<string, string> = {
    'bare LF ending a line': 'CONNECT a.test:443 HTTP/1.1\nHost: a\r\n\r\n',
    'bare LF inside the head': 'CONNECT a.test:443 HTTP/1.1\r\nHost: a\n\r\n\r\n',
    'bare CR': 'CONNECT a.test:443 HTTP/1.1\r\nHost: a\rb\r\n\r\n',
    'obs-fold': 'CONNECT a.test:443 HTTP/1.1\r\nHost: a\r\n b\r\n\r\n',
    'space before the colon': 'CONNECT a.test:443 HTTP/1.1\r\nHost : a\r\n\r\n',
    'empty header name': 'CONNECT a.test:443 HTTP/1.1\r\n: a\r\n\r\n',
    'no colon': 'CONNECT a.test:443 HTTP/1.1\r\nHost a\r\n\r\n',
    'NUL in a value': 'CONNECT a.test:443 HTTP/1.1\r\nHost: a\x00b\r\n\r\n',
    'DEL in a value': 'CONNECT a.test:443 HTTP/1.1\r\nHost: a\x7fb\r\n\r\n',
    'Transfer-Encoding': 'CONNECT a.test:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n',
    'Content-Length with content': 'CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello',
    'conflicting Content-Length': 'CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n',
    'no authority': 'CONNECT  HTTP/1.1\r\n\r\n',
    'two spaces': 'CONNECT a.test:443  HTTP/1.1\r\n\r\n',
    'HTTP/2.0': 'CONNECT a.test:443 HTTP/2.0\r\n\r\n',
    'no version': 'CONNECT a.test:443\r\n\r\n',
    'userinfo': 'CONNECT user@a.test:443 HTTP/1.1\r\n\r\n',
    'a path': 'CONNECT a.test:443/x HTTP/1.1\r\n\r\n',
    'non-ASCII authority': 'CONNECT \xe9.test:443 HTTP/1.1\r\n\r\n',
  };
  for (const [why, text] of Object.entries(bad)) {
    const r = read(text);
    t.equal(r.kind === 'invalid' ? r.status : r.kind, 400, why);
    if (r.kind === 'invalid') t.ok(r.reason.length > 0 && !r.reason.includes('a.test'), `${why}: a reason, without echoing the request`);
  }
});

t.test('size: a head over the limit is 431, however it arrives', async (t) => {
  const line = 'CONNECT a.test:443 HTTP/1.1\r\n';
  const pad = 'X-Pad: ' + 'x'.repeat(200) + '\r\n';
  const endless = Buffer.from(line + pad.repeat(10), 'latin1');
  t.same(read(endless, 1024), { kind: 'invalid', status: 431, reason: 'request head too large' }, 'no end in sight');
  const complete = Buffer.from(line + pad.repeat(10) + '\r\n', 'latin1');
  t.equal((read(complete, 1024) as { status?: number }).status, 431, 'complete but longer than the limit');
  t.equal(read(complete, complete.length).kind, 'connect', 'exactly at the limit is fine');
  t.equal(read(complete.subarray(0, 1023), 1024).kind, 'need-more', 'under the limit and incomplete: wait');
});

t.test('random and mutated input: a known outcome, never a throw', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => KINDS.has(read(Buffer.from(b)).kind)), { numRuns: 3000 });
  const base = Buffer.from('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nX-A: b\r\n\r\n', 'latin1');
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 200 }), (edits, max) => {
      const b = Buffer.from(base);
      for (const [i, v] of edits) b[i] = v;
      for (let n = 0; n <= b.length; n++) if (!KINDS.has(read(b.subarray(0, n), max).kind)) return false;
      return true;
    }),
    { numRuns: 1000 },
  );
  t.pass('3000 random inputs, 1000 mutated heads at every truncation and with small limits');
});

/** What a real node:http server makes of a head: the CONNECT target, or 'no' (400, other event, nothing). */
async function nodeVerdict(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => resolve(out.startsWith('CONNECT ') ? out.slice(8).trim() : 'no'));
    s.end(bytes);
  });
}

t.test('differential with node:http: every CONNECT this reader accepts, node:http accepts with the same target', async (t) => {
  const server = createServer({ maxHeaderSize: MAX }, (_req, res) => res.end());
  server.on('connect', (req, socket) => socket.end(`CONNECT ${req.url}\n`));
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;

  const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
  const value = fc.stringMatching(/^[\x20-\x7e\t]{0,20}$/).map((v) => v.trim());
  const authority = fc.oneof(
    fc.stringMatching(/^[a-z0-9.-]{1,20}:[0-9]{1,5}$/),
    fc.stringMatching(/^\[[0-9a-f:]{2,20}\]:[0-9]{1,5}$/),
    fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:%[\]-]{1,24}$/),
  );
  const head = fc.record({
    authority,
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0'),
    fields: fc.array(fc.tuple(token, value), { maxLength: 5 }),
  }).map(({ authority, version, fields }) => `CONNECT ${authority} ${version}\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`);
  // Mutations: one byte replaced with a character that matters to HTTP framing.
  const framing = fc.constantFrom(0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x7f, 0x80, 0xff, 0x2f, 0x40);
  const sample = fc.sample(fc.tuple(head, fc.option(fc.tuple(fc.nat(), framing), { nil: null, freq: 2 })), { numRuns: 400, seed: 20261129 });
  let accepted = 0;
  const disagreements: string[] = [];
  for (const [text, mutation] of sample) {
    const b = Buffer.from(text, 'latin1');
    if (mutation) b[mutation[0] % b.length] = mutation[1];
    const ours = read(b);
    if (!KINDS.has(ours.kind)) disagreements.push(`unknown outcome for ${JSON.stringify(b.toString('latin1'))}`);
    if (ours.kind !== 'connect') continue;
    accepted++;
    const theirs = await nodeVerdict(port, b);
    if (theirs !== ours.authority) disagreements.push(`${JSON.stringify(b.toString('latin1'))}: ours ${ours.authority}, node:http ${theirs}`);
  }
  t.same(disagreements, [], 'no head accepted here and refused (or read differently) by node:http');
  t.ok(accepted >= 100, `a real share of the sample was accepted and compared (${accepted} of 400)`);
});
