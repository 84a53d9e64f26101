/**
 * The hand-written SHA-256 against node:crypto: the Safe Browsing hash vectors, the block-boundary
 * lengths, and random strings and byte strings (fast-check).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { sha256BytesWords, sha256Digest, sha256Hex, sha256StringWords } from '../../policy/sha256.js';
import { SAFE_BROWSING_VECTORS } from '../helpers/vectors.js';

const nodeHex = (d: string | Uint8Array): string => createHash('sha256').update(d).digest('hex');

interface HashVector {
  kind: string;
  id: string;
  input?: string;
  input_repeat?: { char: string; count: number };
  sha256_hex?: string;
  prefix_hex: string;
}

t.test('Safe Browsing hash vectors', async (t) => {
  const all = JSON.parse(readFileSync(SAFE_BROWSING_VECTORS, 'utf8')) as HashVector[];
  const vectors = all.filter((v) => v.kind === 'hash');
  t.equal(vectors.length, 3);
  for (const v of vectors) {
    const input = v.input ?? v.input_repeat!.char.repeat(v.input_repeat!.count);
    const hex = sha256Hex(input);
    t.ok(hex.startsWith(v.prefix_hex), `${v.id} prefix`);
    if (v.sha256_hex) t.equal(hex, v.sha256_hex, `${v.id} full`);
    t.equal(hex, nodeHex(input), `${v.id} equals node:crypto`);
  }
});

t.test('every length across the block boundaries equals node:crypto', async (t) => {
  for (const n of [0, 1, 3, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1023, 1024, 1025, 3000]) {
    const s = 'x'.repeat(n);
    t.equal(sha256Hex(s), nodeHex(s), `ascii ${n}`);
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
    t.equal(Buffer.from(sha256Digest(b)).toString('hex'), nodeHex(b), `bytes ${n}`);
  }
  t.equal(sha256Hex('é/ü'), nodeHex('é/ü'), 'non-ASCII string is hashed as UTF-8');
});

t.test('words output: word 0 is digest bytes 0..3 big-endian', async (t) => {
  const out = new Uint32Array(8);
  sha256StringWords('abc', out);
  t.equal(out[0], 0xba7816bf);
  t.equal(out[1], 0x8f01cfea);
  const out2 = new Int32Array(8);
  sha256BytesWords(new TextEncoder().encode('abc'), out2);
  t.equal(out2[0]! >>> 0, 0xba7816bf);
});

t.test('property: random strings and bytes equal node:crypto', async (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => sha256Hex(s) === nodeHex(s)),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => Buffer.from(sha256Digest(b)).toString('hex') === nodeHex(b)),
    { numRuns: 500 },
  );
  t.pass('500 strings and 500 byte strings agree');
});
