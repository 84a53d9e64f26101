import t from 'tap';
import fc from 'fast-check';
import { HammingIndex, linearScan, MAX_INDEXED_DISTANCE } from '../../policy/hamming-index.js';

/** A copy of `base` (8 words) with the given bit positions (0..255) flipped. */
function flipBits(base: Uint32Array, bits: readonly number[]): Uint32Array {
  const out = Uint32Array.from(base);
  for (const b of bits) out[b >> 5] = (out[b >> 5]! ^ (1 << (b & 31))) >>> 0;
  return out;
}

const word = fc.integer({ min: 0, max: 0xffffffff });
const hash = fc.array(word, { minLength: 8, maxLength: 8 }).map((a) => Uint32Array.from(a));
const bitSet = (max: number) => fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: max });

t.test('index query equals a linear scan over random data with near-duplicates', async (t) => {
  fc.assert(
    fc.property(
      hash,
      fc.array(hash, { maxLength: 30 }),
      fc.array(bitSet(40), { maxLength: 40 }),
      bitSet(40),
      fc.integer({ min: 0, max: 64 }),
      (center, randoms, flips, queryFlips, maxDistance) => {
        // Database: random hashes plus hashes k bits from a center; the query is near the center too.
        const rows = [...randoms, ...flips.map((f) => flipBits(center, f))];
        const db = new Uint32Array(rows.length * 8);
        rows.forEach((r, i) => db.set(r, i * 8));
        const q = flipBits(center, queryFlips);
        const index = HammingIndex.build(db);
        const got = index.query(q, maxDistance);
        const want = linearScan(db, q, maxDistance);
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          throw new Error(`d<=${maxDistance}: index ${JSON.stringify(got)} scan ${JSON.stringify(want)}`);
        }
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 random databases agree');
});

t.test('finds every hash at each distance 0..31 and none beyond the bound', async (t) => {
  const center = Uint32Array.from([0xdeadbeef, 0x01234567, 0x89abcdef, 0, 0xffffffff, 0x0f0f0f0f, 0xf0f0f0f0, 0x55aa55aa]);
  // Hash k has its first k bits flipped, spread across slots (bit i*37 mod 256): distance exactly k.
  const rows: Uint32Array[] = [];
  for (let k = 0; k <= 40; k++) rows.push(flipBits(center, Array.from({ length: k }, (_, i) => (i * 37) % 256)));
  const db = new Uint32Array(rows.length * 8);
  rows.forEach((r, i) => db.set(r, i * 8));
  const index = HammingIndex.build(db);
  for (const maxDistance of [0, 1, 15, 16, 30, 31, 32, 40]) {
    const hits = index.query(center, maxDistance);
    t.same(
      hits.map((h) => h.distance),
      Array.from({ length: Math.min(maxDistance, 40) + 1 }, (_, k) => k),
      `maxDistance ${maxDistance}`,
    );
  }
  t.equal(MAX_INDEXED_DISTANCE, 31);
});

t.test('worst case for the pigeonhole: 31 bits, two in each slot but one, for every lone bit', async (t) => {
  const center = new Uint32Array(8);
  let found = 0;
  for (let lone = 0; lone < 256; lone++) {
    // The lone bit's 16-bit slot differs in 1 bit, every other slot in 2: distance 31, and only
    // the one-bit-neighbour probe of that one slot can find it.
    const loneSlot = lone >> 4;
    const bits = [lone];
    for (let s = 0; s < 16; s++) if (s !== loneSlot) bits.push(s * 16 + (lone % 16), s * 16 + ((lone + 7) % 16));
    const far = flipBits(center, bits);
    const index = HammingIndex.build(far);
    const hits = index.query(center, 31);
    if (hits.length === 1 && hits[0]!.distance === 31) found++;
    else t.fail(`lone bit ${lone}: ${JSON.stringify(hits)}`);
    if (index.query(center, 30).length !== 0) t.fail(`lone bit ${lone} found at distance 30`);
  }
  t.equal(found, 256, 'all 256 placements found at 31');
});

t.test('worst case in the transposed partition: two bits in each bit column but one', async (t) => {
  // Bit t of 16-bit half-word s (half-word 0 = the high half of word 0) as a flipBits position.
  const at = (s: number, bit: number) => (s >> 1) * 32 + (s & 1 ? bit : 16 + bit);
  const center = new Uint32Array(8);
  let found = 0;
  for (let lone = 0; lone < 256; lone++) {
    const col = lone >> 4;
    const bits = [at(lone & 15, col)];
    for (let c = 0; c < 16; c++) if (c !== col) bits.push(at(lone % 16, c), at((lone + 7) % 16, c));
    const far = flipBits(center, bits);
    const hits = HammingIndex.build(far).query(center, 31);
    if (hits.length === 1 && hits[0]!.distance === 31) found++;
    else t.fail(`lone column bit ${lone}: ${JSON.stringify(hits)}`);
  }
  t.equal(found, 256, 'all 256 placements found at 31');
});

t.test('bad input is refused clearly', async (t) => {
  t.throws(() => HammingIndex.build(new Uint32Array(7)), RangeError);
  const index = HammingIndex.build(new Uint32Array(8));
  t.throws(() => index.query([1, 2, 3], 4), RangeError);
  t.throws(() => index.query(new Uint32Array(8), -1), RangeError);
  t.same(HammingIndex.build(new Uint32Array(0)).query(new Uint32Array(8), 31), []);
  t.same(index.query(new Uint32Array(8), 0), [{ index: 0, distance: 0 }]);
});

t.test('a larger index (100,000 hashes, full buckets) equals a linear scan', async (t) => {
  let s = 987654321;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const n = 100_000;
  const db = new Uint32Array(n * 8);
  for (let i = 0; i < db.length; i++) db[i] = rnd();
  // Plant near-duplicates of a few stored hashes at distances around the bound.
  for (let i = 0; i < 200; i++) {
    const src = (rnd() % n) * 8;
    const dst = (rnd() % n) * 8;
    const bits = Array.from({ length: 25 + (i % 10) }, () => rnd() & 255);
    db.set(flipBits(db.subarray(src, src + 8), bits), dst);
  }
  const index = HammingIndex.build(db);
  let hits = 0;
  for (let k = 0; k < 40; k++) {
    const base = (rnd() % n) * 8;
    const q = k % 2 === 0 ? flipBits(db.subarray(base, base + 8), Array.from({ length: k % 32 }, () => rnd() & 255)) : Uint32Array.from({ length: 8 }, rnd);
    for (const d of [15, 31]) {
      const got = index.query(q, d);
      const want = linearScan(db, q, d);
      hits += want.length;
      if (JSON.stringify(got) !== JSON.stringify(want)) t.fail(`query ${k}, d<=${d}: index ${JSON.stringify(got)} scan ${JSON.stringify(want)}`);
    }
  }
  t.ok(hits >= 20, `80 queries agree (${hits} hits in all)`);
});
