/**
 * Getting a list source's bytes (lists/source.ts checks them): one attempt reads a file or makes an
 * HTTPS request through undici, and withRetries repeats retryable failures with back-off. An
 * attempt sends the conditional request headers, follows https redirects (credentials only to the
 * configured origin), holds one deadline over headers and body, bounds the size on Content-Length
 * and while reading, and refuses a truncated body. Also the undici dispatcher for sources and the
 * ListSourceError every step (and appliance/lists/refresh.ts) fails with. Kept apart from lists/source.ts
 * because this is the transport, with its own failure modes; the integrity checks are not.
 */
import { readFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { rootCertificates } from 'node:tls';
import type { Agent, Dispatcher } from 'undici';
import type { RefreshFailureReason } from '../../audit/metrics.js';
import { SafespotError, type ErrorCode } from '../../policy/errors.js';
import { privateAddressReason } from '../../proxy/resolver.js';
import type { Config } from '../config.js';
import type { SignedBefore } from './signature.js';
import { builtinBody } from './builtin.js';
import { displaySource, type PreparedSource } from './prepare.js';

type Undici = typeof import('undici');
let undiciModule: Undici | undefined;
/**
 * undici, loaded at the first https source (or dispatcher) an appliance uses: ~3.7 MiB of V8 heap
 * and ~9 MiB of RSS that one whose lists are all files never needs, per process and per worker.
 */
function undici(): Undici {
  undiciModule ??= createRequire(import.meta.url)('undici') as Undici;
  return undiciModule;
}

/** Validators of the last good copy, sent as conditional request headers. */
export interface CachedValidators {
  readonly etag?: string;
  readonly lastModified?: string;
  /** The signed version last accepted, and its bytes' SHA-256: a new statement must not go below it. */
  readonly signed?: SignedBefore;
}

export interface FetchOptions {
  /** Deadline of one attempt, headers and body together. */
  readonly timeoutMs: number;
  /** Extra attempts after a retryable failure. */
  readonly retries: number;
  /**
   * undici dispatcher (an Agent with the extra CA), or a LazyDispatcher that makes one at the first
   * https fetch; default: undici's global dispatcher.
   */
  readonly dispatcher?: Dispatcher | LazyDispatcher;
  /** Aborts the fetch, its retries and back-off sleeps (ListRefresher.stop()). */
  readonly signal?: AbortSignal;
  /** First back-off delay (default 1 s); doubles per attempt up to backoffMaxMs (default 30 s); jittered to [50%, 100%]. */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Random source in [0, 1) for the jitter (tests). */
  readonly random?: () => number;
  /** Told about each failed attempt that will be retried. */
  readonly onRetry?: (error: ListSourceError, attempt: number, delayMs: number) => void;
}

const CODE_OF_REASON: Record<RefreshFailureReason, ErrorCode> = {
  read: 'ERR_LIST_READ',
  http: 'ERR_LIST_READ',
  timeout: 'ERR_LIST_READ',
  too_large: 'ERR_LIST_READ',
  invalid: 'ERR_LIST_INVALID',
  shrink: 'ERR_LIST_INVALID',
  checksum: 'ERR_LIST_INTEGRITY',
  signature: 'ERR_LIST_INTEGRITY',
  other: 'ERR_LIST_READ',
};

/** A refused fetch or update. `reason` is the metric label; `retryable` says whether another attempt may help. */
export class ListSourceError extends SafespotError {
  readonly reason: RefreshFailureReason;
  readonly listId: string;
  readonly retryable: boolean;

  constructor(listId: string, reason: RefreshFailureReason, message: string, options?: { retryable?: boolean; cause?: unknown }) {
    super(CODE_OF_REASON[reason], `list "${listId}": ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ListSourceError';
    this.reason = reason;
    this.listId = listId;
    this.retryable = options?.retryable ?? false;
  }
}

/**
 * The undici dispatcher for list sources. With `caPem`, the extra CA is trusted beside the system
 * roots (a `ca` option replaces Node's default roots, so both are passed).
 */
export function createSourceDispatcher(opts: { caPem?: string | Buffer; connectTimeoutMs?: number } = {}): Agent {
  const ca = opts.caPem === undefined ? undefined : [...rootCertificates, opts.caPem.toString()];
  return new (undici().Agent)({
    connect: { ...(ca ? { ca } : {}), timeout: opts.connectTimeoutMs ?? 10_000 },
    // Lists are fetched rarely: do not keep idle sockets to origins around for long.
    keepAliveTimeout: 4_000,
  });
}

/** The source dispatcher of a config, made (and undici loaded) only when an https source is fetched. */
export class LazyDispatcher {
  #agent: Agent | undefined;
  constructor(private readonly opts: { caPem?: string | Buffer; connectTimeoutMs?: number }) {}

  get(): Agent {
    this.#agent ??= createSourceDispatcher(this.opts);
    return this.#agent;
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}

/** FetchOptions from the `sources` config section (reads the CA file; throws ERR_CONFIG_INVALID). */
export function fetchOptionsFromConfig(sources: Config['sources'], signal?: AbortSignal): FetchOptions & { dispatcher: LazyDispatcher } {
  let caPem: Buffer | undefined;
  if (sources.ca !== undefined) {
    try {
      caPem = readFileSync(sources.ca);
    } catch (err) {
      throw new SafespotError('ERR_CONFIG_INVALID', `sources.ca: cannot read ${sources.ca} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!caPem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
      throw new SafespotError('ERR_CONFIG_INVALID', `sources.ca: ${sources.ca} holds no PEM certificate`);
    }
  }
  const dispatcher = new LazyDispatcher({ caPem, connectTimeoutMs: Math.min(sources.timeout, 10_000) });
  return { timeoutMs: sources.timeout, retries: sources.retries, dispatcher, ...(signal ? { signal } : {}) };
}

type Once = { status: 'updated'; body: Uint8Array; etag?: string; lastModified?: string } | { status: 'not-modified' };

export async function withRetries<T extends Once>(src: PreparedSource, opts: FetchOptions, attempt: () => Promise<T>): Promise<T> {
  const base = opts.backoffBaseMs ?? 1000;
  const max = opts.backoffMaxMs ?? 30_000;
  const random = opts.random ?? Math.random;
  for (let n = 0; ; n++) {
    throwIfStopped(src, opts.signal);
    try {
      return await attempt();
    } catch (err) {
      const e = asSourceError(src, err);
      throwIfStopped(src, opts.signal);
      if (!e.retryable || n >= opts.retries) throw e;
      // Exponential back-off with "equal jitter": half fixed, half random, so a fleet that failed
      // together does not retry together.
      const full = Math.min(max, base * 2 ** n);
      const delay = Math.round(full / 2 + (random() * full) / 2);
      opts.onRetry?.(e, n + 1, delay);
      await sleep(delay, opts.signal);
    }
  }
}

function throwIfStopped(src: PreparedSource, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ListSourceError(src.id, 'other', 'fetch cancelled (stopping)');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}

function asSourceError(src: PreparedSource, err: unknown): ListSourceError {
  if (err instanceof ListSourceError) return err;
  return new ListSourceError(src.id, 'other', `unexpected error (${src.display}): ${redact(src, (err as Error)?.message ?? String(err)).slice(0, 200)}`);
}

/** Replace every configured header value in `text` (defence in depth: our messages never include them). */
function redact(src: PreparedSource, text: string): string {
  let out = text;
  for (const v of Object.values(src.headers)) if (v.length >= 3) out = out.split(v).join('[redacted]');
  if (src.type === 'url' && src.location !== src.display) out = out.split(src.location).join(src.display);
  return out;
}

export async function readFileSource(src: PreparedSource, what: 'body' | 'signature' = 'body'): Promise<Once> {
  const reason: RefreshFailureReason = what === 'signature' ? 'signature' : 'read';
  // `builtin:NAME` (lists/builtin.ts): shipped inside safespot, always there.
  const builtin = what === 'body' ? builtinBody(src.location) : null;
  if (builtin !== null) return { status: 'updated', body: builtin };
  let fh;
  try {
    fh = await open(src.location, 'r');
  } catch (err) {
    throw new ListSourceError(src.id, reason, `cannot read ${what === 'signature' ? 'the signature ' : ''}${src.location} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ListSourceError(src.id, reason, `${src.location} is not a regular file`);
    if (st.size > src.maxBytes) throw new ListSourceError(src.id, what === 'signature' ? 'signature' : 'too_large', `${src.location} is ${st.size} bytes, over the bound of ${src.maxBytes}`);
    const buf = await fh.readFile();
    if (buf.length > src.maxBytes) throw new ListSourceError(src.id, what === 'signature' ? 'signature' : 'too_large', `${src.location} grew past the bound of ${src.maxBytes} bytes while being read`);
    return { status: 'updated', body: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) };
  } catch (err) {
    if (err instanceof ListSourceError) throw err;
    throw new ListSourceError(src.id, reason, `cannot read ${src.location} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/**
 * A redirect to another host must not lead into the appliance's own network: the destination check
 * guests get (proxy/resolver.ts privateAddressReason: loopback, private, link-local, reserved…) on
 * the literal or on every address its name resolves to. The configured source's own host is the
 * operator's choice and exempt (an internal mirror on 10.0.0.5 may redirect within itself). Null
 * when allowed, else why not. (undici resolves the name again to connect: a name that answers public
 * here and private a moment later is a known limit, see docs/lists.md.)
 */
export async function redirectRefusal(next: URL, configured: URL): Promise<string | null> {
  const host = next.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  const own = configured.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  if (host === own) return null;
  if (privateAddressReason(host) === null) return null; // a public IP literal
  if (/^[\d.]+$|:/.test(host)) return `${host} is a ${privateAddressReason(host)}`;
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch (err) {
    return `${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  for (const { address } of addresses) {
    const why = privateAddressReason(address);
    if (why !== null) return `${host} resolves to a ${why}`;
  }
  return null;
}

/** One attempt over HTTPS: follows redirects, enforces the deadline and the size bound. */
export async function fetchUrlOnce(
  src: PreparedSource,
  opts: FetchOptions,
  location: string,
  maxBytes: number,
  cached: CachedValidators | undefined,
  what: 'body' | 'signature' = 'body',
): Promise<Once> {
  const deadline = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    deadline.abort(new Error('deadline'));
  }, opts.timeoutMs);
  timer.unref();
  const onStop = (): void => deadline.abort(new Error('stopped'));
  opts.signal?.addEventListener('abort', onStop, { once: true });
  const label = what === 'signature' ? `the signature ${displaySource(location)}` : displaySource(location);
  const notFoundReason: RefreshFailureReason = what === 'signature' ? 'signature' : 'http';
  try {
    let url = new URL(location);
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = url.origin === origin ? { ...src.headers } : {};
      headers['accept-encoding'] = 'identity';
      if (cached?.etag) headers['if-none-match'] = cached.etag;
      if (cached?.lastModified) headers['if-modified-since'] = cached.lastModified;
      const d = opts.dispatcher instanceof LazyDispatcher ? opts.dispatcher.get() : opts.dispatcher;
      const res = await undici().request(url, {
        method: 'GET',
        headers,
        signal: deadline.signal,
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.timeoutMs,
        ...(d ? { dispatcher: d } : {}),
      });
      const status = res.statusCode;
      if (REDIRECTS.has(status)) {
        discard(res.body);
        const to = headerOf(res.headers, 'location');
        if (!to || hop >= MAX_REDIRECTS) throw new ListSourceError(src.id, 'http', `${label}: ${to ? 'too many redirects' : `redirect ${status} without Location`}`);
        const next = new URL(to, url);
        if (next.protocol !== 'https:') throw new ListSourceError(src.id, 'http', `${label}: refused a redirect to a non-https URL`);
        const refusal = await redirectRefusal(next, new URL(location));
        if (refusal !== null) throw new ListSourceError(src.id, 'http', `${label}: refused a redirect into the appliance's own network: ${refusal}`);
        url = next;
        continue;
      }
      if (status === 304) {
        discard(res.body);
        if (!cached?.etag && !cached?.lastModified) throw new ListSourceError(src.id, 'http', `${label}: 304 to an unconditional request`);
        return { status: 'not-modified' };
      }
      if (status < 200 || status > 299) {
        discard(res.body);
        const retryable = status >= 500 || status === 408 || status === 429;
        throw new ListSourceError(src.id, status === 404 || status === 410 ? notFoundReason : 'http', `${label}: HTTP ${status}`, { retryable });
      }
      const declared = headerOf(res.headers, 'content-length');
      const expected = declared === undefined ? undefined : Number(declared);
      if (expected !== undefined && expected > maxBytes) {
        discard(res.body);
        throw new ListSourceError(src.id, what === 'signature' ? 'signature' : 'too_large', `${label}: Content-Length ${expected} is over the bound of ${maxBytes} bytes`);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > maxBytes) {
          discard(res.body);
          throw new ListSourceError(src.id, what === 'signature' ? 'signature' : 'too_large', `${label}: the body passed the bound of ${maxBytes} bytes; reading stopped`);
        }
        chunks.push(chunk);
      }
      if (expected !== undefined && Number.isFinite(expected) && total !== expected) {
        throw new ListSourceError(src.id, 'http', `${label}: body of ${total} bytes, Content-Length said ${expected} (truncated)`, { retryable: true });
      }
      const buf = Buffer.concat(chunks, total);
      const etag = headerOf(res.headers, 'etag');
      const lastModified = headerOf(res.headers, 'last-modified');
      return {
        status: 'updated',
        body: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
        ...(etag ? { etag } : {}),
        ...(lastModified ? { lastModified } : {}),
      };
    }
  } catch (err) {
    if (err instanceof ListSourceError) throw err;
    if (timedOut) throw new ListSourceError(src.id, 'timeout', `${label}: no complete answer within ${opts.timeoutMs} ms`, { retryable: true });
    if (opts.signal?.aborted) throw new ListSourceError(src.id, 'other', 'fetch cancelled (stopping)');
    const e = err as { code?: string; message?: string };
    const code = e.code ?? '';
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      throw new ListSourceError(src.id, 'timeout', `${label}: timed out (${code})`, { retryable: true });
    }
    // Network-level failures (refused, reset, closed mid-body, TLS errors): the origin or the path
    // to it is at fault, so another attempt may help.
    const detail = redact(src, `${code ? `${code}: ` : ''}${e.message ?? String(err)}`).slice(0, 200);
    // No `cause`: a logged cause could carry request details; the message says what went wrong.
    throw new ListSourceError(src.id, 'http', `${label}: ${detail}`, { retryable: true });
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onStop);
  }
}

/** Drop a response body: destroying an undici body emits 'error' (aborted), which must have a listener. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

function headerOf(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
