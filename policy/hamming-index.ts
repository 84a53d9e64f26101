/**
 * A Hamming-distance index over 256-bit hashes (PDQ), by multi-index hashing (Norouzi, Punjani,
 * Fleet, "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012), with two partitions.
 *
 * Pigeonhole: cut the 256 bits into 16 slots of 16 bits. If two hashes differ in d ≤ 31 bits, some
 * slot differs in at most 1 bit (if every slot differed in 2 or more, d would be at least 32). So
 * probing, in every slot, the query's slot value and its 16 one-bit neighbours finds every hash
 * within 31 (17 probes × 16 slots); within 15, the exact slot values alone suffice.
 *
 * Two partitions: A cuts the hash into its sixteen 16-bit half-words; B takes slot t from bit t of
 * every half-word (a 16×16 bit transpose), so an A-slot and a B-slot share a single bit. The
 * pigeonhole holds in each partition separately, so a hash within 31 is a candidate of both; a
 * random hash lands in both candidate sets with probability about (272·n/65536 / n)², which cuts
 * candidates at n = 1,000,000 from about 4,150 per query to about 20. The intersection is done with
 * a one-bit-per-hash mark array (125 KB at a million hashes, cache-resident); only the survivors are read from the (large, randomly accessed)
 * hash array and checked with the full popcount distance, so the answer is exactly what a linear
 * scan returns. Distances above 31 fall back to a linear scan.
 *
 * Layout (compact, typed arrays only): the hashes as 8 uint32 words each; per partition and slot a
 * CSR table, `offsets` (65,537 entries) into `ids` (n hash numbers). At n = 1,000,000: 32 MB of
 * hashes, 2 × 64 MB of ids, 8 MB of offsets, 125 KB of marks.
 */

/** One hit: the hash's position in the build array and its Hamming distance to the query. */
export interface HammingHit {
  readonly index: number;
  readonly distance: number;
}

const SLOTS = 16;
const SLOT_VALUES = 1 << 16;
const TABLE = SLOT_VALUES + 1;
/** The largest distance the slot probes answer exactly; larger distances scan linearly. */
export const MAX_INDEXED_DISTANCE = 31;

/** Set bits of a 32-bit value. */
function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Hamming distance of hash `i` to the 8-word `q`, stopping once above `limit`. */
function distanceTo(hashes: Uint32Array, i: number, q: Uint32Array, limit: number): number {
  const o = i * 8;
  let d = popcount32(hashes[o]! ^ q[0]!) + popcount32(hashes[o + 1]! ^ q[1]!) + popcount32(hashes[o + 2]! ^ q[2]!) + popcount32(hashes[o + 3]! ^ q[3]!);
  if (d > limit) return d;
  d += popcount32(hashes[o + 4]! ^ q[4]!) + popcount32(hashes[o + 5]! ^ q[5]!) + popcount32(hashes[o + 6]! ^ q[6]!) + popcount32(hashes[o + 7]! ^ q[7]!);
  return d;
}

/** Partition A slot values (the 16 half-words, high half first) of the hash at `base`, into `out`. */
function slotsA(words: Uint32Array, base: number, out: Uint16Array): void {
  for (let w = 0; w < 8; w++) {
    const v = words[base + w]!;
    out[2 * w] = v >>> 16;
    out[2 * w + 1] = v & 0xffff;
  }
}

/** Partition B slot values: slot t holds bit t of each A slot s at bit s (a 16×16 bit transpose). */
function slotsB(a: Uint16Array, out: Uint16Array): void {
  // The classic block-swap transpose (blocks of 8, 4, 2, 1): 4 rounds of 8 masked swaps
  // instead of 256 single-bit moves.
  for (let i = 0; i < SLOTS; i++) out[i] = a[i]!;
  for (let j = 8, m = 0x00ff; j !== 0; j >>= 1, m ^= m << j) {
    for (let k = 0; k < SLOTS; k = (k + j + 1) & ~j) {
      const t = ((out[k]! >>> j) ^ out[k + j]!) & m;
      out[k] = out[k]! ^ (t << j);
      out[k + j] = out[k + j]! ^ t;
    }
  }
}

function toQuery(hash: Uint32Array | ArrayLike<number>): Uint32Array {
  if (hash.length !== 8) throw new RangeError(`a query hash has 8 words, got ${hash.length}`);
  return Uint32Array.from(hash as ArrayLike<number>, (v) => v >>> 0);
}

