/**
 * The float32 steps of PDQ (steps 1 to 6 of the pipeline in policy/pdq.ts): the reference's
 * pre-resize, luminance, the two Jarosz passes and the decimation to 64×64, the quality metric and
 * the 16×16 DCT. Kept apart from the hash API because every line here must give the C++
 * reference's float bits exactly while running fast; policy/pdq.ts only thresholds, formats and
 * compares what comes out. Pure: no I/O, no clock.
 *
 * Arithmetic is rounded to float32 at every step (Math.fround / Float32Array stores), as the
 * reference computes in `float`, so that the same pixels give the same bits. One float32 operation
 * done in double and rounded once gives the float32 result (double has more than twice the bits),
 * so a Math.fround is needed only where an unrounded double would feed a further operation.
 * For speed the filter and the DCT run four independent sums side by side (each keeps the
 * reference's order of additions); test/unit/pdq-exact.test.ts pins the bits.
 */

/** Interleaved 8-bit pixels: 1 = grey, 2 = grey + alpha, 3 = RGB, 4 = RGBA (alpha is ignored). */
export interface Pixels {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
}

/** Images larger than this on either side are resized to exactly this square first. */
export const PDQ_DOWNSAMPLE_DIMS = 512;
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

/**
 * The three luminance products per 8-bit value, each rounded to float32 as the reference's
 * `0.299f * r` is: one table lookup replaces a multiply and a rounding per channel.
 */
const lumaTable = (k: number): Float32Array => Float32Array.from({ length: 256 }, (_, v) => k * v);
const LUMA_R_OF = lumaTable(LUMA_R);
const LUMA_G_OF = lumaTable(LUMA_G);
const LUMA_B_OF = lumaTable(LUMA_B);

/**
 * Scratch for pdqFromPixels (luminance, then the filter's second buffer), reused between calls up
 * to 512×512 (2 MB in all once grown); hashing is synchronous, so no two calls share them at once.
 */
let lumaScratch = new Float32Array(0);
let filterScratch = new Float32Array(0);
export function scratch(which: 'luma' | 'filter', n: number): Float32Array {
  if (n > PDQ_DOWNSAMPLE_DIMS * PDQ_DOWNSAMPLE_DIMS) return new Float32Array(n);
  const cur = which === 'luma' ? lumaScratch : filterScratch;
  if (cur.length >= n) return cur;
  const grown = new Float32Array(n);
  if (which === 'luma') lumaScratch = grown;
  else filterScratch = grown;
  return grown;
}

/** Float32 luminance, row-major, from interleaved pixels (alpha ignored). */
export function lumaFromPixels(p: Pixels): Float32Array {
  return lumaInto(p, new Float32Array(p.width * p.height));
}

/** True where a Uint32Array over bytes reads them little-endian (byte 0 lowest), as on x86 and ARM. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Luminance into `luma`: ((0.299 r + 0.587 g) + 0.114 b) with each product and sum rounded to
 * float32. A sum of two float32 values computed in double and rounded once is the float32 sum, and
 * the Float32Array store does the last rounding.
 */
export function lumaInto(p: Pixels, luma: Float32Array): Float32Array {
  const { data } = p;
  const w = p.width | 0;
  const h = p.height | 0;
  const c = p.channels | 0;
  const n = w * h;
  if (data.length < n * c) throw new RangeError(`pixel buffer too short: ${data.length} < ${n * c}`);
  if (c <= 2) {
    for (let i = 0, s = 0; i < n; i++, s += c) luma[i] = data[s]!;
    return luma;
  }
  const r = LUMA_R_OF;
  const g = LUMA_G_OF;
  const b = LUMA_B_OF;
  const f = Math.fround;
  let i = 0;
  // Reading whole 32-bit words and picking the bytes out is about twice as fast as three byte
  // loads per pixel; it needs a 4-byte-aligned buffer (decoded buffers are).
  if (LITTLE_ENDIAN && data.byteOffset % 4 === 0) {
    const u = new Uint32Array(data.buffer, data.byteOffset, (n * c) >>> 2);
    if (c === 3) {
      // Four RGB pixels in three words: r0 g0 b0 r1 | g1 b1 r2 g2 | b2 r3 g3 b3.
      for (let k = 0; i + 4 <= n; i += 4, k += 3) {
        const w0 = u[k]!;
        const w1 = u[k + 1]!;
        const w2 = u[k + 2]!;
        luma[i] = f(r[w0 & 255]! + g[(w0 >>> 8) & 255]!) + b[(w0 >>> 16) & 255]!;
        luma[i + 1] = f(r[w0 >>> 24]! + g[w1 & 255]!) + b[(w1 >>> 8) & 255]!;
        luma[i + 2] = f(r[(w1 >>> 16) & 255]! + g[w1 >>> 24]!) + b[w2 & 255]!;
        luma[i + 3] = f(r[(w2 >>> 8) & 255]! + g[(w2 >>> 16) & 255]!) + b[w2 >>> 24]!;
      }
    } else {
      for (; i < n; i++) {
        const v = u[i]!;
        luma[i] = f(r[v & 255]! + g[(v >>> 8) & 255]!) + b[(v >>> 16) & 255]!;
      }
    }
  }
  for (let s = i * c; i < n; i++, s += c) luma[i] = f(r[data[s]!]! + g[data[s + 1]!]!) + b[data[s + 2]!]!;
  return luma;
}

