/**
 * PDQ, Meta's 256-bit perceptual image hash, computed the way the C++ reference in
 * facebook/ThreatExchange `pdq/cpp` computes it (hashing/pdqhashing.cpp, downscaling/downscaling.cpp,
 * io/pdqio.cpp). Pure: pixels in, hash out; no I/O, no clock. Decoding lives in
 * appliance/image-decode.ts.
 *
 * The pipeline, each step as the reference does it (facts, not code, carried over):
 * 1. Images wider or taller than 512 px are first resized to exactly 512×512 (aspect ratio not kept)
 *    with CImg's default nearest-neighbour rule: output column x reads input column ⌊x·W/512⌋.
 * 2. Luminance Y = 0.299 R + 0.587 G + 0.114 B in single precision; a grey image is used as is.
 * 3. Two passes of a Jarosz tent filter: each pass is a box filter along rows (window
 *    ⌊(W + 127) / 128⌋) then along columns (window ⌊(H + 127) / 128⌋), with shrinking windows at the
 *    edges. A 64×64 input skips the filter.
 * 4. Decimation to 64×64 sampling the centre of each cell: row ⌊(i + 0.5)·H / 64⌋.
 * 5. Quality from the 64×64 buffer: the sum over vertical and horizontal neighbour pairs of
 *    |trunc((u − v)·100 / 255)|, divided by 90 (integer division), capped at 100.
 * 6. A 16×16 DCT (rows 1..16 of the 64-point DCT-II matrix, scale √(2/64)) applied on both sides.
 * 7. Bit k = 16·i + j is set iff coefficient (i, j) is greater than the median (the 128th smallest of
 *    the 256 values). Bit k lives in 16-bit word k >> 4 at bit k & 15; the hex form prints word 15
 *    first, each word as 4 lowercase hex digits.
 * The eight dihedral variants permute and negate the same 16×16 coefficients (no second DCT).
 *
 * Arithmetic is rounded to float32 at every step (Math.fround / Float32Array stores), as the
 * reference computes in `float`, so that the same pixels give the same bits.
 */

/** Interleaved 8-bit pixels: 1 = grey, 2 = grey + alpha, 3 = RGB, 4 = RGBA (alpha is ignored). */
export interface Pixels {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
}

/** A PDQ result: 64 lowercase hex chars, quality 0..100, and optionally the eight dihedral hashes. */
export interface PdqHash {
  readonly hash: string;
  readonly quality: number;
  /** In the order of DIHEDRAL_ORDER; present only when asked for. */
  readonly dihedral?: readonly string[];
}

/** The order of `dihedral` arrays (the reference's `--pdqdih` order). */
export const DIHEDRAL_ORDER = [
  'original',
  'rotate90',
  'rotate180',
  'rotate270',
  'flipx',
  'flipy',
  'flipplus1',
  'flipminus1',
] as const;
export type DihedralName = (typeof DIHEDRAL_ORDER)[number];

/** Images larger than this on either side are resized to exactly this square first. */
export const PDQ_DOWNSAMPLE_DIMS = 512;
/** Below this on either side the reference gives the all-zero hash with quality 0. */
export const PDQ_MIN_HASHABLE_DIM = 5;
const NUM_JAROSZ_PASSES = 2;

const LUMA_R = Math.fround(0.299);
const LUMA_G = Math.fround(0.587);
const LUMA_B = Math.fround(0.114);

/** 16×64 DCT matrix, row-major: D[i][j] = √(2/64)·cos(π/128 · (i+1) · (2j+1)), in float32. */
const DCT = (() => {
  const m = new Float32Array(16 * 64);
  const scale = Math.fround(Math.sqrt(2 / 64));
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 64; j++) {
      m[i * 64 + j] = scale * Math.cos((Math.PI / 2 / 64) * (i + 1) * (2 * j + 1));
    }
  }
  return m;
})();

/**
 * The reference's pre-resize: if either side exceeds 512, nearest-neighbour to exactly 512×512
 * (CImg `resize(512, 512)`, interpolation 1). Otherwise the same pixels are returned.
 */
