/**
 * `serve` with `workers` > 1 (or `auto` on a machine with more than one core): the primary of a
 * Node cluster. docs/workers.md tells the whole story; in short:
 *
 * - Workers (serve/worker.ts) own the proxy listeners. Node's cluster shares each listening socket:
 *   on Linux the primary accepts and hands connections to the workers round-robin, so port 0 is one
 *   port for all of them.
 * - The primary owns everything that must exist once: the journal (its single writer; workers send
 *   their events in batches), the PolicyManager (lists, refresh, compile, last good bundle; each new
 *   policy goes to every worker as bundle bytes, a new worker gets the current one at start), the
 *   admin listener (/metrics merges every worker's registry with the primary's, serve/cluster-metrics.ts),
 *   the self-test (through the forward listener, so through a worker) and the signals.
 * - The guests' DNS listener (listeners.dns) runs in the primary too: the primary holds the compiled
 *   policy already (the PolicyManager's, the one the workers are sent), so DNS costs no second copy
 *   of the lists, a reload reaches it with the same swap, and its verdicts go straight to the
 *   journal and to this registry (merged into /metrics). docs/dns.md says why not a worker.
 *
 * This file composes those parts; the worker processes themselves (fork, start handshake, restarts,
 * drain) are serve/worker-pool.ts, and the /metrics collector is ClusterScrape in
 * serve/cluster-metrics.ts.
 */
import { availableParallelism } from 'node:os';
import type { Journal } from '../../audit/journal.js';
import { combineObservers, metricsObserver, type Metrics } from '../../audit/metrics.js';
import { journalObserver } from '../../audit/journal.js';
import type { DnsListenerHandle } from '../../proxy/dns/listener.js';
import { encodeBundle } from '../../policy/bundle.js';
import type { Policy, PolicyHolder } from '../../policy/policy.js';
import type { AdminHandle } from '../admin/listener.js';
import { ClusterScrape, type MetricJson } from './cluster-metrics.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { reloadConfigFile, type ReloadTrigger } from './reload.js';
import { SelftestTimer, startOnlyChanges } from './reload-scope.js';
import { PolicyManager, type ReloadResult } from '../lists/policy-manager.js';
import { startApplianceAdmin } from '../admin/start.js';
import { runSelftest, startEvidence } from './serve.js';
import { dnsProbeTarget, startDnsFromConfig } from './dns.js';
import type { Addresses } from './worker-ipc.js';
import { WorkerPool } from './worker-pool.js';

/** How long /metrics waits for a worker's registry before using the last one it sent. */
const METRICS_WAIT_MS = 2_000;
/** How long a reload waits for every worker to acknowledge the new policy. */
const RELOAD_WAIT_MS = 10_000;

/** Worker processes for a config: `auto` is one per core (os.availableParallelism()). */
export function workerCount(c: Readonly<Config>): number {
  return c.workers === 'auto' ? Math.max(1, availableParallelism()) : c.workers;
}

