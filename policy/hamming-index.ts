/**
 * A Hamming-distance index over 256-bit hashes (PDQ), by multi-index hashing (Norouzi, Punjani,
 * Fleet, "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012).
 *
 * Each hash is cut into 16 slots of 16 bits. If two hashes differ in d bits and d ≤ 16·(r+1) − 1,
 * then some slot differs in at most r bits (pigeonhole: if all 16 slots differed in r+1 or more,
 * d would be at least 16·(r+1)). So a query within distance 31 (r = 1) probes, in every slot, the
 * slot's own value and its 16 one-bit neighbours (17 probes × 16 slots); within distance 15 (r = 0)
 * the exact values alone suffice. Every candidate is then checked with the full popcount distance,
 * so the answer is exactly what a linear scan returns. Distances above 31 fall back to a linear scan
 * (at that radius a slot may differ in 2 bits, and 137 probes per slot buy little over the scan).
 *
 * Layout (compact, typed arrays only): the hashes as 8 uint32 words each; per slot a CSR table,
 * `offsets` (65,537 entries per slot) into `ids` (n entries per slot, hash numbers in ascending
 * order). At n = 1,000,000: 32 MB of hashes, 64 MB of ids, 4 MB of offsets.
 */

/** One hit: the hash's position in the build array and its Hamming distance to the query. */
export interface HammingHit {
  readonly index: number;
  readonly distance: number;
}

const SLOTS = 16;
const SLOT_VALUES = 1 << 16;
/** The largest distance the slot probes answer exactly; larger distances scan linearly. */
export const MAX_INDEXED_DISTANCE = 31;

/** Set bits of a 32-bit value. */
function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Hamming distance between hash `i` of `hashes` and the 8-word `q`, stopping once above `limit`. */
function distanceTo(hashes: Uint32Array, i: number, q: Uint32Array, limit: number): number {
  const o = i * 8;
  let d = 0;
  for (let w = 0; w < 8; w++) {
    d += popcount32(hashes[o + w]! ^ q[w]!);
    if (d > limit) return d;
  }
  return d;
}

function slotValue(words: Uint32Array, base: number, slot: number): number {
  const w = words[base + (slot >> 1)]!;
  return slot & 1 ? w & 0xffff : w >>> 16;
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
  for (let i = 0; i < n; i++) {
    const d = distanceTo(hashes, i, q, maxDistance);
    if (d <= maxDistance) out.push({ index: i, distance: d });
  }
  return out;
}

/** Immutable multi-index over n hashes of 8 uint32 words. */
export class HammingIndex {
  /** Number of hashes. */
  readonly size: number;
  /** The hashes as given to build (8 words each); not copied, do not modify. */
  readonly hashes: Uint32Array;
  private readonly offsets: Uint32Array;
  private readonly ids: Uint32Array;
  /** Per-hash stamp of the last query that saw it (dedupes candidates without a Set). */
  private marks: Uint32Array | undefined;
  private epoch = 0;

  private constructor(hashes: Uint32Array, offsets: Uint32Array, ids: Uint32Array) {
    this.hashes = hashes;
    this.size = hashes.length / 8;
    this.offsets = offsets;
    this.ids = ids;
  }

  /** Index `hashes` (8 words per hash, length a multiple of 8). Linear time: a counting sort per slot. */
  static build(hashes: Uint32Array): HammingIndex {
    if (hashes.length % 8 !== 0) throw new RangeError('hash array length must be a multiple of 8');
    const n = hashes.length / 8;
    const offsets = new Uint32Array(SLOTS * (SLOT_VALUES + 1));
    const ids = new Uint32Array(SLOTS * n);
    const cursor = new Uint32Array(SLOT_VALUES);
    for (let s = 0; s < SLOTS; s++) {
      const ob = s * (SLOT_VALUES + 1);
      for (let i = 0; i < n; i++) offsets[ob + slotValue(hashes, i * 8, s) + 1]!++;
      for (let v = 0; v < SLOT_VALUES; v++) offsets[ob + v + 1]! += offsets[ob + v]!;
      for (let v = 0; v < SLOT_VALUES; v++) cursor[v] = offsets[ob + v]!;
      const ib = s * n;
      for (let i = 0; i < n; i++) ids[ib + cursor[slotValue(hashes, i * 8, s)]!++] = i;
    }
    return new HammingIndex(hashes, offsets, ids);
  }

  /** The 8 words of hash `i` (a view). */
  hashAt(i: number): Uint32Array {
    return this.hashes.subarray(i * 8, i * 8 + 8);
  }

  /**
   * Every indexed hash within `maxDistance` of `hash`, ascending by index, exactly as
   * `linearScan` returns them. maxDistance ≤ 31 probes the index; larger scans linearly.
   */
  query(hash: Uint32Array | ArrayLike<number>, maxDistance: number): HammingHit[] {
    checkDistance(maxDistance);
    if (maxDistance > MAX_INDEXED_DISTANCE) return linearScan(this.hashes, hash, maxDistance);
    const q = toQuery(hash);
    const n = this.size;
    if (n === 0) return [];
    if (this.marks === undefined) this.marks = new Uint32Array(n);
    const marks = this.marks;
    this.epoch = (this.epoch + 1) >>> 0;
    if (this.epoch === 0) {
      marks.fill(0);
      this.epoch = 1;
    }
    const epoch = this.epoch;
    const flips = maxDistance >= SLOTS ? 16 : 0;
    const out: HammingHit[] = [];
    const { offsets, ids, hashes } = this;
    for (let s = 0; s < SLOTS; s++) {
      const ob = s * (SLOT_VALUES + 1);
      const ib = s * n;
      const v0 = slotValue(q, 0, s);
      for (let f = -1; f < flips; f++) {
        const v = f < 0 ? v0 : v0 ^ (1 << f);
        const end = offsets[ob + v + 1]!;
        for (let p = offsets[ob + v]!; p < end; p++) {
          const id = ids[ib + p]!;
          if (marks[id] === epoch) continue;
          marks[id] = epoch;
          const d = distanceTo(hashes, id, q, maxDistance);
          if (d <= maxDistance) out.push({ index: id, distance: d });
        }
      }
    }
    return out.sort((a, b) => a.index - b.index);
  }
}