export function referenceResize(p: Pixels): Pixels {
  const { width: w, height: h, channels: c, data } = p;
  if (w <= PDQ_DOWNSAMPLE_DIMS && h <= PDQ_DOWNSAMPLE_DIMS) return p;
  const n = PDQ_DOWNSAMPLE_DIMS;
  const out = new Uint8Array(n * n * c);
  const colOffset = new Int32Array(n);
  for (let x = 0; x < n; x++) colOffset[x] = Math.floor((x * w) / n) * c;
  let o = 0;
  for (let y = 0; y < n; y++) {
    const rowBase = Math.floor((y * h) / n) * w * c;
    for (let x = 0; x < n; x++) {
      const s = rowBase + colOffset[x]!;
      for (let k = 0; k < c; k++) out[o++] = data[s + k]!;
    }
  }
  return { data: out, width: n, height: n, channels: c };
}

/** Float32 luminance, row-major, from interleaved pixels (alpha ignored). */
export function lumaFromPixels(p: Pixels): Float32Array {
  const { width: w, height: h, channels: c, data } = p;
  const n = w * h;
  if (data.length < n * c) throw new RangeError(`pixel buffer too short: ${data.length} < ${n * c}`);
  const luma = new Float32Array(n);
  if (c <= 2) {
    for (let i = 0, s = 0; i < n; i++, s += c) luma[i] = data[s]!;
  } else {
    const f = Math.fround;
    for (let i = 0, s = 0; i < n; i++, s += c) {
      luma[i] = f(f(LUMA_R * data[s]!) + f(LUMA_G * data[s + 1]!)) + f(LUMA_B * data[s + 2]!);
    }
  }
  return luma;
}

/** PDQ of decoded pixels: the reference resize, luminance, then pdqFromLuma. */
export function pdqFromPixels(p: Pixels, opts: { dihedral?: boolean } = {}): PdqHash {
  const r = referenceResize(p);
  return pdqFromLuma(lumaFromPixels(r), r.width, r.height, opts);
}

/**
 * PDQ of a float luminance buffer (row-major, width × height). The buffer is used as scratch
 * space (the reference filters in place); pass a copy if you need it afterwards.
 */
export function pdqFromLuma(luma: Float32Array, width: number, height: number, opts: { dihedral?: boolean } = {}): PdqHash {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 0 && height >= 0) || luma.length < width * height) {
    throw new RangeError(`bad luma buffer ${width}x${height} (${luma.length})`);
  }
  if (width < PDQ_MIN_HASHABLE_DIM || height < PDQ_MIN_HASHABLE_DIM) {
    const zero = '0'.repeat(64);
    return opts.dihedral ? { hash: zero, quality: 0, dihedral: DIHEDRAL_ORDER.map(() => zero) } : { hash: zero, quality: 0 };
  }
  const small = downsampleTo64(luma, width, height);
  const quality = qualityMetric(small);
  const coeffs = dct64To16(small);
  const hash = bitsToHex(coeffs);
  if (!opts.dihedral) return { hash, quality };
  const dihedral = DIHEDRAL_ORDER.map((name) => (name === 'original' ? hash : bitsToHex(dihedralCoefficients(coeffs, name))));
  return { hash, quality, dihedral };
}

/** Blur (two Jarosz passes) and decimate to 64×64, or copy a 64×64 input as the reference does. */
function downsampleTo64(luma: Float32Array, w: number, h: number): Float32Array {
  const out = new Float32Array(64 * 64);
  if (w === 64 && h === 64) {
    out.set(luma.subarray(0, 4096));
    return out;
  }
  const scratch = new Float32Array(w * h);
  const winAlongRows = jaroszWindow(w);
  const winAlongCols = jaroszWindow(h);
  const sampleCols = Array.from({ length: 64 }, (_, j) => Math.trunc(((j + 0.5) * w) / 64));
  for (let pass = 0; pass < NUM_JAROSZ_PASSES; pass++) {
    for (let r = 0; r < h; r++) box1d(luma, scratch, r * w, w, 1, winAlongRows);
    if (pass < NUM_JAROSZ_PASSES - 1) boxColumns(scratch, luma, w, h, winAlongCols);
    // The last column pass is needed only in the columns the decimation samples; columns are
    // independent, so filtering just those gives the same values there.
    else for (const c of new Set(sampleCols)) box1d(scratch, luma, c, h, w, winAlongCols);
  }
  for (let i = 0; i < 64; i++) {
    const src = Math.trunc(((i + 0.5) * h) / 64) * w;
    for (let j = 0; j < 64; j++) out[i * 64 + j] = luma[src + sampleCols[j]!]!;
  }
  return out;
}

