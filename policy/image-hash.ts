/**
 * Exact image hashes (MD5, SHA-1, SHA-256 of the bytes as received), computed while the body
 * streams: feed each chunk to `ExactHasher.update`, then `digest()` once. Pure: node:crypto only.
 * MD5 and SHA-1 are weak as cryptographic hashes but are what hotline image lists carry; they are
 * used here only to look a file up, never to prove anything.
 */
import { createHash, type Hash } from 'node:crypto';

/** Lowercase hex digests of one file. */
export interface ExactHashes {
  readonly md5: string;
  readonly sha1: string;
  readonly sha256: string;
}

/** Incremental MD5 + SHA-1 + SHA-256 over a stream of chunks. */
export class ExactHasher {
  private readonly md5: Hash = createHash('md5');
  private readonly sha1: Hash = createHash('sha1');
  private readonly sha256: Hash = createHash('sha256');
  private done = false;
  /** Bytes seen so far. */
  bytes = 0;

  /** Add the next chunk; throws if called after digest(). */
  update(chunk: Uint8Array): this {
    if (this.done) throw new Error('ExactHasher.update after digest');
    this.md5.update(chunk);
    this.sha1.update(chunk);
    this.sha256.update(chunk);
    this.bytes += chunk.length;
    return this;
  }

  /** The three digests; the hasher cannot be used afterwards. */
  digest(): ExactHashes {
    if (this.done) throw new Error('ExactHasher.digest called twice');
    this.done = true;
    return { md5: this.md5.digest('hex'), sha1: this.sha1.digest('hex'), sha256: this.sha256.digest('hex') };
  }
}

/** The exact hashes of a whole buffer. */
export function exactHashes(bytes: Uint8Array): ExactHashes {
  return new ExactHasher().update(bytes).digest();
}
