/**
 * The list refresh scheduler: keeps each list fresh on its own interval, applies an update only when
 * it passed every check, and keeps the last good version in force (and on disk) otherwise.
 *
 * Life cycle (serve):
 *   const r = new ListRefresher({ sources, fetch, cache, countEntries, onUpdate, onFailure, onSuccess, startup });
 *   const initial = await r.loadInitial();   // bodies to compile the first policy from; `missing` lists
 *   ...compile, swap...
 *   r.start();                               // background refreshes; later updates arrive via onUpdate
 *   await r.refreshNow();                    // SIGHUP / POST /reload: refresh every list now
 *   await r.stop();                          // timers cleared, in-flight fetches aborted and awaited
 *
 * An update is applied in this order, and a failure at any step leaves the last good version in
 * force: fetch (conditional; integrity checked in lists/source.ts) → same bytes as the last good copy?
 * then it counts as not modified → countEntries (parse) → shrink bound → onUpdate (the caller
 * compiles and swaps; a throw refuses the update) → write the last-good cache → onSuccess.
 * onUpdate calls are serialised (one compile at a time), in the order updates arrive.
 *
 * Timers are unref'd (they never hold the process open) and stop() clears them.
 */
import { REFRESH_FAILURE_REASONS, type RefreshFailureReason } from '../../audit/metrics.js';
import { SafespotError } from '../../policy/errors.js';
import type { CacheMeta, ListCache } from './cache.js';
import { ListSourceError, type CachedValidators, type FetchResult, type PreparedSource } from './source.js';

/** Refresh interval of a URL list that configures none. */
export const DEFAULT_REFRESH_MS = 6 * 3_600_000;

/** Fetch one source; lists/source.ts's fetchSource bound to its options: `(s, c, sig) => fetchSource(s, { ...opts, signal: sig }, c)`. */
export type SourceFetcher = (src: PreparedSource, cached: CachedValidators | undefined, signal: AbortSignal) => Promise<FetchResult>;

export interface UpdateInfo {
  readonly entries: number;
  readonly sha256: string;
  readonly fetchedAt: number;
}

export interface SuccessInfo {
  /** updated: a new body was applied; not-modified: the origin confirmed the last good copy; cached: loaded from the cache at start. */
  readonly status: 'updated' | 'not-modified' | 'cached';
  readonly entries: number;
  /** When the origin last confirmed the body in force (ms since the epoch): for the last-refresh gauge. */
  readonly at: number;
}

export interface ListRefresherOptions {
  readonly sources: readonly PreparedSource[];
  readonly fetch: SourceFetcher;
  readonly cache: ListCache;
  /** Entries in a body (from the parse); throw when the body does not parse (reason 'invalid'). */
  readonly countEntries: (body: Uint8Array, listId: string) => number | Promise<number>;
  /** Apply a new body (compile and swap). A throw refuses the update (reason: the error's `reason`; ERR_LIST_INVALID/ERR_BUNDLE_CORRUPT: 'invalid'; else 'other'). */
  readonly onUpdate: (listId: string, body: Uint8Array, info: UpdateInfo) => Promise<void>;
  readonly onFailure?: (listId: string, reason: RefreshFailureReason, message: string) => void;
  readonly onSuccess?: (listId: string, info: SuccessInfo) => void;
  /** A list with nothing cached at start: 'wait' fetches it in loadInitial; 'fail-closed' reports it missing at once. */
  readonly startup?: 'wait' | 'fail-closed';
  /** Interval of URL lists without `refresh` (default 6 h). File lists refresh only when `refresh` is set. */
  readonly defaultRefreshMs?: number;
  /** Jitter added to each delay: up to this fraction of the interval (default 0.1). */
  readonly jitter?: number;
  /** First retry delay after a failed refresh (default 60 s); doubles per consecutive failure, never past the interval. */
  readonly failureRetryMs?: number;
  readonly random?: () => number;
  readonly now?: () => number;
  /** Operational warnings (a cache that cannot be written, a callback that threw). */
  readonly warn?: (message: string) => void;
}

