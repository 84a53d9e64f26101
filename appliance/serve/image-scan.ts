/**
 * The image scanner that `serve` gives the proxy's onImage hook (proxy/ cannot import appliance/,
 * where sharp decoding lives, so it receives this function): exact hashes and, when the bytes decode
 * as an image, PDQ. Off the event loop where it counts: SHA-1 and SHA-256 through WebCrypto (Node
 * runs digest jobs on the libuv thread pool), decoding in sharp (libvips, also the pool); MD5 (not
 * in WebCrypto, ~1.5 ms per MB) and the PDQ arithmetic on the 512×512-bounded pixels (a few ms) stay
 * on the loop. Never throws for bad bytes: an undecodable body gives exact hashes without `pdq`.
 */
import { createHash, webcrypto } from 'node:crypto';
import type { ScannedImageHashes } from '../../policy/image-lists.js';
import { pdqFromPixels } from '../../policy/pdq.js';
import { decodeForPdq } from './image-decode.js';

const hex = (b: ArrayBuffer): string => Buffer.from(b).toString('hex');

export async function scanImage(bytes: Uint8Array, opts: { dihedral?: boolean } = {}): Promise<ScannedImageHashes> {
  const sha1 = webcrypto.subtle.digest('SHA-1', bytes);
  const sha256 = webcrypto.subtle.digest('SHA-256', bytes);
  const decoded = decodeForPdq(bytes).then(
    (img) => img,
    () => null,
  );
  const md5 = createHash('md5').update(bytes).digest('hex');
  const exact = { md5, sha1: hex(await sha1), sha256: hex(await sha256) };
  const img = await decoded;
  if (img === null) return exact;
  const p = pdqFromPixels(img.pixels, { dihedral: opts.dihedral === true });
  return {
    ...exact,
    pdq: p.dihedral ? { hash: p.hash, quality: p.quality, dihedral: p.dihedral } : { hash: p.hash, quality: p.quality },
  };
}