/** Blur (two Jarosz passes) and decimate to 64×64, or copy a 64×64 input as the reference does. */
export function downsampleTo64(luma: Float32Array, w: number, h: number): Float32Array {
  const out = new Float32Array(64 * 64);
  if (w === 64 && h === 64) {
    out.set(luma.subarray(0, 4096));
    return out;
  }
  const tmp = scratch('filter', w * h);
  const winAlongRows = jaroszWindow(w);
  const winAlongCols = jaroszWindow(h);
  const sampleCols = Array.from({ length: 64 }, (_, j) => (((j + 0.5) * w) / 64) | 0);
  const rowStarts = arithmetic(h, w);
  const colStarts = arithmetic(w, 1);
  // The last column pass is needed only in the columns the decimation samples; columns are
  // independent, so filtering just those gives the same values there.
  const sampledStarts = Int32Array.from(new Set(sampleCols));
  for (let pass = 0; pass < NUM_JAROSZ_PASSES; pass++) {
    boxLines(luma, tmp, rowStarts, 1, w, winAlongRows);
    boxLines(tmp, luma, pass < NUM_JAROSZ_PASSES - 1 ? colStarts : sampledStarts, w, h, winAlongCols);
  }
  for (let i = 0; i < 64; i++) {
    const src = ((((i + 0.5) * h) / 64) | 0) * w;
    for (let j = 0; j < 64; j++) out[i * 64 + j] = luma[src + sampleCols[j]!]!;
  }
  return out;
}

/** Window per pass: half of 1/64 of the side, rounded up (two passes make the full tent). */
export function jaroszWindow(dim: number): number {
  // `| 0` truncates like the reference's int division and keeps the result a small integer, so
  // the filter loops that use it are compiled for integer arithmetic.
  return ((dim + 2 * 64 - 1) / (2 * 64)) | 0;
}

/**
 * The 1-D box filter (the reference's box1DFloat) on four lines at once. Each line: `len` samples
 * `step` apart, lane k starting at `ok`; a running float32 sum over a window of `win` samples
 * (⌊(win+2)/2⌋ − 1 before the centre) that shrinks at both ends (the reference's four phases), so
 * each output is the sum of the samples inside the image divided by their count.
 * A line's running sum is one chain of dependent float32 additions, each waiting for the one
 * before; four independent chains side by side let the CPU overlap them (with the other changes,
 * about 2.5× faster). Each lane does exactly the reference's additions in its order: same bits.
 */