export interface InitialList {
  readonly id: string;
  readonly body: Uint8Array;
  readonly from: 'source' | 'cache';
  readonly entries: number;
  readonly sha256: string;
  readonly fetchedAt: number;
}

export interface InitialLoad {
  /** Lists with a body, by id. */
  readonly lists: ReadonlyMap<string, InitialList>;
  /** Lists with nothing to serve from; `reason` null = not fetched yet (startup 'fail-closed'). */
  readonly missing: ReadonlyArray<{ readonly id: string; readonly reason: RefreshFailureReason | null; readonly message: string }>;
}

export interface RefreshOutcome {
  readonly id: string;
  readonly status: 'updated' | 'not-modified' | 'failed' | 'skipped';
  readonly reason?: RefreshFailureReason;
  readonly message?: string;
}

export interface ListStatus {
  readonly id: string;
  readonly source: string;
  /** Entries and SHA-256 of the version in force; null = none. */
  readonly entries: number | null;
  readonly sha256: string | null;
  readonly lastSuccessAt: number | null;
  readonly lastFailure: { readonly at: number; readonly reason: RefreshFailureReason; readonly message: string } | null;
  readonly consecutiveFailures: number;
  readonly nextRefreshAt: number | null;
  /** Refresh interval in ms; null = refreshed only on refreshNow() (file lists without `refresh`). */
  readonly intervalMs: number | null;
}

interface Good {
  sha256: string;
  entries: number;
  fetchedAt: number;
  checkedAt: number;
  etag?: string;
  lastModified?: string;
  /** The version of the accepted signed statement: a refresh must not go below it. */
  signedVersion?: number;
}

interface State {
  readonly src: PreparedSource;
  readonly intervalMs: number | null;
  good: Good | null;
  timer: NodeJS.Timeout | null;
  nextAt: number | null;
  controller: AbortController | null;
  inflight: Promise<RefreshOutcome> | null;
  lastSuccessAt: number | null;
  lastFailure: ListStatus['lastFailure'];
  failures: number;
}

/** Refuse an update that lost more than `maxShrinkPercent` of the entries of the last good version. */
export function shrinkRefused(previous: number, next: number, maxShrinkPercent: number): boolean {
  if (previous <= 0 || maxShrinkPercent >= 100) return false;
  return next < previous * (1 - maxShrinkPercent / 100);
}

export class ListRefresher {
  readonly #o: ListRefresherOptions;
  readonly #states = new Map<string, State>();
  readonly #now: () => number;
  readonly #random: () => number;
  #updates: Promise<unknown> = Promise.resolve();
  #started = false;
  #stopped = false;

