/**
 * SHA-256 (FIPS 180-4) for the hot path of URL decisions. A full-URL decision hashes up to 30 Safe
 * Browsing expressions, almost all shorter than 56 bytes (one compression block). A one-shot
 * `crypto.createHash` costs about 1 µs per call here, mostly in crossing into C++ and allocating the
 * digest; this hand-written version works on module-level typed arrays, allocates nothing, and reads
 * the characters of an ASCII string straight into the message schedule.
 *
 * Messages longer than LONG_MESSAGE bytes go to node:crypto, which is faster there. The unit tests
 * check this implementation against node:crypto on the Safe Browsing hash vectors and on random
 * byte strings of every length class (fast-check).
 */
import { createHash } from 'node:crypto';

/** Round constants: first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

/** Initial hash value (FIPS 180-4 §5.3.3). */
const H0 = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

/** Above this many bytes node:crypto is faster than the JavaScript rounds. */
const LONG_MESSAGE = 1024;

const W = new Int32Array(64);
const STATE = new Int32Array(8);
const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/** One compression of the block already in W[0..15] into STATE. */
function compress(): void {
  const w = W;
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15]!;
    const b = w[i - 2]!;
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
  }
  const st = STATE;
  let a = st[0]!;
  let b = st[1]!;
  let c = st[2]!;
  let d = st[3]!;
  let e = st[4]!;
  let f = st[5]!;
  let g = st[6]!;
  let h = st[7]!;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + S1 + ch + K[i]! + w[i]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  st[0] = (st[0]! + a) | 0;
  st[1] = (st[1]! + b) | 0;
  st[2] = (st[2]! + c) | 0;
  st[3] = (st[3]! + d) | 0;
  st[4] = (st[4]! + e) | 0;
  st[5] = (st[5]! + f) | 0;
  st[6] = (st[6]! + g) | 0;
  st[7] = (st[7]! + h) | 0;
}

function copyState(out: Uint32Array | Int32Array): void {
  for (let i = 0; i < 8; i++) out[i] = STATE[i]!;
}

/**
 * Pad and hash `n` message bytes, where `byteAt(j)` gives byte j (< n). Padding per FIPS 180-4
 * §5.1.1: 0x80, zeros, then the 64-bit big-endian bit length.
 */
function hashBytes(bytes: Uint8Array, n: number): void {
  STATE.set(H0);
  const blocks = ((n + 8) >>> 6) + 1;
  for (let blk = 0; blk < blocks; blk++) {
    const base = blk << 6;
    if (base + 64 <= n) {
      for (let i = 0; i < 16; i++) {
        const j = base + (i << 2);
        W[i] = (bytes[j]! << 24) | (bytes[j + 1]! << 16) | (bytes[j + 2]! << 8) | bytes[j + 3]!;
      }
    } else {
      for (let i = 0; i < 16; i++) {
        let word = 0;
        for (let k = 0; k < 4; k++) {
          const j = base + (i << 2) + k;
          const byte = j < n ? bytes[j]! : j === n ? 0x80 : 0;
          word = (word << 8) | byte;
        }
        W[i] = word;
      }
      if (blk === blocks - 1) {
        // Bit length; messages here are far below 2^32 bits, so the high word is n / 2^29.
        W[14] = Math.floor(n / 0x20000000);
        W[15] = (n << 3) | 0;
      }
    }
    compress();
  }
}

/** Single-block fast path: an ASCII string of at most 55 characters, read straight into W. */
function hashShortAscii(text: string, n: number): boolean {
  STATE.set(H0);
  const w = W;
  for (let i = 0; i < 16; i++) w[i] = 0;
  for (let j = 0; j < n; j++) {
    const c = text.charCodeAt(j);
    if (c > 0x7f) return false;
    w[j >>> 2]! |= c << (24 - ((j & 3) << 3));
  }
  w[n >>> 2]! |= 0x80 << (24 - ((n & 3) << 3));
  w[15] = n << 3;
  compress();
  return true;
}

function ensureScratch(n: number): Uint8Array {
  if (scratch.length < n) scratch = new Uint8Array(Math.max(n, scratch.length * 2));
  return scratch;
}

function viaNodeCrypto(data: Uint8Array | string, out: Uint32Array | Int32Array): void {
  const d = createHash('sha256').update(data).digest();
  for (let i = 0; i < 8; i++) out[i] = d.readUInt32BE(i * 4);
}

/**
 * SHA-256 of the UTF-8 bytes of `text`, written as eight big-endian 32-bit words into `out`
 * (out[0] holds digest bytes 0..3). Allocates nothing for ASCII strings shorter than 56 characters.
 */
export function sha256StringWords(text: string, out: Uint32Array | Int32Array): void {
  const n = text.length;
  if (n <= 55 && hashShortAscii(text, n)) {
    copyState(out);
    return;
  }
  if (n > LONG_MESSAGE) {
    viaNodeCrypto(text, out);
    return;
  }
  const buf = ensureScratch(n * 3);
  const { written } = encoder.encodeInto(text, buf);
  hashBytes(buf, written);
  copyState(out);
}

/** SHA-256 of bytes as eight big-endian 32-bit words. */
export function sha256BytesWords(bytes: Uint8Array, out: Uint32Array | Int32Array): void {
  if (bytes.length > LONG_MESSAGE) {
    viaNodeCrypto(bytes, out);
    return;
  }
  hashBytes(bytes, bytes.length);
  copyState(out);
}

/** Single-block fast path over bytes: the first `n` (at most 55) bytes of `bytes`, read straight into W. */
function hashShortBytes(bytes: Uint8Array, n: number): void {
  STATE.set(H0);
  const w = W;
  for (let i = 0; i < 16; i++) w[i] = 0;
  for (let j = 0; j < n; j++) w[j >>> 2]! |= bytes[j]! << (24 - ((j & 3) << 3));
  w[n >>> 2]! |= 0x80 << (24 - ((n & 3) << 3));
  w[15] = n << 3;
  compress();
}

/**
 * SHA-256 of the first `n` bytes of `bytes` as eight big-endian 32-bit words (no subarray per
 * call: the streaming list compile hashes a million expressions out of one scratch buffer).
 */
export function sha256PrefixWords(bytes: Uint8Array, n: number, out: Uint32Array | Int32Array): void {
  if (n > LONG_MESSAGE) {
    viaNodeCrypto(bytes.subarray(0, n), out);
    return;
  }
  if (n <= 55) hashShortBytes(bytes, n);
  else hashBytes(bytes, n);
  copyState(out);
}

/** The 32-byte digest of a string (UTF-8) or bytes. For tests and cold paths. */
export function sha256Digest(data: string | Uint8Array): Uint8Array {
  const words = new Uint32Array(8);
  if (typeof data === 'string') sha256StringWords(data, words);
  else sha256BytesWords(data, words);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const v = words[i]!;
    out[i * 4] = v >>> 24;
    out[i * 4 + 1] = (v >>> 16) & 0xff;
    out[i * 4 + 2] = (v >>> 8) & 0xff;
    out[i * 4 + 3] = v & 0xff;
  }
  return out;
}

/** Hex of a digest (lower case). */
export function sha256Hex(data: string | Uint8Array): string {
  return Buffer.from(sha256Digest(data)).toString('hex');
}
