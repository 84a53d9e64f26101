/**
 * Leaf certificates for intercepted hosts, minted on demand and signed by the CA.
 *
 * - One leaf key pair per minter, generated once off the main thread (native crypto) and reused for
 *   every host: the expensive part of a certificate is the key, and a per-host key buys nothing
 *   here because every leaf is trusted only through the same CA.
 * - One in-flight mint per host: concurrent callers for a host share one promise.
 * - A bounded LRU of TLS secure contexts (default 1000), expiry-aware: a context is re-minted when
 *   less than `renewBeforeMs` (default one day) of its certificate is left.
 * - Leaves are short-lived (default 7 days, notBefore backdated one hour for device clock skew),
 *   never outlive the CA, carry the host as SAN (dNSName, or iPAddress for IP literals), and have
 *   extendedKeyUsage serverAuth (what browsers require, CA/B Forum BR §7.1.2.7).
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { isIP } from 'node:net';
import type { KeyObject } from 'node:crypto';
import { SafespotError } from '../policy/errors.js';
import { caSigner, generateKey, randomSerial, toSeconds, type Ca, type KeyKind } from './ca.js';
import { buildCertificate } from './x509.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface LeafMinterOptions {
  /** Most TLS contexts kept (least recently used dropped first). Default 1000. */
  readonly cacheSize?: number;
  /** Leaf lifetime from now. Default 7 days; at most 397 days (what Apple and Chrome accept). */
  readonly validityMs?: number;
  /** Re-mint a cached leaf when less than this is left. Default one day. */
  readonly renewBeforeMs?: number;
  /** notBefore is this far in the past, for devices whose clock is behind. Default one hour. */
  readonly backdateMs?: number;
  /** Type of the one shared leaf key. Default ecdsa-p256. */
  readonly keyKind?: KeyKind;
  /** Extra options for every context (ciphers, minVersion, …); key and cert are ours. */
  readonly secureContextOptions?: Omit<SecureContextOptions, 'key' | 'cert' | 'pfx'>;
  /** Clock (milliseconds since the epoch), for tests. */
  readonly now?: () => number;
}

/** One minted certificate. `keyPem` is the minter's shared leaf key (never the CA key). */
export interface MintedLeaf {
  /** The normalised name the certificate is for (lower case, no trailing dot; IPs canonical). */
  readonly host: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Upper-case hex. */
  readonly serialNumber: string;
}

/** Counters for tests, metrics and benchmarks (no host names). */
export interface LeafMinterStats {
  /** Certificates signed. */
  readonly mints: number;
  /** getSecureContext answered from a finished cache entry. */
  readonly hits: number;
  /** getSecureContext joined a mint already in flight for the host. */
  readonly joins: number;
  /** Entries re-minted because their certificate was near its end. */
  readonly renewals: number;
  /** Entries dropped to respect cacheSize. */
  readonly evictions: number;
  /** Mints that failed (the entry is dropped; the next call tries again). */
  readonly failures: number;
  /** Entries in the cache now (finished and in flight). */
  readonly size: number;
}

/** A host as a certificate names it. */
export type LeafName = { readonly kind: 'dns'; readonly name: string } | { readonly kind: 'ip'; readonly name: string; readonly bytes: Uint8Array };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Normalise a host from an SNI, CONNECT authority or Host header (without port) into a name a
 * certificate can carry. Throws ERR_CERT for anything else (empty, too long, bad characters,
 * wildcards). IPv6 may come bracketed.
 */
