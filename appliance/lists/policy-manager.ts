/**
 * The policy's life cycle inside `serve`: lists fetched and verified by the refresher (files and
 * https:// sources alike), compiled off the event loop, swapped atomically into the PolicyHolder the
 * proxy decides with, and kept on disk as the last good bundle.
 *
 * Start-up: the last good bundle (when it was built from the same list ids) is enforced at once, so
 * filtering is active within milliseconds; the lists' last good copies (or a first download) are then
 * compiled in the worker and swapped in. With neither, the appliance fails closed until every list
 * has arrived: a policy never silently misses a list (a hotline list least of all). The bundle keeps
 * the digest of the input it was compiled from (policy/compile-digest.ts): when the lists and options
 * at start (or a reload) give the digest of the policy in force, nothing is compiled and no compile
 * worker is started (issue 23: a compile of a million entries is the peak of a small box's memory).
 *
 * Bundle mode (config `bundle:`, lists/bundle-source.ts): the refresher keeps one source, the compiled
 * bundle, fresh; a verified new bundle is decoded and swapped in as it is (no compile). Its last good
 * copy is the list cache's `bundle` entry; with none, start-up fails closed until it arrives.
 *
 * Every outcome is evidence: refresh failures and last-success times go to the metrics, loads,
 * refreshes, failures and active/inactive periods to the journal; and each list whose version in
 * force changes gets an `admin` row, action `list_swap`, with the SHA-256 of its body and its
 * entries (issue 21, point 7): an auditor can tell which version of each list was enforced when,
 * without any line of it.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Journal } from '../../audit/journal.js';
import type { Metrics } from '../../audit/metrics.js';
import { decodeBundleSections, encodeBundle } from '../../policy/bundle.js';
import { compileInputDigest, digestOf, digestSection } from '../../policy/compile-digest.js';
import { SafespotError } from '../../policy/errors.js';
import { PolicyHolder, type Policy } from '../../policy/policy.js';
import { CompileWorker } from './compile-worker.js';
import type { Config } from '../config.js';
import { ListCache } from './cache.js';
import { fetchOptionsFromConfig, fetchSource, prepareSources } from './source.js';
import { compileInputFromBodies } from './load.js';
import type { Logger } from '../log.js';
import { ListRefresher } from './refresh.js';
import { BUNDLE_LIST_ID, bundleEntries, loadBundle, prepareBundleSource } from './bundle-source.js';

export const BUNDLE_FILE = 'last-good.bundle';

export interface ManagerDeps {
  readonly metrics: Metrics;
  readonly journal: Journal;
  readonly log: Logger;
  /** Called after each policy is swapped in (workers > 1: the primary sends it to every worker). */
  readonly onInstall?: (policy: Policy) => void;
}

/** Entries in a list body, by its kind, counted in the compile worker (rejects when it does not parse: the refresher refuses it). */
function countInWorker(config: Readonly<Config>, compiler: CompileWorker, body: Uint8Array, id: string): Promise<number> {
  const list = config.lists.find((l) => l.id === id);
  if (!list) return Promise.reject(new SafespotError('ERR_INTERNAL', `no list "${id}"`));
  return compiler.count({ kind: list.kind, body, listId: id, pdqMinQuality: config.images.pdqMinQuality });
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly version?: string;
  readonly error?: string;
  /** Changed settings that are read only at start (appliance/serve/reload-scope.ts): in force after a restart. */
  readonly notApplied?: readonly string[];
}

const errorText = (err: unknown): string => (err instanceof SafespotError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err));

