/**
 * PDQ, Meta's 256-bit perceptual image hash, computed the way the C++ reference in
 * facebook/ThreatExchange `pdq/cpp` computes it (hashing/pdqhashing.cpp, downscaling/downscaling.cpp,
 * io/pdqio.cpp). Pure: pixels in, hash out; no I/O, no clock. Decoding lives in
 * appliance/serve/image-decode.ts.
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
 * Steps 1 to 6 are in policy/pdq-steps.ts (float32 arithmetic, bit for bit the reference's); this
 * file has the entry points, step 7 (threshold and hex form), the dihedral variants, and the word
 * form and Hamming distance of hashes.
 */
import { downsampleTo64, dct64To16, lumaInto, qualityMetric, referenceResize, scratch, type Pixels } from './pdq-steps.js';

export { jaroszWindow, lumaFromPixels, PDQ_DOWNSAMPLE_DIMS, referenceResize, type Pixels } from './pdq-steps.js';

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

/** Below this on either side the reference gives the all-zero hash with quality 0. */
export const PDQ_MIN_HASHABLE_DIM = 5;

/** PDQ of decoded pixels: the reference resize, luminance, then pdqFromLuma. */
export function pdqFromPixels(p: Pixels, opts: { dihedral?: boolean } = {}): PdqHash {
  const r = referenceResize(p);
  return pdqFromLuma(lumaInto(r, scratch('luma', r.width * r.height)), r.width, r.height, opts);
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
  // `| 0`: dimensions that arrive as doubles (a computed size) would otherwise make the filter
  // loops (pdq-steps.ts) compile their index arithmetic for doubles.
  const small = downsampleTo64(luma, width | 0, height | 0);
  const quality = qualityMetric(small);
  const coeffs = dct64To16(small);
  const hash = bitsToHex(coeffs);
  if (!opts.dihedral) return { hash, quality };
  const dihedral = DIHEDRAL_ORDER.map((name) => (name === 'original' ? hash : bitsToHex(dihedralCoefficients(coeffs, name))));
  return { hash, quality, dihedral };
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