/** Window per pass: half of 1/64 of the side, rounded up (two passes make the full tent). */
export function jaroszWindow(dim: number): number {
  return Math.trunc((dim + 2 * 64 - 1) / (2 * 64));
}

/**
 * One 1-D box filter of `len` samples at `start` with `stride`, window `win`; at both ends the window
 * shrinks (the reference's four phases), so the output has the same length as the input.
 */
function box1d(src: Float32Array, dst: Float32Array, start: number, len: number, stride: number, win: number): void {
  const f = Math.fround;
  const half = Math.trunc((win + 2) / 2);
  const p1 = half - 1;
  const p2 = win - half + 1;
  const p3 = len - win;
  const p4 = half - 1;
  let li = start;
  let ri = start;
  let oi = start;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < p1; i++, ri += stride) {
    sum = f(sum + src[ri]!);
    count++;
  }
  for (let i = 0; i < p2; i++, ri += stride, oi += stride) {
    sum = f(sum + src[ri]!);
    count++;
    dst[oi] = sum / count;
  }
  for (let i = 0; i < p3; i++, li += stride, ri += stride, oi += stride) {
    sum = f(f(sum + src[ri]!) - src[li]!);
    dst[oi] = sum / count;
  }
  for (let i = 0; i < p4; i++, li += stride, oi += stride) {
    sum = f(sum - src[li]!);
    count--;
    dst[oi] = sum / count;
  }
}

/**
 * box1d down every column at once: the same additions in the same order per column as
 * box1d(src, dst, c, h, w, win) for each c, but walking rows so memory is read sequentially
 * (a column walk touches a new cache line per sample). Each store into the Float32Array rounds
 * like the reference's float, and the stored value (not the expression) is what is read back.
 */
function boxColumns(src: Float32Array, dst: Float32Array, w: number, h: number, win: number): void {
  const half = Math.trunc((win + 2) / 2);
  const p1 = half - 1;
  const p2 = win - half + 1;
  const p3 = h - win;
  const p4 = half - 1;
  const sums = new Float32Array(w);
  let li = 0;
  let ri = 0;
  let oi = 0;
  let count = 0;
  for (let i = 0; i < p1; i++, ri += w) {
    for (let c = 0; c < w; c++) sums[c] = sums[c]! + src[ri + c]!;
    count++;
  }
  for (let i = 0; i < p2; i++, ri += w, oi += w) {
    count++;
    for (let c = 0; c < w; c++) {
      sums[c] = sums[c]! + src[ri + c]!;
      dst[oi + c] = sums[c]! / count;
    }
  }
  for (let i = 0; i < p3; i++, li += w, ri += w, oi += w) {
    for (let c = 0; c < w; c++) {
      sums[c] = Math.fround(sums[c]! + src[ri + c]!) - src[li + c]!;
      dst[oi + c] = sums[c]! / count;
    }
  }
  for (let i = 0; i < p4; i++, li += w, oi += w) {
    count--;
    for (let c = 0; c < w; c++) {
      sums[c] = sums[c]! - src[li + c]!;
      dst[oi + c] = sums[c]! / count;
    }
  }
}

/** The reference's image-domain quality: count of significant gradients, scaled to 0..100. */
function qualityMetric(a: Float32Array): number {
  const f = Math.fround;
  let sum = 0;
  for (let i = 0; i < 63; i++) {
    for (let j = 0; j < 64; j++) {
      sum += Math.abs(Math.trunc(f(f(f(a[i * 64 + j]! - a[(i + 1) * 64 + j]!) * 100) / 255)));
    }
  }
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 63; j++) {
      sum += Math.abs(Math.trunc(f(f(f(a[i * 64 + j]! - a[i * 64 + j + 1]!) * 100) / 255)));
    }
  }
  return Math.min(100, Math.trunc(sum / 90));
}