/** Write the bundle atomically: temp file, then rename over the old one. */
function saveBundle(dir: string, bytes: Uint8Array): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${BUNDLE_FILE}.tmp-${process.pid}`);
  writeFileSync(tmp, bytes, { mode: 0o600 });
  renameSync(tmp, join(dir, BUNDLE_FILE));
}

/** One configuration's lists: its refresher and the bodies in force. */
class ListSet {
  readonly bodies = new Map<string, Uint8Array>();
  /** SHA-256 (hex) of each body in `bodies`, as the refresher verified it. */
  readonly digests = new Map<string, string>();
  readonly refresher: ListRefresher;
  readonly #dispatcher: { close(): Promise<void> };

  constructor(
    readonly config: Readonly<Config>,
    onUpdate: (set: ListSet, id: string, body: Uint8Array, sha256: string) => Promise<void>,
    deps: ManagerDeps & { readonly compiler: CompileWorker },
  ) {
    const { metrics, journal, log } = deps;
    const sources = config.bundle ? [prepareBundleSource(config.bundle)] : prepareSources(config.lists);
    const fetchOpts = fetchOptionsFromConfig(config.sources);
    this.#dispatcher = fetchOpts.dispatcher;
    const category = (id: string): string | null => config.lists.find((l) => l.id === id)?.category ?? null;
    this.refresher = new ListRefresher({
      sources,
      fetch: (src, cached, signal) => fetchSource(src, { ...fetchOpts, signal }, cached),
      cache: ListCache.forStateDir(config.state.dir, { warn: (m) => log.warn(m) }),
      // Bundle mode: decodeBundle is the parse (checksum, length, sections); a refusal keeps the last good bundle.
      // Lists: parsed in the compile worker, whose garbage goes with it (lists/compile-worker.ts).
      countEntries: (body, id) => (config.bundle ? bundleEntries(loadBundle(body)) : countInWorker(config, deps.compiler, body, id)),
      startup: config.sources.startup,
      onUpdate: (id, body, info) => onUpdate(this, id, body, info.sha256),
      onFailure: (id, reason, message) => {
        metrics.policyRefreshFailures.inc(id, reason);
        journal.record({ kind: 'list_failure', list: id, category: category(id), detail: `${reason}: ${message}`.slice(0, 300) });
        log.warn('list refresh refused; the last good version stays in force', { list: id, reason, error: message });
      },
      onSuccess: (id, info) => {
        metrics.policyLastRefresh.set(id, info.at / 1000);
        metrics.policyEntries.set(id, info.entries);
        if (info.status !== 'cached') {
          journal.record({ kind: 'list_refresh', list: id, category: category(id), detail: `${info.status}: ${info.entries} entries` });
        }
      },
      warn: (m) => log.warn(m),
    });
    for (const st of this.refresher.status()) metrics.policyRefreshInterval.set(st.id, (st.intervalMs ?? 0) / 1000);
  }

  async stop(): Promise<void> {
    await this.refresher.stop();
    await this.#dispatcher.close().catch(() => undefined);
  }
}

export class PolicyManager {
  readonly holder = new PolicyHolder();
  /** Why no policy is in force (for /readyz), or null. */
  lastError: string | null = null;
  #set: ListSet | null = null;
  readonly #compiler: CompileWorker;
  readonly #deps: ManagerDeps;
  /** Digest of the compile input of the policy in force (null: unknown, e.g. bundle mode or an old bundle). */
  #digest: string | null = null;
  /** Compiles not run because the input was that of the policy in force (start from the last good bundle, reload). */
  compilesSkipped = 0;
  /** SHA-256 of each list body in force, by list id (journaled as `list_swap` when it changes). */
  readonly #inForce = new Map<string, string>();

  private constructor(deps: ManagerDeps) {
    this.#deps = deps;
    this.#compiler = new CompileWorker({ onStart: () => deps.log.debug('compile worker started') });
  }

  /** Compile worker threads started so far (none on a start from an unchanged last good bundle). */
  get compileWorkerStarts(): number {
    return this.#compiler.starts;
  }

  /** Load the first policy (see the header) and start refreshing. Throws only on a config problem. */
  static async start(config: Readonly<Config>, deps: ManagerDeps): Promise<PolicyManager> {
    const m = new PolicyManager(deps);
    m.#loadSavedBundle(config);
    const set = m.#newSet(config);
    m.#set = set;
    const outcome = await m.#initial(set);
    if (!outcome.ok && !m.holder.current) m.#inactive(outcome.error ?? 'no policy');
    set.refresher.start();
    return m;
  }

  get config(): Readonly<Config> | null {
    return this.#set?.config ?? null;
  }

  /** SIGHUP / POST /reload with the same config: refresh every list now. */
  async refreshNow(): Promise<ReloadResult> {
    const set = this.#set;
    if (!set) return { ok: false, error: 'not started' };
    const outcomes = await set.refresher.refreshNow();
    const failed = outcomes.filter((o) => o.status === 'failed');
    if (failed.length) return { ok: false, error: failed.map((f) => `${f.id}: ${f.reason ?? 'failed'}`).join('; ') };
    return { ok: true, ...(this.holder.current ? { version: this.holder.current.version } : {}) };
  }

  /**
   * A new configuration: its lists are loaded and compiled beside the running policy; only when that
   * succeeded does it replace the running one. Otherwise the old policy and refresher carry on.
   */
  async reconfigure(next: Readonly<Config>): Promise<ReloadResult> {
    let set: ListSet;
    try {
      set = this.#newSet(next);
    } catch (err) {
      return { ok: false, error: errorText(err) };
    }
    const old = this.#set;
    const outcome = await this.#initial(set);
    if (!outcome.ok) {
      await set.stop();
      return outcome;
    }
    this.#set = set;
    await old?.stop();
    set.refresher.start();
    // A reload also means "fetch the lists now": the start above served their last good copies.
    // A failed refresh is reported (metrics, journal) and leaves those copies in force.
    await set.refresher.refreshNow();
    return { ok: true, ...(this.holder.current ? { version: this.holder.current.version } : {}) };
  }

  async stop(): Promise<void> {
    await this.#set?.stop();
    await this.#compiler.close();
  }

  #newSet(config: Readonly<Config>): ListSet {
    return new ListSet(config, (set, id, body, sha256) => this.#onUpdate(set, id, body, sha256), { ...this.#deps, compiler: this.#compiler });
  }

  /** Enforce the last good bundle at once when it was built from the same lists. */
  #loadSavedBundle(config: Readonly<Config>): void {
    // Bundle mode: the last good copy is the list cache's, byte for byte as signed (#initial loads it).
    if (config.bundle) return;
    const path = join(config.state.dir, BUNDLE_FILE);
    if (!existsSync(path)) return;
    try {
      const { policy, sections } = decodeBundleSections(readFileSync(path));
      const want = config.lists.map((l) => l.id).sort().join('\n');
      const have = policy.lists.map((l) => l.id).sort().join('\n');
      if (want !== have) {
        this.#deps.log.info('last good bundle is for other lists; not used', { path });
        return;
      }
      this.#install(policy, 'last good bundle', null, digestOf(sections));
    } catch (err) {
      this.#deps.log.warn('the last good bundle is unusable', { path, error: errorText(err) });
    }
  }

  /** Load every list of `set` (cache or source), compile and install. */
  async #initial(set: ListSet): Promise<ReloadResult> {
    const { log } = this.#deps;
    const initial = await set.refresher.loadInitial();
    for (const [id, l] of initial.lists) {
      set.bodies.set(id, l.body);
      set.digests.set(id, l.sha256);
    }
    if (initial.missing.length) {
      const error = `list(s) not available yet: ${initial.missing.map((m) => `${m.id}${m.reason ? ` (${m.reason})` : ''}`).join(', ')}`;
      log.error('policy incomplete', { error, missing: initial.missing.map((m) => ({ list: m.id, reason: m.reason, message: m.message })) });
      this.lastError = error;
      return { ok: false, error };
    }
    if (set.config.bundle) return this.#installBundle(set, 'bundle');
    return this.#compile(set, 'compiled');
  }

  async #compile(set: ListSet, how: string): Promise<ReloadResult> {
    const { log, journal } = this.#deps;
    try {
      const input = compileInputFromBodies(set.config, set.bodies);
      const digest = compileInputDigest(input);
      const current = this.holder.current;
      if (current && digest === this.#digest) {
        this.compilesSkipped++;
        log.info('lists and options unchanged: the policy in force is theirs, not compiled again', { version: current.version, how });
        this.#noteSwaps(set);
        return { ok: true, version: current.version };
      }
      const policy = await this.#compiler.compile(input);
      for (const l of policy.parts.meta.lists) {
        if (l.report.malformed > 0) log.warn('list has malformed lines', { list: l.id, malformed: l.report.malformed, lines: l.report.malformedLines });
      }
      this.#install(policy, how, set.config.state.dir, digest);
      this.#noteSwaps(set);
      return { ok: true, version: policy.version };
    } catch (err) {
      const error = errorText(err);
      this.lastError = error;
      log.error('policy could not be compiled; the previous one (if any) keeps serving', { error, details: err instanceof SafespotError ? err.details : [] });
      journal.record({ kind: 'list_failure', detail: error.slice(0, 300) });
      return { ok: false, error };
    }
  }

  /** Bundle mode: decode the bundle in `set.bodies` and swap it in as it is. */
  #installBundle(set: ListSet, how: string): ReloadResult {
    const body = set.bodies.get(BUNDLE_LIST_ID);
    try {
      if (!body) throw new SafespotError('ERR_INTERNAL', 'no policy bundle');
      const policy = loadBundle(body);
      this.#install(policy, how, set.config.state.dir, null);
      this.#noteSwaps(set);
      return { ok: true, version: policy.version };
    } catch (err) {
      const error = errorText(err);
      this.lastError = error;
      this.#deps.log.error('policy bundle refused; the previous policy (if any) keeps serving', { error });
      return { ok: false, error };
    }
  }

  /** A verified new body from the refresher: compile with it; a throw refuses the update. */
  async #onUpdate(set: ListSet, id: string, body: Uint8Array, sha256: string): Promise<void> {
    const previous = set.bodies.get(id);
    const previousDigest = set.digests.get(id);
    set.bodies.set(id, body);
    set.digests.set(id, sha256);
    const restore = (): void => {
      if (previous) set.bodies.set(id, previous);
      else set.bodies.delete(id);
      if (previousDigest !== undefined) set.digests.set(id, previousDigest);
      else set.digests.delete(id);
    };
    if (set !== this.#set) return; // a set still loading: #initial compiles it
    if (set.config.bundle) {
      const outcome = this.#installBundle(set, `refreshed ${id}`);
      if (!outcome.ok) {
        restore();
        throw new SafespotError('ERR_BUNDLE_CORRUPT', outcome.error ?? 'bundle refused');
      }
      return;
    }
    if (set.config.lists.some((l) => !set.bodies.has(l.id))) return; // still waiting for others
    const outcome = await this.#compile(set, `refreshed ${id}`);
    if (!outcome.ok) {
      restore();
      throw new SafespotError('ERR_LIST_INVALID', outcome.error ?? 'compile failed');
    }
  }

  /** Swap `policy` in; `digest` is that of its compile input (kept in the saved bundle), null when unknown. */
  #install(policy: Policy, how: string, saveDir: string | null, digest: string | null): void {
    const { metrics, journal, log } = this.#deps;
    const wasActive = this.holder.current !== null;
    this.holder.swap(policy);
    this.#digest = digest;
    this.lastError = null;
    for (const l of policy.lists) metrics.policyEntries.set(l.id, l.entries);
    metrics.policyInfo.set(policy.version);
    metrics.filteringActive.set(true);
    journal.record({ kind: 'list_load', detail: `policy ${policy.version} (${how}): ${policy.lists.map((l) => `${l.id}=${l.entries}`).join(' ')}`.slice(0, 300) });
    if (!wasActive) journal.record({ kind: 'filtering_active', detail: `policy ${policy.version} (${how})` });
    log.info('policy in force', { version: policy.version, how });
    this.#deps.onInstall?.(policy);
    if (saveDir !== null) {
      try {
        saveBundle(saveDir, encodeBundle(policy, digest === null ? [] : [digestSection(digest)]));
      } catch (err) {
        log.warn('could not save the last good policy bundle', { error: errorText(err) });
      }
    }
  }

  /** `set`'s lists are in force now: an admin `list_swap` row for each whose body differs from before. */
  #noteSwaps(set: ListSet): void {
    const { journal } = this.#deps;
    const entries = (id: string): number | undefined => this.holder.current?.lists.find((l) => l.id === id)?.entries;
    for (const [id, sha] of set.digests) {
      if (this.#inForce.get(id) === sha) continue;
      const n = entries(id);
      journal.record({
        kind: 'admin',
        action: 'list_swap',
        list: id,
        category: set.config.lists.find((l) => l.id === id)?.category ?? null,
        detail: `sha256:${sha}${n === undefined ? '' : `; ${n} entries`}${this.#inForce.has(id) ? '' : '; first in force since start'}`,
      });
      this.#inForce.set(id, sha);
    }
    for (const id of [...this.#inForce.keys()]) {
      if (set.digests.has(id)) continue;
      journal.record({ kind: 'admin', action: 'list_swap', list: id, detail: 'removed from the configuration' });
      this.#inForce.delete(id);
    }
  }

  #inactive(reason: string): void {
    this.#deps.metrics.filteringActive.set(false);
    this.#deps.journal.record({ kind: 'filtering_inactive', detail: `no valid policy: failing closed (${reason})`.slice(0, 300) });
  }
}