export function normalizeHost(host: string): LeafName {
  let h = host.trim().toLowerCase();
  if (h.endsWith('.') && isIP(h.slice(0, -1)) === 4) h = h.slice(0, -1); // "192.0.2.1." is still an address
  // Brackets are only for IPv6 literals (RFC 3986 §3.2.2); "[x.test]" is not a name.
  const bracketed = h.startsWith('[') && h.endsWith(']');
  if (bracketed) h = h.slice(1, -1);
  const family = isIP(h);
  if (bracketed && family !== 6) throw new SafespotError('ERR_CERT', `cannot mint a certificate for "${printable(host)}": not a host name or IP address`);
  if (family === 4) {
    const bytes = Uint8Array.from(h.split('.').map(Number));
    return { kind: 'ip', name: bytes.join('.'), bytes };
  }
  if (family === 6) {
    const bytes = ipv6Bytes(h);
    return { kind: 'ip', name: new URL(`http://[${h}]/`).hostname.slice(1, -1), bytes };
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  // RFC 1035 §2.3.4 lengths; underscores are common in real host names and accepted by clients.
  if (h.length === 0 || h.length > 253 || !h.split('.').every((l) => LABEL.test(l))) {
    throw new SafespotError('ERR_CERT', `cannot mint a certificate for "${printable(host)}": not a host name or IP address`);
  }
  return { kind: 'dns', name: h };
}

const printable = (s: string): string => s.slice(0, 80).replace(/[^\x20-\x7e]/g, '?');

/** 16 bytes of a valid IPv6 literal (isIP already said it is one). */
function ipv6Bytes(text: string): Uint8Array {
  // The WHATWG URL parser canonicalises (lower case, embedded IPv4 as hex, zone-free), leaving only
  // `::` compression to expand.
  const canon = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canon.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

interface LeafKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly pem: string;
}

interface Entry {
  readonly context: Promise<SecureContext>;
  /** Infinity while in flight; then the time to re-mint. */
  renewAt: number;
}

/** Mints leaves for one CA and caches their TLS contexts. Create one per process and CA. */
export class LeafMinter {
  readonly #ca: Ca;
  readonly #cacheSize: number;
  readonly #validityMs: number;
  readonly #renewBeforeMs: number;
  readonly #backdateMs: number;
  readonly #keyKind: KeyKind;
  readonly #contextOptions: Omit<SecureContextOptions, 'key' | 'cert' | 'pfx'>;
  readonly #now: () => number;
  readonly #cache = new Map<string, Entry>();
  #key: Promise<LeafKey> | undefined;
  #mints = 0;
  #hits = 0;
  #joins = 0;
  #renewals = 0;
  #evictions = 0;
  #failures = 0;

  constructor(ca: Ca, opts: LeafMinterOptions = {}) {
    caSigner(ca); // fail now, not at the first handshake, if this is not one of our CAs
    this.#ca = ca;
    this.#cacheSize = opts.cacheSize ?? 1000;
    this.#validityMs = opts.validityMs ?? 7 * DAY;
    this.#renewBeforeMs = opts.renewBeforeMs ?? DAY;
    this.#backdateMs = opts.backdateMs ?? HOUR;
    this.#keyKind = opts.keyKind ?? 'ecdsa-p256';
    this.#contextOptions = opts.secureContextOptions ?? {};
    this.#now = opts.now ?? Date.now;
    if (!Number.isInteger(this.#cacheSize) || this.#cacheSize < 1) {
      throw new SafespotError('ERR_CERT', `cacheSize must be a positive integer, got ${this.#cacheSize}`);
    }
    if (!(this.#validityMs >= HOUR && this.#validityMs <= 397 * DAY)) {
      throw new SafespotError('ERR_CERT', 'leaf validity must be between one hour and 397 days');
    }
    if (!(this.#renewBeforeMs >= 0 && this.#renewBeforeMs < this.#validityMs)) {
      throw new SafespotError('ERR_CERT', 'renewBeforeMs must be at least 0 and less than the leaf validity');
    }
    if (!(this.#backdateMs >= 0 && this.#backdateMs <= DAY)) {
      throw new SafespotError('ERR_CERT', 'backdateMs must be between 0 and one day');
    }
  }

  get stats(): LeafMinterStats {
    return {
      mints: this.#mints,
      hits: this.#hits,
      joins: this.#joins,
      renewals: this.#renewals,
      evictions: this.#evictions,
      failures: this.#failures,
      size: this.#cache.size,
    };
  }

  /** The shared leaf key pair, generated on first use off the main thread. */
  #leafKey(): Promise<LeafKey> {
    this.#key ??= generateKey(this.#keyKind).then(
      ({ privateKey, publicKey }) => ({ privateKey, publicKey, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }),
      (cause: unknown) => {
        this.#key = undefined; // let a later call try again
        throw new SafespotError('ERR_CERT', `leaf key generation failed: ${(cause as Error).message}`, { cause });
      },
    );
    return this.#key;
  }

  /** Mint a new certificate for `host` (no caching; getSecureContext is what handshakes use). */
  async mint(host: string): Promise<MintedLeaf> {
    const name = normalizeHost(host);
    const key = await this.#leafKey();
    const { key: caKey, issuer } = caSigner(this.#ca);
    const now = this.#now();
    const caNotAfter = Date.parse(this.#ca.cert.validTo);
    if (now >= caNotAfter) throw new SafespotError('ERR_CERT', `the CA expired on ${this.#ca.cert.validTo}`);
    const notBefore = toSeconds(now - this.#backdateMs);
    // A leaf never outlives its CA (clients would reject the chain at that point anyway).
    const notAfter = toSeconds(Math.min(now + this.#validityMs, caNotAfter));
    const serial = randomSerial();
    const der = await buildCertificate(
      {
        serial,
        // A CN only when it fits (ub-common-name 64, RFC 5280 App. A); the SAN is what clients check.
        subject: [{ type: 'O', value: 'safespot interception' }, ...(name.name.length <= 64 ? [{ type: 'CN' as const, value: name.name }] : [])],
        notBefore,
        notAfter,
        publicKey: key.publicKey,
        keyUsage: key.publicKey.asymmetricKeyType === 'rsa' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'],
        serverAuth: true,
        ...(name.kind === 'dns' ? { dnsNames: [name.name] } : { ipAddresses: [name.bytes] }),
      },
      caKey,
      issuer,
    );
    this.#mints++;
    return {
      host: name.name,
      certPem: `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`,
      keyPem: key.pem,
      notBefore,
      notAfter,
      serialNumber: Buffer.from(serial).toString('hex').toUpperCase(),
    };
  }

  /** Whether getSecureContext(host) would be answered without a mint (fresh, or being minted). */
  cached(host: string): boolean {
    let key: string;
    try {
      key = normalizeHost(host).name;
    } catch {
      return true; // refused without a mint either way
    }
    const found = this.#cache.get(key);
    return found !== undefined && this.#now() < found.renewAt;
  }

  /**
   * A TLS context presenting a leaf for `host`: cached, shared while in flight, re-minted near
   * expiry. Rejects with ERR_CERT for a name no certificate can carry or a failed mint.
   */
  getSecureContext(host: string): Promise<SecureContext> {
    let key: string;
    try {
      key = normalizeHost(host).name;
    } catch (err) {
      return Promise.reject(err);
    }
    const found = this.#cache.get(key);
    if (found && this.#now() < found.renewAt) {
      this.#cache.delete(key); // LRU: move to the most recent end
      this.#cache.set(key, found);
      if (found.renewAt === Infinity) this.#joins++;
      else this.#hits++;
      return found.context;
    }
    if (found) this.#renewals++;
    const minted = this.mint(key).then((leaf) => ({ leaf, context: createSecureContext({ ...this.#contextOptions, key: leaf.keyPem, cert: leaf.certPem }) }));
    const entry: Entry = { context: minted.then((m) => m.context), renewAt: Infinity };
    minted.then(
      ({ leaf }) => {
        const made = this.#now();
        const end = leaf.notAfter.getTime();
        // Renew a day before the end; if the leaf is shorter than that (the CA is about to
        // expire), halfway, so a short-lived leaf does not cause a mint on every handshake.
        entry.renewAt = end - this.#renewBeforeMs > made ? end - this.#renewBeforeMs : made + (end - made) / 2;
      },
      () => {
        this.#failures++;
        if (this.#cache.get(key) === entry) this.#cache.delete(key);
      },
    );
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    while (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next().value as string;
      this.#cache.delete(oldest); // an evicted in-flight mint still resolves for its callers
      this.#evictions++;
    }
    return entry.context;
  }

  /** For `tls.createServer({ SNICallback: minter.sniCallback })`. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    this.getSecureContext(servername).then(
      (ctx) => cb(null, ctx),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  };

  /** Drop every cached context (for example after the CA was replaced). */
  clear(): void {
    this.#cache.clear();
  }
}
