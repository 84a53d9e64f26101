/**
 * The compact hashed store: every URL list entry (a domain, a URL, or a hash given by a hotline) is
 * the SHA-256 of a Safe Browsing expression, kept as a fixed-width prefix in sorted typed arrays.
 *
 * - Entries of 8 bytes or more are kept as their first 64 bits: `hi` (digest bytes 0..3) and `lo`
 *   (bytes 4..7) as two Uint32Arrays sorted by (hi, lo), with a Uint16 list number per entry.
 *   10 bytes per entry, plus a bucket index on the top bits of `hi` (at most 256 KiB).
 * - Entries given as 4..7-byte prefixes go to a small second table with their length; a lookup
 *   compares only the bytes the entry has.
 *
 * The 64-bit comparison is the confirmation step: docs/list-formats.md has the false-positive
 * arithmetic. Nothing here knows what an entry means; list numbers index the policy's list table.
 */
import { SafespotError } from './errors.js';

/** The arrays of a store, as they are written to and read from a bundle. */
export interface StoreArrays {
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly list: Uint16Array;
  readonly shortHi: Uint32Array;
  /** Bytes 4..6 of a 5..7-byte prefix, left-aligned, zero below the entry's length. */
  readonly shortLo: Uint32Array;
  /** Prefix length in bytes, 4..7. */
  readonly shortLen: Uint8Array;
  readonly shortList: Uint16Array;
}

/** The u64 sort trick below and the bundle's zero-copy views assume a little-endian machine. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function loMask(len: number): number {
  const extra = len - 4;
  return extra <= 0 ? 0 : (0xffffffff << (32 - 8 * extra)) >>> 0;
}

function bucketBits(n: number): number {
  // About 8..16 entries per bucket, bounded to 2^16 buckets (256 KiB).
  let bits = 0;
  while (bits < 16 && n >>> (bits + 3) > 0) bits++;
  return bits;
}

/** Sorted, immutable, allocation-free lookups. */
export class HashStore {
  readonly arrays: StoreArrays;
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  private readonly list: Uint16Array;
  private readonly shift: number;
  private readonly buckets: Uint32Array;

  private constructor(arrays: StoreArrays) {
    this.arrays = arrays;
    this.hi = arrays.hi;
    this.lo = arrays.lo;
    this.list = arrays.list;
    const bits = bucketBits(arrays.hi.length);
    this.shift = 32 - bits;
    // buckets[b] = first index whose hi >>> shift >= b; buckets[2^bits] = n.
    const nb = 1 << bits;
    const buckets = new Uint32Array(nb + 1);
    let i = 0;
    const n = arrays.hi.length;
    const shift = this.shift;
    for (let b = 0; b < nb; b++) {
      buckets[b] = i;
      while (i < n && (bits === 0 ? 0 : arrays.hi[i]! >>> shift) === b) i++;
    }
    buckets[nb] = n;
    this.buckets = buckets;
  }

  /**
   * A store over existing arrays (for example views onto a bundle). Checks lengths, order and
   * prefix lengths; `lists` is the number of lists the list numbers may refer to.
   */
  static fromArrays(arrays: StoreArrays, lists: number): HashStore {
    const fail = (why: string): never => {
      throw new SafespotError('ERR_BUNDLE_CORRUPT', `hash store is inconsistent: ${why}`);
    };
    const { hi, lo, list, shortHi, shortLo, shortLen, shortList } = arrays;
    if (lo.length !== hi.length || list.length !== hi.length) fail('table lengths differ');
    if (shortLo.length !== shortHi.length || shortLen.length !== shortHi.length || shortList.length !== shortHi.length) {
      fail('short table lengths differ');
    }
    for (let i = 0; i < hi.length; i++) {
      if (list[i]! >= lists) fail(`entry ${i} names list ${list[i]} of ${lists}`);
      if (i > 0 && (hi[i - 1]! > hi[i]! || (hi[i - 1] === hi[i] && lo[i - 1]! > lo[i]!))) fail(`entry ${i} is out of order`);
    }
    for (let i = 0; i < shortHi.length; i++) {
      const len = shortLen[i]!;
      if (len < 4 || len > 7) fail(`short entry ${i} has length ${len}`);
      if (shortList[i]! >= lists) fail(`short entry ${i} names list ${shortList[i]} of ${lists}`);
      if ((shortLo[i]! & ~loMask(len)) !== 0) fail(`short entry ${i} has bits beyond its length`);
      if (i > 0 && shortHi[i - 1]! > shortHi[i]!) fail(`short entry ${i} is out of order`);
    }
    return new HashStore(arrays);
  }