  constructor(options: ListRefresherOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    const fallback = options.defaultRefreshMs ?? DEFAULT_REFRESH_MS;
    for (const src of options.sources) {
      if (this.#states.has(src.id)) throw new SafespotError('ERR_CONFIG_INVALID', `duplicate list id "${src.id}"`);
      const intervalMs = src.refreshMs ?? (src.type === 'url' ? fallback : null);
      this.#states.set(src.id, {
        src,
        intervalMs: intervalMs !== null && intervalMs > 0 ? intervalMs : null,
        good: null,
        timer: null,
        nextAt: null,
        controller: null,
        inflight: null,
        lastSuccessAt: null,
        lastFailure: null,
        failures: 0,
      });
    }
  }

  /**
   * Bodies to build the first policy from. A file list is read from its file (falling back to its
   * cached copy when the file fails); a URL list comes from its cached copy at once, or, with nothing
   * cached, is fetched now (startup 'wait') or reported missing (startup 'fail-closed').
   */
  async loadInitial(): Promise<InitialLoad> {
    const lists = new Map<string, InitialList>();
    const missing: Array<{ id: string; reason: RefreshFailureReason | null; message: string }> = [];
    await Promise.all(
      [...this.#states.values()].map(async (st) => {
        const id = st.src.id;
        const cached = await this.#readCache(id);
        if (cached) {
          st.good = goodOf(cached.meta);
          st.lastSuccessAt = cached.meta.checkedAt;
        }
        const useCacheNow = cached !== null && st.src.type === 'url';
        if (!useCacheNow && !(st.src.type === 'url' && this.#o.startup === 'fail-closed')) {
          const outcome = await this.#refresh(st, { initial: true });
          if (outcome.status === 'updated' && outcome.body) {
            lists.set(id, { id, body: outcome.body, from: 'source', entries: st.good!.entries, sha256: st.good!.sha256, fetchedAt: st.good!.fetchedAt });
            return;
          }
          if (outcome.status === 'not-modified' && cached) {
            // A file whose bytes equal the cached copy.
            lists.set(id, initialFromCache(cached.meta, cached.body, 'source'));
            return;
          }
          if (!cached) {
            missing.push({ id, reason: outcome.reason ?? 'other', message: outcome.message ?? 'no body' });
            return;
          }
        }
        if (cached) {
          lists.set(id, initialFromCache(cached.meta, cached.body, 'cache'));
          this.#safe(() => this.#o.onSuccess?.(id, { status: 'cached', entries: cached.meta.entries, at: cached.meta.checkedAt }));
          return;
        }
        missing.push({ id, reason: null, message: `list "${id}": nothing cached yet; fetching ${st.src.display} in the background` });
      }),
    );
    return { lists, missing };
  }

  /** Start the background refreshes (lists with nothing in force are tried at once). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    for (const st of this.#states.values()) {
      if (st.intervalMs === null) continue;
      // Nothing in force: try at once (a little jitter only). Otherwise when the copy in force is due.
      if (!st.good) this.#schedule(st, 0, Math.min(1000, st.intervalMs * (this.#o.jitter ?? 0.1)));
      else this.#schedule(st, Math.min(st.intervalMs, Math.max(0, st.good.checkedAt + st.intervalMs - this.#now())));
    }
  }

  /** Refresh now (SIGHUP, POST /reload): every list with a source to poll, or the given ids. Never rejects. */
  async refreshNow(ids?: readonly string[]): Promise<RefreshOutcome[]> {
    const states = ids ? ids.map((id) => this.#states.get(id)).filter((s): s is State => s !== undefined) : [...this.#states.values()];
    return Promise.all(
      states.map(async (st) => {
        if (this.#stopped) return { id: st.src.id, status: 'skipped' as const, message: 'stopped' };
        if (st.timer) clearTimeout(st.timer);
        st.timer = null;
        const { body: _body, ...outcome } = await this.#refresh(st, { initial: false });
        return outcome;
      }),
    );
  }

  /** Per-list state for /readyz, logs and tests. */
  status(): ListStatus[] {
    return [...this.#states.values()].map((st) => ({
      id: st.src.id,
      source: st.src.display,
      entries: st.good?.entries ?? null,
      sha256: st.good?.sha256 ?? null,
      lastSuccessAt: st.lastSuccessAt,
      lastFailure: st.lastFailure,
      consecutiveFailures: st.failures,
      nextRefreshAt: st.nextAt,
      intervalMs: st.intervalMs,
    }));
  }

  /** Clear every timer, abort in-flight fetches and wait for them to settle. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const pending: Array<Promise<unknown>> = [];
    for (const st of this.#states.values()) {
      if (st.timer) clearTimeout(st.timer);
      st.timer = null;
      st.nextAt = null;
      st.controller?.abort();
      if (st.inflight) pending.push(st.inflight);
    }
    await Promise.allSettled(pending);
    await this.#updates.catch(() => undefined);
  }

  /** Next refresh after `baseDelay` plus a random part of up to `jitterMs` (default: the jitter fraction of the interval). */
  #schedule(st: State, baseDelay: number, jitterMs?: number): void {
    if (this.#stopped || !this.#started || st.intervalMs === null) return;
    if (st.timer) clearTimeout(st.timer);
    const jitter = this.#random() * (jitterMs ?? (this.#o.jitter ?? 0.1) * st.intervalMs);
    const delay = Math.max(0, Math.round(baseDelay + jitter));
    st.nextAt = this.#now() + delay;
    st.timer = setTimeout(() => {
      st.timer = null;
      st.nextAt = null;
      void this.#refresh(st, { initial: false });
    }, delay);
    st.timer.unref();
  }

  #nextDelay(st: State): number {
    const interval = st.intervalMs ?? DEFAULT_REFRESH_MS;
    if (st.failures === 0) return interval;
    const base = this.#o.failureRetryMs ?? 60_000;
    return Math.min(interval, base * 2 ** Math.min(st.failures - 1, 20));
  }

  /** One refresh of one list; concurrent calls share the one in flight. Never rejects. */
  #refresh(st: State, how: { initial: boolean }): Promise<RefreshOutcome & { body?: Uint8Array }> {
    if (st.inflight) return st.inflight;
    const run = this.#refreshOnce(st, how).finally(() => {
      st.inflight = null;
      st.controller = null;
      if (!how.initial) this.#schedule(st, this.#nextDelay(st));
    });
    st.inflight = run;
    return run;
  }

  async #refreshOnce(st: State, how: { initial: boolean }): Promise<RefreshOutcome & { body?: Uint8Array }> {
    const { src } = st;
    const id = src.id;
    const controller = new AbortController();
    st.controller = controller;
    try {
      const validators: CachedValidators | undefined = st.good
        ? {
            ...(st.good.etag ? { etag: st.good.etag } : {}),
            ...(st.good.lastModified ? { lastModified: st.good.lastModified } : {}),
            ...(st.good.signedVersion !== undefined ? { signed: { version: st.good.signedVersion, sha256: st.good.sha256 } } : {}),
          }
        : undefined;
      const res = await this.#o.fetch(src, validators, controller.signal);
      if (this.#stopped) return { id, status: 'skipped', message: 'stopped' };
      const at = this.#now();
      if (res.status === 'not-modified') {
        if (!st.good) throw new ListSourceError(id, 'http', `${src.display}: "not modified" with no last good copy`);
        st.good.checkedAt = at;
        await this.#touchCache(id, { checkedAt: at });
        return this.#succeeded(st, 'not-modified', at);
      }
      if (st.good && res.sha256 === st.good.sha256) {
        // Same bytes (an origin without validators, or a file): nothing to compile.
        st.good.checkedAt = at;
        if (res.etag !== undefined) st.good.etag = res.etag;
        if (res.lastModified !== undefined) st.good.lastModified = res.lastModified;
        if (res.signedVersion !== undefined) st.good.signedVersion = res.signedVersion;
        await this.#touchCache(id, {
          checkedAt: at,
          ...(res.etag ? { etag: res.etag } : {}),
          ...(res.lastModified ? { lastModified: res.lastModified } : {}),
          ...(res.signedVersion !== undefined ? { signedVersion: res.signedVersion } : {}),
        });
        return this.#succeeded(st, 'not-modified', at);
      }
      let entries: number;
      try {
        entries = await this.#o.countEntries(res.body, id);
      } catch (err) {
        throw new ListSourceError(id, 'invalid', `${src.display} does not parse: ${(err as Error).message}`);
      }
      if (!Number.isFinite(entries) || entries < 0) throw new ListSourceError(id, 'invalid', `${src.display}: the parse gave no entry count`);
      if (st.good && shrinkRefused(st.good.entries, entries, src.maxShrinkPercent)) {
        throw new ListSourceError(
          id,
          'shrink',
          `${src.display} has ${entries} entries, ${st.good.entries} in the last good version: more than the ${src.maxShrinkPercent}% shrink allowed (maxShrinkPercent)`,
        );
      }
      const info: UpdateInfo = { entries, sha256: res.sha256, fetchedAt: at };
      if (!how.initial) await this.#applySerially(id, res.body, info);
      const good: Good = {
        sha256: res.sha256,
        entries,
        fetchedAt: at,
        checkedAt: at,
        ...(res.etag !== undefined ? { etag: res.etag } : {}),
        ...(res.lastModified !== undefined ? { lastModified: res.lastModified } : {}),
        ...(res.signedVersion !== undefined ? { signedVersion: res.signedVersion } : {}),
      };
      st.good = good;
      try {
        await this.#o.cache.write(id, res.body, {
          entries,
          fetchedAt: at,
          etag: res.etag,
          lastModified: res.lastModified,
          ...(res.signedVersion !== undefined ? { signedVersion: res.signedVersion } : {}),
          source: src.display,
        });
      } catch (err) {
        this.#warn(`list "${id}": the update is in force but its last-good copy could not be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      return { ...this.#succeeded(st, 'updated', at), body: res.body };
    } catch (err) {
      if (this.#stopped) return { id, status: 'skipped', message: 'stopped' };
      const reason: RefreshFailureReason = err instanceof ListSourceError ? err.reason : reasonOf(err);
      const message = err instanceof ListSourceError ? err.message : `list "${id}": ${(err as Error)?.message ?? String(err)}`;
      st.failures++;
      st.lastFailure = { at: this.#now(), reason, message };
      this.#safe(() => this.#o.onFailure?.(id, reason, message));
      return { id, status: 'failed', reason, message };
    }
  }

  #succeeded(st: State, status: 'updated' | 'not-modified', at: number): RefreshOutcome {
    st.failures = 0;
    st.lastSuccessAt = at;
    const entries = st.good?.entries ?? 0;
    this.#safe(() => this.#o.onSuccess?.(st.src.id, { status, entries, at }));
    return { id: st.src.id, status };
  }

  /** onUpdate one at a time, in arrival order; a throw refuses this update only. */
  #applySerially(id: string, body: Uint8Array, info: UpdateInfo): Promise<void> {
    const run = this.#updates.then(() => {
      if (this.#stopped) throw new ListSourceError(id, 'other', 'stopping');
      return this.#o.onUpdate(id, body, info);
    });
    this.#updates = run.catch(() => undefined);
    return run;
  }

  async #readCache(id: string): Promise<{ meta: CacheMeta; body: Uint8Array } | null> {
    try {
      return await this.#o.cache.read(id);
    } catch (err) {
      this.#warn(`list "${id}": the last-good cache cannot be read (${(err as Error).message})`);
      return null;
    }
  }

  async #touchCache(id: string, update: { checkedAt: number; etag?: string; lastModified?: string; signedVersion?: number }): Promise<void> {
    try {
      await this.#o.cache.touch(id, update);
    } catch (err) {
      this.#warn(`list "${id}": the last-good metadata could not be updated (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }

  #safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#warn(`a list refresh callback threw: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  #warn(message: string): void {
    try {
      this.#o.warn?.(message);
    } catch {
      // A broken logger must not break refreshes.
    }
  }
}

