/**
 * Image bytes to the pixels PDQ hashes, with sharp (libvips), following the C++ reference's
 * pipeline (facebook/ThreatExchange pdq/cpp/io/pdqio.cpp, CImg decoding):
 * - the first frame only (animated GIF/WebP/multi-page TIFF);
 * - no EXIF auto-rotation (CImg ignores the orientation tag, so a rotated photo hashes as stored);
 * - no ICC colour transform of RGB data (CImg ignores embedded profiles); CMYK, which the reference
 *   cannot hash at all, is converted to sRGB by libvips;
 * - alpha is dropped without compositing (the reference has no alpha path; the Python reference's
 *   `convert("RGB")` drops it the same way);
 * - a truncated file is hashed from what decodes (libjpeg, as used by the reference, warns and keeps
 *   the partial image); bytes that are not an image fail with ERR_IMAGE_DECODE;
 * - wider or taller than 512 px: nearest-neighbour to exactly 512×512 (policy/pdq.ts referenceResize).
 *
 * sharp runs its work on the libuv thread pool, so decoding does not block the event loop; the pure
 * PDQ step that follows is a few milliseconds of JavaScript.
 */
import { createRequire } from 'node:module';
import type SharpModule from 'sharp';
import { SafespotError } from '../../policy/errors.js';
import { referenceResize, type Pixels } from '../../policy/pdq.js';

/**
 * sharp, loaded at the first decode: libvips is ~9.5 MiB of RSS and sharp ~1.1 MiB of V8 heap that
 * a serve without image lists (the default) never uses, per process and per worker.
 */
let sharpModule: typeof SharpModule | undefined;
function sharp(): typeof SharpModule {
  sharpModule ??= createRequire(import.meta.url)('sharp') as typeof SharpModule;
  return sharpModule;
}

/** Decoded pixels ready for PDQ, with the dimensions of the original image. */
export interface DecodedImage {
  /** RGB or grey pixels, already resized as the reference does (at most 512×512). */
  readonly pixels: Pixels;
  /** Width of the image as stored (before any resize). */
  readonly width: number;
  /** Height of the image as stored (before any resize). */
  readonly height: number;
  /** Container format as libvips names it (jpeg, png, gif, webp, …). */
  readonly format: string;
}

export interface DecodeOptions {
  /** Refuse images with more pixels than this (decompression bombs). Default 100 megapixels. */
  readonly maxPixels?: number;
}

/** Decode image bytes for PDQ. Throws SafespotError ERR_IMAGE_DECODE on anything undecodable. */
export async function decodeForPdq(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<DecodedImage> {
  if (bytes.length === 0) throw new SafespotError('ERR_IMAGE_DECODE', 'empty input');
  const maxPixels = opts.maxPixels ?? 100_000_000;
  try {
    const input = { failOn: 'none' as const, limitInputPixels: maxPixels, ignoreIcc: true, page: 0, pages: 1 };
    const image = sharp()(bytes, input);
    const meta = await image.metadata();
    let pipeline = image;
    if (meta.space === 'cmyk') pipeline = pipeline.toColourspace('srgb');
    if (meta.hasAlpha) pipeline = pipeline.removeAlpha();
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const channels = info.channels;
    if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
      throw new SafespotError('ERR_IMAGE_DECODE', `unsupported channel count ${channels}`);
    }
    const pixels = referenceResize({
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
      channels,
    });
    return { pixels, width: info.width, height: info.height, format: meta.format ?? 'unknown' };
  } catch (cause) {
    if (cause instanceof SafespotError) throw cause;
    throw new SafespotError('ERR_IMAGE_DECODE', `image could not be decoded: ${firstLine(cause)}`, { cause });
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n')[0] ?? '').slice(0, 200);
}