  /** Number of entries (both tables). */
  get size(): number {
    return this.hi.length + this.arrays.shortHi.length;
  }

  /** Bytes held in typed arrays (the honest memory figure, bucket index included). */
  get byteLength(): number {
    const a = this.arrays;
    return (
      a.hi.byteLength + a.lo.byteLength + a.list.byteLength + a.shortHi.byteLength + a.shortLo.byteLength +
      a.shortLen.byteLength + a.shortList.byteLength + this.buckets.byteLength
    );
  }

  /**
   * Append the list number of every entry matching the digest whose first two words are h0, h1
   * (unsigned) to `out`; returns how many were appended.
   */
  lookup(h0: number, h1: number, out: number[]): number {
    let found = 0;
    const hi = this.hi;
    const lo = this.lo;
    const b = this.shift === 32 ? 0 : h0 >>> this.shift;
    let l = this.buckets[b]!;
    let r = this.buckets[b + 1]!;
    // Lower bound of (h0, h1) in [l, r).
    while (l < r) {
      const m = (l + r) >>> 1;
      const mh = hi[m]!;
      if (mh < h0 || (mh === h0 && lo[m]! < h1)) l = m + 1;
      else r = m;
    }
    while (l < hi.length && hi[l] === h0 && lo[l] === h1) {
      out.push(this.list[l]!);
      found++;
      l++;
    }
    const sh = this.arrays.shortHi;
    if (sh.length > 0) found += this.lookupShort(h0, h1, out);
    return found;
  }

  private lookupShort(h0: number, h1: number, out: number[]): number {
    const { shortHi: sh, shortLo: sl, shortLen, shortList } = this.arrays;
    let l = 0;
    let r = sh.length;
    while (l < r) {
      const m = (l + r) >>> 1;
      if (sh[m]! < h0) l = m + 1;
      else r = m;
    }
    let found = 0;
    for (; l < sh.length && sh[l] === h0; l++) {
      if (((h1 & loMask(shortLen[l]!)) >>> 0) === sl[l]) {
        out.push(shortList[l]!);
        found++;
      }
    }
    return found;
  }
}

/** Grows typed arrays while a list is being added. */
class Growable32 {
  data: Uint32Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Uint32Array(Math.max(capacity, 16));
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
}

interface ShortEntry {
  hi: number;
  lo: number;
  len: number;
  list: number;
}

/** What adding a list did: entries kept and duplicates dropped within that list. */
export interface AddResult {
  readonly entries: number;
  readonly duplicates: number;
}

/**
 * Builds a store list by list. Within a list, duplicate prefixes are dropped; across lists an
 * entry is kept once per list, so a lookup reports every list that holds it.
 */
export class HashStoreBuilder {
  /** Per list: its 64-bit keys sorted ascending, as (lo, hi) word pairs (little-endian u64 order). */
  private readonly runs: Array<{ list: number; words: Uint32Array }> = [];
  private readonly shorts: ShortEntry[] = [];
  private current: { list: number; words: Growable32; shorts: ShortEntry[] } | null = null;

  /**
   * Start the entries of list number `list` (0..65535). `expected` entries (a line count) size its
   * table once; more than that grow it by doubling.
   */
  beginList(list: number, expected = 512): void {
    if (!Number.isInteger(list) || list < 0 || list > 0xffff) throw new RangeError(`list number ${list} out of range`);
    if (this.current) throw new Error('beginList while a list is open');
    this.current = { list, words: new Growable32(2 * Math.max(0, Math.min(expected, 1 << 28))), shorts: [] };
  }