export interface ClusterAppliance {
  /** The primary's policy (what the workers are sent). */
  readonly holder: PolicyHolder;
  /** The primary's own registry (policy, self-test, restarts); /metrics merges the workers'. */
  readonly metrics: Metrics;
  readonly journal: Journal;
  readonly admin: AdminHandle | null;
  /** The DNS listener (listeners.dns), in this process, or null. */
  readonly dns: DnsListenerHandle | null;
  /** Bound addresses of the listeners (the workers share them). */
  readonly proxy: { addresses(): Addresses };
  /** Pids of the workers now alive. */
  workers(): number[];
  config(): Readonly<Config>;
  reload(next?: Readonly<Config>): Promise<ReloadResult>;
  reloadFromFile(trigger?: ReloadTrigger): Promise<ReloadResult>;
  selftest(): Promise<void>;
  /** Stop every worker (each drains, bounded, and sends its last journal events), then flush the journal. */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startCluster(initial: Readonly<Config>, log: Logger, opts: { configPath?: string } = {}): Promise<ClusterAppliance> {
  let config = initial;
  const count = workerCount(config);
  // The workers load the CA again for their edge, and get the same metric labels.
  const { interception, labels, metrics, journal, siteTag } = await startEvidence(config, log, opts.configPath);

  let bundle: { bytes: Uint8Array; version: string } | null = null;
  const scrape = new ClusterScrape(metrics.registry, (id) => {
    const targets = pool.serving().filter((s) => s.worker.isConnected());
    for (const s of targets) pool.send(s, { type: 'safespot:metrics', id });
    return targets.map((s) => s.worker.id);
  }, METRICS_WAIT_MS);
  const pool = new WorkerPool({
    log,
    metrics,
    initialListeners: initial.listeners,
    listeners: () => config.listeners,
    init: (s) => ({ type: 'safespot:init', config: { ...config, listeners: s.listeners }, workers: count, ownEndpoints, bundle: bundle?.bytes ?? null, labels }),
    onJournal(s, m) {
      for (const e of m.events) {
        try {
          journal.record(e);
        } catch (err) {
          log.warn('journal event from a worker refused', { worker: s.pid, error: String(err) });
        }
      }
      if (m.dropped > 0) {
        // Counted in a journal_loss row and the metrics, so the report shows it (issue 22, finding 8).
        journal.noteLost(m.dropped, 'worker_queue');
        log.warn('a worker dropped journal events (its queue was full)', { worker: s.pid, dropped: m.dropped });
      }
    },
    onMetrics: (s, m) => scrape.answer(s.worker.id, m.id, m.metrics as MetricJson[]),
    onGone: (s) => scrape.gone(s.worker.id),
  });
  const onInstall = (policy: Policy): void => {
    bundle = { bytes: encodeBundle(policy), version: policy.version };
    pool.broadcast({ type: 'safespot:policy', bundle: bundle.bytes, version: bundle.version });
  };
  const manager = await PolicyManager.start(config, { metrics, journal, log, onInstall }).catch((err: unknown) => {
    journal.close();
    throw err;
  });
  const holder = manager.holder;

  // --- admin ---------------------------------------------------------------------------------------
  const { admin, ownEndpoints } = await startApplianceAdmin({
    config: () => config,
    journal,
    registry: scrape.exposition(),
    reloadFromFile,
    forwardPort: () => pool.bound?.forward?.port,
    routes: interception.routes,
    isReady: () => {
      const reasons: string[] = [];
      const current = holder.current;
      if (!current) reasons.push(`no valid policy loaded${manager.lastError ? ` (${manager.lastError})` : ''}`);
      const serving = pool.serving();
      if (serving.length === 0) reasons.push('no worker is serving');
      for (const s of serving) {
        if (current && s.policy !== current.version) reasons.push(`worker ${s.pid} does not hold policy ${current.version} yet`);
      }
      return { ready: reasons.length === 0, reasons };
    },
    cleanup: async () => {
      await manager.stop();
      journal.close();
    },
  });

  // --- workers ---------------------------------------------------------------------------------------
  try {
    await pool.start(count);
  } catch (err) {
    await admin?.close();
    await manager.stop();
    journal.close();
    throw err;
  }

  // --- DNS: here, on the primary's policy (the hooks read the holder on every question) ---------------
  const dns = await startDnsFromConfig(config, holder, combineObservers(metricsObserver(metrics), journalObserver(journal, { siteTag }))).catch(async (err: unknown) => {
    await pool.stop(0);
    await admin?.close();
    await manager.stop();
    journal.close();
    throw err;
  });

  // --- self-test, reload, close ----------------------------------------------------------------------
  const selftest = (): Promise<void> => runSelftest({ config, holder, listeners: { ...pool.bound, dns: dnsProbeTarget(config, dns) }, metrics, journal, log });
  await selftest();
  const timer = new SelftestTimer(() => void selftest(), config.selftest.interval);

  /** Wait until every serving worker holds `version` (bounded); the pids that do not. */
  async function workersAt(version: string | null): Promise<number[]> {
    const deadline = Date.now() + RELOAD_WAIT_MS;
    for (;;) {
      const behind = pool.serving().filter((s) => s.policy !== version).map((s) => s.pid);
      if (behind.length === 0 || Date.now() > deadline) return behind;
      await sleep(20);
    }
  }

  async function reloadFromFile(trigger: ReloadTrigger = 'internal'): Promise<ReloadResult> {
    return reloadConfigFile(opts.configPath, reload, log, { journal, trigger });
  }

  async function reload(next?: Readonly<Config>): Promise<ReloadResult> {
    let result = next ? await manager.reconfigure(next) : await manager.refreshNow();
    if (result.ok && next) {
      const notApplied = startOnlyChanges(initial, next); // against what started: those are what is in force
      if (notApplied.length > 0) {
        log.warn('reloaded, but these settings are read at start only and take a restart', { notApplied });
        result = { ...result, notApplied };
      }
      timer.reschedule(next.selftest.interval);
      config = next;
      // Listener addresses stay as started (as with one process).
      pool.broadcast({ type: 'safespot:config', config: { ...next, listeners: initial.listeners } });
    }
    const behind = await workersAt(holder.current?.version ?? null);
    if (behind.length > 0) log.error('the policy has not reached every worker', { version: holder.current?.version ?? null, workers: behind });
    if (result.ok) log.info('reloaded', { version: result.version ?? null, workers: pool.all().length });
    else log.error('reload refused; the previous policy keeps serving', { error: result.error ?? null });
    await selftest();
    return result;
  }

  return {
    holder,
    metrics,
    journal,
    admin,
    dns,
    proxy: { addresses: () => ({ ...(pool.bound ?? {}) }) },
    workers: () => pool.all().map((s) => s.pid),
    config: () => config,
    reload,
    reloadFromFile,
    selftest,
    async close() {
      timer.stop();
      await pool.stop(config.limits.drainTimeout);
      await dns?.close();
      await admin?.close();
      await manager.stop();
      journal.close();
    },
  };
}
