/**
 * PDQ against the C++ reference's vectors (../shared/vectors/pdq), plus generated images for
 * robustness. No image files live under test/: everything else is made here with sharp.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeForPdq } from '../../appliance/serve/image-decode.js';
import { SafespotError } from '../../policy/errors.js';
import { ExactHasher, exactHashes } from '../../policy/image-hash.js';
import {
  DIHEDRAL_ORDER,
  jaroszWindow,
  lumaFromPixels,
  pdqDistance,
  pdqFromLuma,
  pdqFromPixels,
  pdqHexToWords,
  pdqWordsToHex,
  referenceResize,
  type PdqHash,
} from '../../policy/pdq.js';
import { PDQ_VECTORS } from '../helpers/vectors.js';

// dist/test/unit -> repo root -> ../shared/vectors
const VECTORS = PDQ_VECTORS;

interface Vector {
  file: string;
  width: number;
  height: number;
  md5: string;
  sha1: string;
  sha256: string;
  pdq: string;
  quality: number;
  pdq_dihedral?: Record<string, string>;
}
const expected = JSON.parse(readFileSync(join(VECTORS, 'expected.json'), 'utf8')) as { vectors: Vector[]; dihedral_order: string[] };

async function hashBytes(bytes: Uint8Array, dihedral = false): Promise<PdqHash & { width: number; height: number }> {
  const img = await decodeForPdq(bytes);
  return { ...pdqFromPixels(img.pixels, { dihedral }), width: img.width, height: img.height };
}
const readVector = (file: string) => readFileSync(join(VECTORS, file));

t.test('reference vectors: hashes within 10 (most within 4), qualities within 5, exact hashes equal', async (t) => {
  t.same([...DIHEDRAL_ORDER], expected.dihedral_order, 'dihedral order is the reference order');
  const distances: number[] = [];
  for (const v of expected.vectors) {
    const bytes = readVector(v.file);
    const got = await hashBytes(bytes, true);
    const d = pdqDistance(got.hash, v.pdq);
    const msg = `${v.file}: distance ${d}, quality ${got.quality} (reference ${v.quality})`;
    t.same(exactHashes(bytes), { md5: v.md5, sha1: v.sha1, sha256: v.sha256 }, `${v.file}: exact hashes`);
    t.same([got.width, got.height], [v.width, v.height], `${v.file}: original dimensions`);
    t.ok(Math.abs(got.quality - v.quality) <= 5, msg);
    if (v.quality >= 50) {
      distances.push(d);
      t.ok(d <= 10, msg);
    } else {
      t.ok(got.quality < 50, `${msg}: reported as low quality`);
    }
    if (v.pdq_dihedral) {
      const dd = DIHEDRAL_ORDER.map((name, i) => pdqDistance(got.dihedral![i]!, v.pdq_dihedral![name]!));
      const dmsg = `${v.file}: dihedral distances ${dd.join(',')}`;
      t.ok(v.quality < 50 || dd.every((x) => x <= 10), dmsg);
      t.equal(got.dihedral![0], got.hash, `${v.file}: dihedral[0] is the hash`);
    }
  }
  const within4 = distances.filter((d) => d <= 4).length;
  t.ok(within4 * 2 > distances.length, `most within 4: ${within4} of ${distances.length} (distances ${distances.join(',')})`);
});

t.test('dihedral variants of the bridge predict the transformed files', async (t) => {
  const original = await hashBytes(readVector('images/bridge-1-original.jpg'), true);
  // The file that shows each transform of bridge-1 (names as in the reference's test data).
  const files: Record<string, string> = {
    rotate90: 'bridge-2-rotate-90.jpg',
    rotate180: 'bridge-3-rotate-180.jpg',
    rotate270: 'bridge-4-rotate-270.jpg',
    flipx: 'bridge-5-flipx.jpg',
    flipy: 'bridge-6-flipy.jpg',
    flipplus1: 'bridge-7-flip-plus-1.jpg',
    flipminus1: 'bridge-8-flip-minus-1.jpg',
  };
  for (const [name, file] of Object.entries(files)) {
    const variant = original.dihedral![DIHEDRAL_ORDER.indexOf(name as (typeof DIHEDRAL_ORDER)[number])]!;
    const actual = await hashBytes(readVector(`images/${file}`));
    const d = pdqDistance(variant, actual.hash);
    // Rotated files went through the 512×512 squash along swapped axes and a re-encode.
    t.ok(d <= 31, `${name} variant vs ${file}: distance ${d}`);
  }
});

t.test('pure pieces: window sizes, hex words, tiny inputs, resize rule', async (t) => {
  const cases: Array<[number, number]> = [
    [1, 1],
    [64, 1],
    [128, 1],
    [129, 2],
    [512, 4],
    [1004, 8],
  ];
  for (const [dim, win] of cases) t.equal(jaroszWindow(dim), win, `window for ${dim}`);
  const hex = 'd8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22';
  t.equal(pdqWordsToHex(pdqHexToWords(hex)), hex);
  t.equal(pdqWordsToHex(pdqHexToWords(hex.toUpperCase())), hex);
  t.throws(() => pdqHexToWords('abc'), RangeError);
  t.equal(pdqDistance(hex, hex), 0);
  t.equal(pdqDistance('0'.repeat(64), 'f'.repeat(64)), 256);
  for (const [w, h] of [
    [4, 100],
    [100, 4],
    [1, 1],
  ] as const) {
    const r = pdqFromLuma(new Float32Array(w * h).fill(7), w, h, { dihedral: true });
    t.same([r.hash, r.quality, r.dihedral?.length], ['0'.repeat(64), 0, 8], `${w}x${h} is below the minimum size`);
  }
  t.throws(() => pdqFromLuma(new Float32Array(10), 10, 10), RangeError);
  // Nearest neighbour to 512: output column x reads input column floor(x * W / 512).
  const w = 1000;
  const data = new Uint8Array(w * 3 * 3);
  for (let y = 0; y < 3; y++) for (let x = 0; x < w; x++) data[(y * w + x) * 3] = x % 251;
  const r = referenceResize({ data, width: w, height: 3, channels: 3 });
  t.same([r.width, r.height], [512, 512]);
  t.equal(r.data[511 * 3], Math.floor((511 * w) / 512) % 251);
  t.equal(r.data[(511 * 512 + 300) * 3], Math.floor((300 * w) / 512) % 251, 'rows repeat when upsampled');
  const small = { data: new Uint8Array(12), width: 2, height: 2, channels: 3 as const };
  t.equal(referenceResize(small), small, 'at most 512: untouched');
  t.same(Array.from(lumaFromPixels({ data: Uint8Array.from([255, 255, 255, 10, 0, 0]), width: 2, height: 1, channels: 3 })).map(Math.round), [255, 3]);
});

t.test('incremental exact hashing equals one-shot', async (t) => {
  const bytes = readVector('images/wee.jpg');
  const h = new ExactHasher();
  for (let i = 0; i < bytes.length; i += 1000) h.update(bytes.subarray(i, i + 1000));
  t.equal(h.bytes, bytes.length);
  t.same(h.digest(), exactHashes(bytes));
  t.throws(() => h.update(bytes));
  t.same(exactHashes(new Uint8Array(0)).md5, 'd41d8cd98f00b204e9800998ecf8427e');
});

/** Deterministic noise (xorshift), so test images are the same each run. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

function gradient(w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      out[o] = (x * 255) / (w - 1);
      out[o + 1] = (y * 255) / (h - 1);
      out[o + 2] = ((x + y) * 127) / (w + h);
    }
  }
  return out;
}

const raw = (data: Uint8Array, width: number, height: number, channels: 3 | 4 = 3) => sharp(data, { raw: { width, height, channels } });

t.test('generated images: no crash, sensible outputs', async (t) => {
  const solid = await hashBytes(await sharp({ create: { width: 300, height: 200, channels: 3, background: '#3a7' } }).png().toBuffer());
  t.equal(solid.quality, 0, `solid colour has quality 0 (got ${solid.quality}): flagged as low quality`);

  const grad = await hashBytes(await raw(gradient(256, 256), 256, 256).png().toBuffer());
  t.ok(grad.quality < 50, `a smooth gradient has low quality (${grad.quality})`);

  const noisy = await hashBytes(await raw(noise(300 * 300 * 3, 7), 300, 300).png().toBuffer());
  t.match(noisy.hash, /^[0-9a-f]{64}$/);
  t.ok(noisy.quality >= 50, `noise has high quality (${noisy.quality})`);

  const one = await hashBytes(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#f00' } }).png().toBuffer());
  t.same([one.hash, one.quality, one.width, one.height], ['0'.repeat(64), 0, 1, 1], '1x1 gives the zero hash, quality 0');

  const tiny = await hashBytes(await raw(noise(6 * 5 * 3, 9), 6, 5).png().toBuffer());
  t.same([tiny.width, tiny.height], [6, 5], 'tiny image hashed at its size');

  // Larger than 512: squashed to 512x512 first; the original dimensions are reported.
  const bigPixels = noise(1500 * 900 * 3, 11);
  const big = await hashBytes(await raw(bigPixels, 1500, 900).png().toBuffer());
  t.same([big.width, big.height], [1500, 900]);
  const direct = pdqFromPixels({ data: bigPixels, width: 1500, height: 900, channels: 3 });
  t.equal(big.hash, direct.hash, 'decode + hash of a lossless large image equals hashing its pixels');

  // PNG with alpha: alpha is dropped, the colour channels hashed.
  const rgb = gradient(200, 150);
  const rgba = new Uint8Array(200 * 150 * 4);
  const speckle = noise(200 * 150, 3);
  for (let i = 0; i < 200 * 150; i++) {
    rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = speckle[i]!;
  }
  const withAlpha = await hashBytes(await raw(rgba, 200, 150, 4).png().toBuffer());
  const without = await hashBytes(await raw(rgb, 200, 150).png().toBuffer());
  t.equal(withAlpha.hash, without.hash, 'alpha is ignored');

  // Greyscale and CMYK JPEGs decode; EXIF orientation is not applied (as in the reference).
  const bridge = readVector('images/bridge-1-original.jpg');
  const ref = await hashBytes(bridge);
  const grey = await hashBytes(await sharp(bridge).greyscale().jpeg().toBuffer());
  t.ok(pdqDistance(grey.hash, ref.hash) <= 10, `greyscale copy: distance ${pdqDistance(grey.hash, ref.hash)}`);
  const cmyk = await hashBytes(await sharp(bridge).toColourspace('cmyk').jpeg().toBuffer());
  t.ok(pdqDistance(cmyk.hash, ref.hash) <= 10, `CMYK copy: distance ${pdqDistance(cmyk.hash, ref.hash)}`);
  const plain = await hashBytes(await sharp(bridge).jpeg({ quality: 90 }).toBuffer());
  const oriented = await hashBytes(await sharp(bridge).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer());
  t.equal(oriented.hash, plain.hash, 'EXIF orientation 6 does not rotate before hashing');
  t.same([oriented.width, oriented.height], [1600, 1004]);

  // Truncated JPEG: hashed from what decodes (the reference keeps the partial image), no crash.
  const truncated = await hashBytes(bridge.subarray(0, Math.floor(bridge.length * 0.6)));
  t.match(truncated.hash, /^[0-9a-f]{64}$/, `truncated JPEG hashed, distance to whole ${pdqDistance(truncated.hash, ref.hash)}`);
  // Only the header survives: an error, not a crash.
  await t.rejects(hashBytes(bridge.subarray(0, 300)), { code: 'ERR_IMAGE_DECODE' }, 'header-only JPEG');

  // Animated GIF: the first frame is hashed.
  const fw = 120;
  const fh = 90;
  const frame1 = new Uint8Array(await sharp(bridge).resize(fw, fh, { fit: 'fill' }).removeAlpha().raw().toBuffer());
  const frame2 = noise(fw * fh * 3, 5);
  const stacked = new Uint8Array(fw * fh * 3 * 2);
  stacked.set(frame1, 0);
  stacked.set(frame2, frame1.length);
  const gif = await sharp(stacked, { raw: { width: fw, height: fh * 2, channels: 3, pageHeight: fh } }).gif().toBuffer();
  t.equal((await sharp(gif).metadata()).pages, 2, 'the GIF has two frames');
  const animated = await hashBytes(gif);
  const first = pdqFromPixels({ data: frame1, width: fw, height: fh, channels: 3 });
  const second = pdqFromPixels({ data: frame2, width: fw, height: fh, channels: 3 });
  const d1 = pdqDistance(animated.hash, first.hash);
  const d2 = pdqDistance(animated.hash, second.hash);
  t.ok(d1 < d2 && d1 <= 31, `animated GIF: distance ${d1} to frame 1, ${d2} to frame 2`);
  t.same([animated.width, animated.height], [fw, fh], 'a frame, not the whole strip');

  // Not an image.
  for (const [name, bytes] of [
    ['text', new TextEncoder().encode('this is not an image\n')],
    ['empty', new Uint8Array(0)],
    ['random', noise(4096, 1)],
    ['PNG signature only', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
  ] as const) {
    try {
      await hashBytes(bytes);
      t.fail(`${name}: should not decode`);
    } catch (err) {
      t.ok(err instanceof SafespotError && err.code === 'ERR_IMAGE_DECODE', `${name}: ERR_IMAGE_DECODE (${(err as Error).message})`);
    }
  }
});

t.test('robustness: re-encoded and resized copies stay close, unrelated images are far', async (t) => {
  const bridge = readVector('images/bridge-1-original.jpg');
  const ref = await hashBytes(bridge);
  const copies: Array<[string, Buffer]> = [
    ['JPEG quality 30', await sharp(bridge).jpeg({ quality: 30 }).toBuffer()],
    ['resized to 400 px wide', await sharp(bridge).resize(400).jpeg({ quality: 85 }).toBuffer()],
    ['resized to 800 px, quality 50', await sharp(bridge).resize(800).jpeg({ quality: 50 }).toBuffer()],
    ['PNG at 300 px', await sharp(bridge).resize(300).png().toBuffer()],
  ];
  for (const [name, bytes] of copies) {
    const d = pdqDistance((await hashBytes(bytes)).hash, ref.hash);
    t.ok(d <= 20, `${name}: distance ${d}`);
  }
  for (const file of ['images/q2821.jpg', 'images/q0122.jpg', 'images/wee.jpg']) {
    const d = pdqDistance((await hashBytes(readVector(file))).hash, ref.hash);
    t.ok(d > 60, `unrelated ${file}: distance ${d}`);
  }
  const noisy = pdqFromPixels({ data: noise(256 * 256 * 3, 42), width: 256, height: 256, channels: 3 });
  const d = pdqDistance(noisy.hash, ref.hash);
  t.ok(d > 60, `noise: distance ${d}`);
});