function box4(src: Float32Array, dst: Float32Array, o0: number, o1: number, o2: number, o3: number, step: number, len: number, win: number): void {
  const f = Math.fround;
  const half = (win + 2) >> 1;
  const p1 = half - 1;
  const p2 = win - half + 1;
  const p3 = len - win;
  const p4 = half - 1;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let count = 0;
  let ri = 0;
  let li = 0;
  let oi = 0;
  for (let i = 0; i < p1; i++, ri += step) {
    s0 = f(s0 + src[o0 + ri]!);
    s1 = f(s1 + src[o1 + ri]!);
    s2 = f(s2 + src[o2 + ri]!);
    s3 = f(s3 + src[o3 + ri]!);
    count++;
  }
  for (let i = 0; i < p2; i++, ri += step, oi += step) {
    s0 = f(s0 + src[o0 + ri]!);
    s1 = f(s1 + src[o1 + ri]!);
    s2 = f(s2 + src[o2 + ri]!);
    s3 = f(s3 + src[o3 + ri]!);
    count++;
    dst[o0 + oi] = s0 / count;
    dst[o1 + oi] = s1 / count;
    dst[o2 + oi] = s2 / count;
    dst[o3 + oi] = s3 / count;
  }
  for (let i = 0; i < p3; i++, li += step, ri += step, oi += step) {
    s0 = f(f(s0 + src[o0 + ri]!) - src[o0 + li]!);
    s1 = f(f(s1 + src[o1 + ri]!) - src[o1 + li]!);
    s2 = f(f(s2 + src[o2 + ri]!) - src[o2 + li]!);
    s3 = f(f(s3 + src[o3 + ri]!) - src[o3 + li]!);
    dst[o0 + oi] = s0 / count;
    dst[o1 + oi] = s1 / count;
    dst[o2 + oi] = s2 / count;
    dst[o3 + oi] = s3 / count;
  }
  for (let i = 0; i < p4; i++, li += step, oi += step) {
    s0 = f(s0 - src[o0 + li]!);
    s1 = f(s1 - src[o1 + li]!);
    s2 = f(s2 - src[o2 + li]!);
    s3 = f(s3 - src[o3 + li]!);
    count--;
    dst[o0 + oi] = s0 / count;
    dst[o1 + oi] = s1 / count;
    dst[o2 + oi] = s2 / count;
    dst[o3 + oi] = s3 / count;
  }
}

/**
 * The box filter along the lines starting at each of `starts` (each `len` samples `step` apart), four at a
 * time. Rows: starts r·w, step 1. Columns: starts c, step w; four neighbouring columns share cache
 * lines, so walking them together down the image reads memory about as well as a row walk.
 */
function boxLines(src: Float32Array, dst: Float32Array, starts: ArrayLike<number>, step: number, len: number, win: number): void {
  const n = starts.length;
  const last = n - 1;
  // A last group of fewer than four repeats its last line: the repeat computes the same values
  // and stores them in the same places (src and dst are different buffers).
  for (let k = 0; k < n; k += 4) {
    box4(src, dst, starts[k]!, starts[Math.min(k + 1, last)]!, starts[Math.min(k + 2, last)]!, starts[Math.min(k + 3, last)]!, step, len, win);
  }
}

/** 0, step, 2·step, … (n values). */
function arithmetic(n: number, step: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i * step;
  return out;
}

/** The reference's image-domain quality: count of significant gradients, scaled to 0..100. */
export function qualityMetric(a: Float32Array): number {
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

/** T = D·A of dct64To16 (16×64), reused between calls. */
const dctT = new Float32Array(16 * 64);

/**
 * B = D · A · Dᵀ for the 64×64 input A, keeping frequencies 1..16 on both axes. Each output is a
 * float32 sum over k = 0..63 in order, as in the reference; four outputs are summed side by side so
 * that their chains of dependent additions overlap.
 */
export function dct64To16(a: Float32Array): Float32Array {
  const f = Math.fround;
  const D = DCT;
  const t = dctT;
  for (let i = 0; i < 16; i++) {
    const d = i * 64;
    for (let j = 0; j < 64; j += 4) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < 64; k++) {
        const dk = D[d + k]!;
        const o = k * 64 + j;
        s0 = f(s0 + f(dk * a[o]!));
        s1 = f(s1 + f(dk * a[o + 1]!));
        s2 = f(s2 + f(dk * a[o + 2]!));
        s3 = f(s3 + f(dk * a[o + 3]!));
      }
      t[d + j] = s0;
      t[d + j + 1] = s1;
      t[d + j + 2] = s2;
      t[d + j + 3] = s3;
    }
  }
  const b = new Float32Array(256);
  for (let i = 0; i < 16; i++) {
    const r = i * 64;
    for (let j = 0; j < 16; j += 4) {
      const d0 = j * 64;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < 64; k++) {
        const tk = t[r + k]!;
        s0 = f(s0 + f(tk * D[d0 + k]!));
        s1 = f(s1 + f(tk * D[d0 + 64 + k]!));
        s2 = f(s2 + f(tk * D[d0 + 128 + k]!));
        s3 = f(s3 + f(tk * D[d0 + 192 + k]!));
      }
      b[i * 16 + j] = s0;
      b[i * 16 + j + 1] = s1;
      b[i * 16 + j + 2] = s2;
      b[i * 16 + j + 3] = s3;
    }
  }
  return b;
}
