/**
 * Fuzzing the ClientHello reader with fast-check: random bytes, random well-formed hellos, and
 * mutations of them. Every outcome is need-more | parsed | invalid; nothing throws or loops.
 */
import t from 'tap';
import fc from 'fast-check';
import { parseClientHello } from '../../proxy/client-hello.js';
import { clientHello, helloHandshake, records } from '../helpers/client-hello-builder.js';

const KINDS = new Set(['need-more', 'parsed', 'invalid']);
const outcomeOk = (bytes: Uint8Array): boolean => KINDS.has(parseClientHello(bytes).kind);

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const hostName = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => `${l.join('.')}.test`);
const spec = fc.record({
  sni: fc.option(hostName, { nil: null }),
  alpn: fc.array(fc.stringMatching(/^[a-z0-9/.]{1,12}$/), { maxLength: 4 }),
  ech: fc.boolean(),
  supportedVersions: fc.array(fc.constantFrom(0x0304, 0x0303, 0x0302, 0x0a0a), { maxLength: 4 }),
});

t.test('random bytes: a known outcome, never a throw', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), outcomeOk), { numRuns: 3000 });
  // Random bytes behind a handshake record header reach the deeper parsing code.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), (body) => {
      const head = Buffer.from([22, 3, 1, body.length >> 8, body.length & 0xff]);
      return outcomeOk(Buffer.concat([head, Buffer.from([1, 0, (body.length - 4) >> 8 & 0xff, (body.length - 4) & 0xff]), body]));
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 + 3000 random inputs');
});

t.test('well-formed hellos round-trip, in any fragmentation', async (t) => {
  fc.assert(
    fc.property(spec, fc.integer({ min: 1, max: 300 }), (s, frag) => {
      const r = parseClientHello(records(helloHandshake(s), frag));
      if (r.kind !== 'parsed') return false;
      return r.hello.sni === s.sni && r.hello.ech === s.ech && JSON.stringify(r.hello.alpn) === JSON.stringify(s.alpn);
    }),
    { numRuns: 500 },
  );
  t.pass('500 generated hellos');
});

t.test('mutated hellos: a known outcome; truncations are need-more', async (t) => {
  fc.assert(
    fc.property(spec, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (s, edits) => {
      const b = Buffer.from(clientHello(s));
      for (const [pos, v] of edits) b[pos % b.length] = v;
      return outcomeOk(b);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(spec, fc.nat(), (s, cut) => {
      const b = clientHello(s);
      return parseClientHello(b.subarray(0, cut % b.length)).kind === 'need-more';
    }),
    { numRuns: 1000 },
  );
  t.pass('mutations and truncations');
});