/**
 * Reason of an error thrown by onUpdate: its own `reason` when it carries a known one; 'invalid' for
 * a list or bundle that does not compile (ERR_LIST_INVALID, ERR_BUNDLE_CORRUPT); 'other' otherwise.
 */
function reasonOf(err: unknown): RefreshFailureReason {
  const r = (err as { reason?: unknown })?.reason;
  if (typeof r === 'string' && (REFRESH_FAILURE_REASONS as readonly string[]).includes(r)) return r as RefreshFailureReason;
  return err instanceof SafespotError && (err.code === 'ERR_LIST_INVALID' || err.code === 'ERR_BUNDLE_CORRUPT') ? 'invalid' : 'other';
}

function goodOf(meta: CacheMeta): Good {
  return {
    sha256: meta.sha256,
    entries: meta.entries,
    fetchedAt: meta.fetchedAt,
    checkedAt: meta.checkedAt,
    ...(meta.etag !== undefined ? { etag: meta.etag } : {}),
    ...(meta.lastModified !== undefined ? { lastModified: meta.lastModified } : {}),
    ...(meta.signedVersion !== undefined ? { signedVersion: meta.signedVersion } : {}),
  };
}

function initialFromCache(meta: CacheMeta, body: Uint8Array, from: 'source' | 'cache'): InitialList {
  return { id: meta.id, body, from, entries: meta.entries, sha256: meta.sha256, fetchedAt: meta.fetchedAt };
}