  /** Drop the open list and everything added to it (its text was refused). */
  abortList(): void {
    this.current = null;
  }

  /** Add one entry of the open list: the first `len` bytes (4..32) of a digest, words h0, h1. */
  add(h0: number, h1: number, len = 32): void {
    const cur = this.current;
    if (!cur) throw new Error('add without beginList');
    if (len >= 8) {
      cur.words.push(h1 >>> 0);
      cur.words.push(h0 >>> 0);
    } else if (len >= 4) {
      cur.shorts.push({ hi: h0 >>> 0, lo: (h1 & loMask(len)) >>> 0, len, list: cur.list });
    } else {
      throw new RangeError(`prefix of ${len} bytes is shorter than 4`);
    }
  }

  /** Close the open list: sort and drop duplicates. */
  endList(): AddResult {
    const cur = this.current;
    if (!cur) throw new Error('endList without beginList');
    this.current = null;
    const n = cur.words.length >>> 1;
    // A view, not a copy: the table lives until build() merges it (the spare capacity with it).
    const words = cur.words.data.subarray(0, n * 2);
    if (!LITTLE_ENDIAN) throw new SafespotError('ERR_INTERNAL', 'safespot needs a little-endian machine');
    // On a little-endian machine a u64 view of (lo, hi) pairs orders by (hi, lo): sort natively.
    new BigUint64Array(words.buffer, 0, n).sort();
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (kept > 0 && words[2 * kept - 2] === lo && words[2 * kept - 1] === hi) continue;
      words[2 * kept] = lo;
      words[2 * kept + 1] = hi;
      kept++;
    }
    this.runs.push({ list: cur.list, words: words.subarray(0, kept * 2) });
    const seen = new Set<string>();
    let shortKept = 0;
    for (const s of cur.shorts) {
      const key = `${s.hi}:${s.lo}:${s.len}`;
      if (seen.has(key)) continue;
      seen.add(key);
      this.shorts.push(s);
      shortKept++;
    }
    return { entries: kept + shortKept, duplicates: n - kept + cur.shorts.length - shortKept };
  }

  /** Merge every list into one sorted store. */
  build(lists: number): HashStore {
    if (this.current) throw new Error('build while a list is open');
    let total = 0;
    for (const r of this.runs) total += r.words.length >>> 1;
    const hi = new Uint32Array(total);
    const lo = new Uint32Array(total);
    const list = new Uint16Array(total);
    // k-way merge; k is the number of URL lists (a handful), so a linear scan of heads is enough.
    const heads = this.runs.map(() => 0);
    for (let out = 0; out < total; out++) {
      let best = -1;
      let bh = 0;
      let bl = 0;
      for (let k = 0; k < this.runs.length; k++) {
        const run = this.runs[k]!;
        const p = heads[k]!;
        if (p * 2 >= run.words.length) continue;
        const h = run.words[p * 2 + 1]!;
        const l = run.words[p * 2]!;
        if (best < 0 || h < bh || (h === bh && l < bl)) {
          best = k;
          bh = h;
          bl = l;
        }
      }
      hi[out] = bh;
      lo[out] = bl;
      list[out] = this.runs[best]!.list;
      heads[best] = heads[best]! + 1;
    }
    const shorts = [...this.shorts].sort((a, b) => a.hi - b.hi || a.lo - b.lo || a.len - b.len || a.list - b.list);
    return HashStore.fromArrays(
      {
        hi,
        lo,
        list,
        shortHi: Uint32Array.from(shorts, (s) => s.hi),
        shortLo: Uint32Array.from(shorts, (s) => s.lo),
        shortLen: Uint8Array.from(shorts, (s) => s.len),
        shortList: Uint16Array.from(shorts, (s) => s.list),
      },
      lists,
    );
  }
}
