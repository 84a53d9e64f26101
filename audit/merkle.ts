/**
 * The Merkle tree of the audit journal, as RFC 9162 (Certificate Transparency 2.0) section 2.1
 * defines it, with SHA-256: the same tree RFC 6962, sigsum and the C2SP tlog specs use, so any of
 * their verifiers' arithmetic carries over. Pure: hashes in, hashes out (node:crypto only).
 *
 * - leaf hash  = SHA-256(0x00 || leaf bytes)                      (RFC 9162 2.1.1)
 * - node hash  = SHA-256(0x01 || left || right)
 * - MTH of n > 1 leaves splits at k, the largest power of two smaller than n.
 * The 0x00/0x01 prefixes keep a leaf from passing as an inner node (second-preimage defence).
 *
 * Inclusion and consistency proofs follow RFC 9162 2.1.3 and 2.1.4, their verification the
 * algorithms of 2.1.3.2 and 2.1.4.2 step by step. `Frontier` is the streaming form (a "compact
 * range" from 0): the hashes of the perfect subtrees that make up the first n leaves, from which the
 * root of n is folded right to left. It is what the journal keeps to checkpoint without re-reading
 * every row, and what the verifier streams a million rows through.
 *
 * audit/ imports only policy/errors.ts from our code; this file imports none of it.
 */
import { createHash } from 'node:crypto';

export const HASH_BYTES = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** SHA-256 of the empty string: the root of the empty tree (RFC 9162 2.1.1). */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

export function leafHash(leaf: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(leaf).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** The largest power of two smaller than n (n >= 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH over leaf hashes [lo, hi). */
function mth(leaves: readonly Uint8Array[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return Buffer.from(leaves[lo]!);
  const k = split(n);
  return nodeHash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi));
}

/** The root of a tree whose leaf hashes are given (RFC 9162 MTH). */
export function rootOf(leafHashes: readonly Uint8Array[]): Buffer {
  return mth(leafHashes, 0, leafHashes.length);
}

/** PATH(m, D[lo:hi]): the inclusion proof of leaf m (RFC 9162 2.1.3.1), leaf to root. */
function path(m: number, leaves: readonly Uint8Array[], lo: number, hi: number): Buffer[] {
  const n = hi - lo;
  if (n <= 1) return [];
  const k = split(n);
  if (m < k) return [...path(m, leaves, lo, lo + k), mth(leaves, lo + k, hi)];
  return [...path(m - k, leaves, lo + k, hi), mth(leaves, lo, lo + k)];
}

export function inclusionProof(index: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  if (!Number.isInteger(index) || index < 0 || index >= leafHashes.length) throw new RangeError(`leaf ${index} is not in a tree of ${leafHashes.length}`);
  return path(index, leafHashes, 0, leafHashes.length);
}

/** SUBPROOF(m, D[lo:hi], b) of RFC 9162 2.1.4.1. */
function subproof(m: number, leaves: readonly Uint8Array[], lo: number, hi: number, b: boolean): Buffer[] {
  const n = hi - lo;
  if (m === n) return b ? [] : [mth(leaves, lo, hi)];
  const k = split(n);
  if (m <= k) return [...subproof(m, leaves, lo, lo + k, b), mth(leaves, lo + k, hi)];
  return [...subproof(m - k, leaves, lo + k, hi, false), mth(leaves, lo, lo + k)];
}

/** The consistency proof between the tree of the first `first` leaves and the tree of all of them. */
export function consistencyProof(first: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  const second = leafHashes.length;
  if (!Number.isInteger(first) || first < 0 || first > second) throw new RangeError(`no tree of ${first} inside a tree of ${second}`);
  if (first === 0 || first === second) return [];
  return subproof(first, leafHashes, 0, second, true);
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

/**
 * RFC 9162 2.1.3.2: does `proof` show leaf hash `leaf` at `index` in the tree of `size` with `root`?
 * Sizes up to 2^53 (JS integers); the shifts are done by halving.
 */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (p.length !== HASH_BYTES) return false;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

const isPowerOfTwo = (n: number): boolean => n > 0 && 2 ** Math.round(Math.log2(n)) === n;

/**
 * RFC 9162 2.1.4.2: does `proof` show that the tree of `first` leaves with `firstRoot` is a prefix
 * of the tree of `second` leaves with `secondRoot` (history only appended to)? Equal sizes need an
 * empty proof and equal roots; the empty tree is a prefix of every tree.
 */
export function verifyConsistency(first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second) return false;
  if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0 && equal(firstRoot, EMPTY_ROOT);
  if (proof.length === 0) return false;
  for (const p of proof) if (p.length !== HASH_BYTES) return false;
  const path: Uint8Array[] = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return equal(fr, firstRoot) && equal(sr, secondRoot) && sn === 0;
}

/**
 * The first n leaves as the roots of their perfect subtrees, largest (leftmost) first: one hash per
 * set bit of n. Appending a leaf merges equal-sized subtrees like a binary counter; the root of n is
 * the fold of the list from the right, node(s0, node(s1, … node(s_{j-1}, s_j))). That equals MTH
 * because in an RFC 9162 tree every aligned power-of-two block of leaves is a subtree.
 */
export class Frontier {
  #size: number;
  /** Subtree roots, largest first; their sizes are the set bits of #size, high to low. */
  #hashes: Buffer[];

  constructor(size = 0, hashes: readonly Uint8Array[] = []) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad frontier size ${size}`);
    const bits = size.toString(2).split('').filter((b) => b === '1').length;
    if (hashes.length !== bits || hashes.some((h) => h.length !== HASH_BYTES)) {
      throw new RangeError(`a frontier of ${size} leaves holds ${bits} hashes of ${HASH_BYTES} bytes, not ${hashes.length}`);
    }
    this.#size = size;
    this.#hashes = hashes.map((h) => Buffer.from(h));
  }

  get size(): number {
    return this.#size;
  }

  /** Append one leaf hash. */
  push(leaf: Uint8Array): void {
    let h: Buffer = Buffer.from(leaf);
    // Each trailing 1 bit of the old size is a subtree of the new leaf's size to merge with.
    let n = this.#size;
    while (n % 2 === 1) {
      h = nodeHash(this.#hashes.pop()!, h);
      n = Math.floor(n / 2);
    }
    this.#hashes.push(h);
    this.#size++;
  }

  root(): Buffer {
    if (this.#hashes.length === 0) return Buffer.from(EMPTY_ROOT);
    let r = this.#hashes[this.#hashes.length - 1]!;
    for (let i = this.#hashes.length - 2; i >= 0; i--) r = nodeHash(this.#hashes[i]!, r);
    return r;
  }

  clone(): Frontier {
    return new Frontier(this.#size, this.#hashes);
  }

  /** The hashes, concatenated (for storage; `Frontier.fromBytes` reads them back). */
  toBytes(): Buffer {
    return Buffer.concat(this.#hashes);
  }

  static fromBytes(size: number, bytes: Uint8Array): Frontier {
    if (bytes.length % HASH_BYTES !== 0) throw new RangeError(`frontier bytes of length ${bytes.length}`);
    const hashes: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += HASH_BYTES) hashes.push(Buffer.from(bytes.subarray(i, i + HASH_BYTES)));
    return new Frontier(size, hashes);
  }
}