/** B = D · A · Dᵀ for the 64×64 input A, keeping frequencies 1..16 on both axes. */
function dct64To16(a: Float32Array): Float32Array {
  const f = Math.fround;
  const t = new Float32Array(16 * 64);
  for (let i = 0; i < 16; i++) {
    const d = i * 64;
    for (let j = 0; j < 64; j++) {
      let s = 0;
      for (let k = 0; k < 64; k++) s = f(s + f(DCT[d + k]! * a[k * 64 + j]!));
      t[i * 64 + j] = s;
    }
  }
  const b = new Float32Array(256);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      let s = 0;
      const d = j * 64;
      const r = i * 64;
      for (let k = 0; k < 64; k++) s = f(s + f(t[r + k]! * DCT[d + k]!));
      b[i * 16 + j] = s;
    }
  }
  return b;
}

/**
 * The coefficients of a dihedral transform of the image, from the original's coefficients: a
 * transpose for the four transforms that swap axes, and a sign flip on odd frequencies along each
 * mirrored axis (the reference's sign table in pdqhashing.cpp).
 */
export function dihedralCoefficients(a: Float32Array, name: DihedralName): Float32Array {
  const b = new Float32Array(256);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      const v = a[i * 16 + j]!;
      switch (name) {
        case 'original':
          b[i * 16 + j] = v;
          break;
        case 'rotate90':
          b[j * 16 + i] = j & 1 ? v : -v;
          break;
        case 'rotate180':
          b[i * 16 + j] = (i + j) & 1 ? -v : v;
          break;
        case 'rotate270':
          b[j * 16 + i] = i & 1 ? v : -v;
          break;
        case 'flipx':
          b[i * 16 + j] = i & 1 ? v : -v;
          break;
        case 'flipy':
          b[i * 16 + j] = j & 1 ? v : -v;
          break;
        case 'flipplus1':
          b[j * 16 + i] = v;
          break;
        case 'flipminus1':
          b[j * 16 + i] = (i + j) & 1 ? -v : v;
          break;
      }
    }
  }
  return b;
}

/** Threshold 256 coefficients at their median and format them as the reference's hex. */
function bitsToHex(coeffs: Float32Array): string {
  const sorted = Float32Array.from(coeffs).sort();
  // The reference's Torben median of an even count returns the lower middle value.
  const median = sorted[127]!;
  let hex = '';
  for (let word = 15; word >= 0; word--) {
    let w = 0;
    for (let bit = 0; bit < 16; bit++) if (coeffs[word * 16 + bit]! > median) w |= 1 << bit;
    hex += w.toString(16).padStart(4, '0');
  }
  return hex;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** True for a 64-char lowercase hex PDQ hash. */
export function isPdqHex(s: string): boolean {
  return HEX64.test(s);
}

/**
 * A PDQ hex string as 8 uint32 words (word 0 = the first 8 hex chars). The Hamming index and the
 * list store use this form; the bit order does not matter for distances.
 */
export function pdqHexToWords(hex: string, out: Uint32Array = new Uint32Array(8), offset = 0): Uint32Array {
  const h = hex.toLowerCase();
  if (!HEX64.test(h)) throw new RangeError('not a 64-hex-digit PDQ hash');
  for (let i = 0; i < 8; i++) out[offset + i] = Number.parseInt(h.slice(i * 8, i * 8 + 8), 16) >>> 0;
  return out;
}

/** The inverse of pdqHexToWords. */
export function pdqWordsToHex(words: ArrayLike<number>, offset = 0): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += ((words[offset + i] ?? 0) >>> 0).toString(16).padStart(8, '0');
  return s;
}

/** Set bits of a 32-bit value. */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Hamming distance of two PDQ hex strings (0..256). */
export function pdqDistance(a: string, b: string): number {
  const wa = pdqHexToWords(a);
  const wb = pdqHexToWords(b);
  let d = 0;
  for (let i = 0; i < 8; i++) d += popcount32((wa[i]! ^ wb[i]!) >>> 0);
  return d;
}
