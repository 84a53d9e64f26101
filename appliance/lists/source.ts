/**
 * Fetch one list source: a file, or an https:// URL through undici. One call gives either a new,
 * verified body or "not modified"; anything else is a ListSourceError whose `reason` is one of the
 * metric reason labels (audit/metrics.ts REFRESH_FAILURE_REASONS).
 *
 * What a fetch guarantees:
 * - conditional requests (If-None-Match / If-Modified-Since from the last good copy, RFC 9110 §13.1);
 * - one deadline for the whole request, headers AND body, so an origin that trickles a byte a second
 *   is cut off (undici's bodyTimeout is an idle timeout and would never fire on a trickle);
 * - a size bound checked on Content-Length and again while reading (reading stops at the bound);
 * - a body shorter than its Content-Length is refused (a truncated list is not a list);
 * - retries with exponential back-off and jitter for network errors, 5xx, 408, 429 and timeouts only;
 * - integrity: the expected SHA-256 and/or the Ed25519 detached signature at `${source}.sig`;
 * - credentials: configured header values are read once (prepareSource) and never appear in an
 *   error message; the printable form of a URL drops its query and user info.
 *
 * Redirects (301/302/303/307/308) are followed up to 5 times, https only; the configured headers
 * (credentials) go to the configured origin only and are dropped on a cross-origin redirect.
 *
 * The work is in three files: lists/prepare.ts makes a configured source ready once
 * (PreparedSource), lists/fetch.ts gets the bytes (retries, deadline, size bound,
 * conditional requests, redirects), and this file checks them (SHA-256, Ed25519 signature).
 * Importers use this module: it re-exports the other two.
 */
import { createHash, verify } from 'node:crypto';
import { fetchUrlOnce, ListSourceError, readFileSource, withRetries, type CachedValidators, type FetchOptions } from './fetch.js';
import type { PreparedSource } from './prepare.js';
import { isStatement, verifyStatement, type SignedBefore } from './signature.js';

export {
  createSourceDispatcher,
  fetchOptionsFromConfig,
  ListSourceError,
  type CachedValidators,
  type FetchOptions,
} from './fetch.js';
export { displaySource, isUrlSource, prepareSource, prepareSources, type PreparedSource } from './prepare.js';

export type FetchResult =
  | {
      readonly status: 'updated';
      readonly body: Uint8Array;
      readonly sha256: string;
      readonly etag?: string;
      readonly lastModified?: string;
      /** The version its signed statement carries (absent: no signature, or a bare one). */
      readonly signedVersion?: number;
    }
  | { readonly status: 'not-modified' };

const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Fetch one source. `cached` (validators of the last good copy) makes the request conditional.
 * Resolves with a verified body or 'not-modified'; rejects with ListSourceError.
 */
export async function fetchSource(src: PreparedSource, opts: FetchOptions, cached?: CachedValidators): Promise<FetchResult> {
  const result = await withRetries(src, opts, () => (src.type === 'file' ? readFileSource(src) : fetchUrlOnce(src, opts, src.location, src.maxBytes, cached)));
  if (result.status === 'not-modified') return result;
  const sha256 = sha256Hex(result.body);
  if (src.sha256 !== undefined && sha256 !== src.sha256) {
    throw new ListSourceError(src.id, 'checksum', `the body's SHA-256 is ${sha256}, the configured sha256 is ${src.sha256} (${src.display})`);
  }
  if (src.publicKey !== undefined) {
    const sigSource = `${src.location}.sig`;
    const raw = await withRetries(src, opts, () =>
      src.type === 'file'
        ? readFileSource({ ...src, location: sigSource, maxBytes: 4096 }, 'signature')
        : fetchUrlOnce(src, opts, sigSource, 4096, undefined, 'signature'),
    );
    if (raw.status !== 'updated') throw new ListSourceError(src.id, 'signature', 'the signature request answered 304');
    const signedVersion = verifySignature(src, result.body, raw.body, cached?.signed);
    if (signedVersion !== undefined) return { ...result, sha256, signedVersion };
  }
  return { ...result, sha256 };
}

/**
 * Check the detached signature at `${source}.sig`. The signed statement (appliance/lists/signature.ts)
 * must name this list (`signedName`) and a version not below `before`; its version is returned. A
 * bare Ed25519 signature over the bytes (raw 64 bytes, or base64 text of them) names neither, and
 * is accepted only with `bareSignature` (then undefined is returned). Throws reason 'signature'.
 */
export function verifySignature(
  src: Pick<PreparedSource, 'id' | 'display' | 'publicKey'> & Partial<Pick<PreparedSource, 'signedName' | 'bareSignature'>>,
  body: Uint8Array,
  sigBytes: Uint8Array,
  before?: SignedBefore,
): number | undefined {
  if (src.publicKey === undefined) return undefined;
  if (isStatement(sigBytes)) {
    try {
      return verifyStatement(sigBytes, body, src.publicKey, src.signedName ?? src.id, before);
    } catch (err) {
      throw new ListSourceError(src.id, 'signature', `${src.display}.sig: ${(err as Error).message}`);
    }
  }
  if (src.bareSignature !== true) {
    throw new ListSourceError(
      src.id,
      'signature',
      `${src.display}.sig is a bare signature, which names no list and no version (a mirror could swap or roll back signed lists); sign with \`safespot sign\`, or set bareSignature: true`,
    );
  }
  let sig: Buffer = Buffer.from(sigBytes);
  if (sig.length !== 64) {
    const text = sig.toString('latin1').trim();
    sig = /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : Buffer.alloc(0);
  }
  if (sig.length !== 64) throw new ListSourceError(src.id, 'signature', `the signature at ${src.display}.sig is not 64 bytes (raw or base64)`);
  let ok = false;
  try {
    ok = verify(null, body, src.publicKey, sig);
  } catch {
    ok = false;
  }
  if (!ok) throw new ListSourceError(src.id, 'signature', `the Ed25519 signature at ${src.display}.sig does not verify against the configured publicKey`);
  return undefined;
}