function checkDistance(maxDistance: number): void {
  if (!Number.isInteger(maxDistance) || maxDistance < 0) throw new RangeError(`bad maxDistance ${maxDistance}`);
}

/** Every hash within `maxDistance` of `hash`, by scanning all of them (the reference answer). */
export function linearScan(hashes: Uint32Array, hash: Uint32Array | ArrayLike<number>, maxDistance: number): HammingHit[] {
  checkDistance(maxDistance);
  const q = toQuery(hash);
  const n = Math.floor(hashes.length / 8);
  const out: HammingHit[] = [];
  // A tight loop (the query's words in locals, stop after 4 words when already too far): the
  // honest baseline the index is measured against, and the path for distances above 31.
  const q0 = q[0]!;
  const q1 = q[1]!;
  const q2 = q[2]!;
  const q3 = q[3]!;
  const q4 = q[4]!;
  const q5 = q[5]!;
  const q6 = q[6]!;
  const q7 = q[7]!;
  for (let i = 0, o = 0; i < n; i++, o += 8) {
    let d = popcount32(hashes[o]! ^ q0) + popcount32(hashes[o + 1]! ^ q1) + popcount32(hashes[o + 2]! ^ q2) + popcount32(hashes[o + 3]! ^ q3);
    if (d > maxDistance) continue;
    d += popcount32(hashes[o + 4]! ^ q4) + popcount32(hashes[o + 5]! ^ q5) + popcount32(hashes[o + 6]! ^ q6) + popcount32(hashes[o + 7]! ^ q7);
    if (d <= maxDistance) out.push({ index: i, distance: d });
  }
  return out;
}

/** One partition: per slot, hash numbers grouped by slot value (CSR). */
interface Partition {
  readonly offsets: Uint32Array;
  readonly ids: Uint32Array;
}

/** CSR tables from slot values stored slot-major (`values[s * n + i]`: read sequentially per slot). */
function buildPartition(n: number, values: Uint16Array): Partition {
  const offsets = new Uint32Array(SLOTS * TABLE);
  const ids = new Uint32Array(SLOTS * n);
  const cursor = new Uint32Array(SLOT_VALUES);
  for (let s = 0; s < SLOTS; s++) {
    const ob = s * TABLE;
    const vb = s * n;
    for (let i = 0; i < n; i++) offsets[ob + values[vb + i]! + 1]!++;
    for (let v = 0; v < SLOT_VALUES; v++) offsets[ob + v + 1]! += offsets[ob + v]!;
    for (let v = 0; v < SLOT_VALUES; v++) cursor[v] = offsets[ob + v]!;
    for (let i = 0; i < n; i++) ids[vb + cursor[values[vb + i]!]!++] = i;
  }
  return { offsets, ids };
}

/** Immutable two-partition multi-index over n hashes of 8 uint32 words. */
export class HammingIndex {
  /** Number of hashes. */
  readonly size: number;
  /** The hashes as given to build (8 words each); not copied, do not modify. */
  readonly hashes: Uint32Array;
  private readonly a: Partition;
  private readonly b: Partition;
  /** One bit per hash: proposed by partition A in the current query (cleared after each query). */
  private readonly marks: Uint32Array;
  /** Scratch (queries are synchronous, so one set per index suffices). */
  private readonly qa = new Uint16Array(SLOTS);
  private readonly qb = new Uint16Array(SLOTS);
  /** Bucket bounds of one query: 2 numbers per probe, 17 probes per slot, partitions A and B. */
  private readonly range = new Int32Array(2 * SLOTS * 17 * 2);
  /** Keeps the touch loop in `query` from being optimised away. */
  private sink = 0;

  private constructor(hashes: Uint32Array, a: Partition, b: Partition) {
    this.hashes = hashes;
    this.size = hashes.length / 8;
    this.a = a;
    this.b = b;
    this.marks = new Uint32Array(Math.ceil(this.size / 32));
  }

  /** Index `hashes` (8 words per hash, length a multiple of 8). Linear time: counting sorts. */
  static build(hashes: Uint32Array): HammingIndex {
    if (hashes.length % 8 !== 0) throw new RangeError('hash array length must be a multiple of 8');
    const n = hashes.length / 8;
    // Bucket bounds are int32 positions in one ids array of 16·n entries.
    if (n * SLOTS > 0x7fffffff) throw new RangeError(`too many hashes for one index: ${n}`);
    // Slot values slot-major, one buffer for A then B: each counting sort reads its slot's
    // values as one dense run (with hash-major values each pass read all of them).
    const values = new Uint16Array(n * SLOTS);
    for (let i = 0, o = 0; i < n; i++, o += 8) {
      for (let w = 0; w < 8; w++) {
        const v = hashes[o + w]!;
        values[2 * w * n + i] = v >>> 16;
        values[(2 * w + 1) * n + i] = v & 0xffff;
      }
    }
    const a = buildPartition(n, values);
    const sa = new Uint16Array(SLOTS);
    const sb = new Uint16Array(SLOTS);
    for (let i = 0; i < n; i++) {
      slotsA(hashes, i * 8, sa);
      slotsB(sa, sb);
      for (let t = 0; t < SLOTS; t++) values[t * n + i] = sb[t]!;
    }
    return new HammingIndex(hashes, a, buildPartition(n, values));
  }

  /** The 8 words of hash `i` (a view). */
  hashAt(i: number): Uint32Array {
    return this.hashes.subarray(i * 8, i * 8 + 8);
  }

  /**
   * [start, end) positions in `p.ids` of every bucket to probe, appended to `this.range` from
   * position `k`; returns the new end.
   */
  private ranges(p: Partition, slots: Uint16Array, flips: number, k: number): number {
    const { offsets } = p;
    const n = this.size;
    const r = this.range;
    for (let s = 0; s < SLOTS; s++) {
      const ob = s * TABLE;
      const ib = s * n;
      const v0 = slots[s]!;
      for (let f = -1; f < flips; f++) {
        const v = ob + (f < 0 ? v0 : v0 ^ (1 << f));
        r[k++] = ib + offsets[v]!;
        r[k++] = ib + offsets[v + 1]!;
      }
    }
    return k;
  }

  /**
   * Every indexed hash within `maxDistance` of `hash`, ascending by index, exactly as
   * `linearScan` returns them. maxDistance ≤ 31 probes the index; larger scans linearly.
   */
  query(hash: Uint32Array | ArrayLike<number>, maxDistance: number): HammingHit[] {
    checkDistance(maxDistance);
    if (maxDistance > MAX_INDEXED_DISTANCE) return linearScan(this.hashes, hash, maxDistance);
    const q = toQuery(hash);
    if (this.size === 0) return [];
    const flips = maxDistance >= SLOTS ? 16 : 0;
    slotsA(q, 0, this.qa);
    slotsB(this.qa, this.qb);
    const marks = this.marks;
    const r = this.range;
    // Bucket bounds of both partitions first, then a touch of each bucket's first and last id:
    // all independent loads, so their cache misses overlap instead of each waiting for the last
    // (the walk that follows then finds its cache lines present).
    const endA = this.ranges(this.a, this.qa, flips, 0);
    const endB = this.ranges(this.b, this.qb, flips, endA);
    const idsA = this.a.ids;
    const idsB = this.b.ids;
    const lastId = idsA.length - 1;
    let sink = 0;
    for (let k = 0; k < endA; k += 2) sink |= idsA[Math.min(r[k]!, lastId)]! | idsA[Math.max(r[k + 1]! - 1, 0)]!;
    for (let k = endA; k < endB; k += 2) sink |= idsB[Math.min(r[k]!, lastId)]! | idsB[Math.max(r[k + 1]! - 1, 0)]!;
    this.sink = sink;
    // Partition A proposes: mark every hash in a probed bucket.
    for (let k = 0; k < endA; k += 2) {
      for (let p = r[k]!, e = r[k + 1]!; p < e; p++) {
        const id = idsA[p]!;
        marks[id >>> 5]! |= 1 << (id & 31);
      }
    }
    // Partition B confirms: only hashes both propose are read and checked in full, after the
    // walk, so that their (random, uncached) reads overlap too.
    const both: number[] = [];
    for (let k = endA; k < endB; k += 2) {
      for (let p = r[k]!, e = r[k + 1]!; p < e; p++) {
        const id = idsB[p]!;
        const bit = 1 << (id & 31);
        if ((marks[id >>> 5]! & bit) === 0) continue;
        marks[id >>> 5]! ^= bit; // once, even if another B slot proposes it again
        both.push(id);
      }
    }
    marks.fill(0);
    const hashes = this.hashes;
    const found: HammingHit[] = [];
    both.sort((x, y) => x - y);
    for (const id of both) {
      const d = distanceTo(hashes, id, q, 256);
      if (d <= maxDistance) found.push({ index: id, distance: d });
    }
    return found;
  }
}
