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
 *   the self-test (through the forward listener, so through a worker), the signals, and restarting
 *   a worker that died (at most MAX_RESTARTS per RESTART_WINDOW_MS; logged, counted in
 *   safespot_worker_restarts_total).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Journal } from '../../audit/journal.js';
import type { Metrics } from '../../audit/metrics.js';
import { encodeBundle } from '../../policy/bundle.js';
import { SafespotError, type ErrorCode } from '../../policy/errors.js';
import type { Policy, PolicyHolder } from '../../policy/policy.js';
import type { AdminHandle } from '../admin/listener.js';
import { WorkerMetrics, type MetricJson } from './cluster-metrics.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { reloadConfigFile } from './reload.js';
import { SelftestTimer, startOnlyChanges } from './reload-scope.js';
import { PolicyManager, type ReloadResult } from '../lists/policy-manager.js';
import { startApplianceAdmin } from '../admin/start.js';
import { runSelftest, startEvidence } from './serve.js';
import { isFromWorker, type Addresses, type FromWorker, type ToWorker } from './worker-ipc.js';

/** Restarts allowed in any window of RESTART_WINDOW_MS; past that, the next one waits. */
export const MAX_RESTARTS = 5;
export const RESTART_WINDOW_MS = 60_000;
/** How long /metrics waits for a worker's registry before using the last one it sent. */
const METRICS_WAIT_MS = 2_000;
/** How long a reload waits for every worker to acknowledge the new policy. */
const RELOAD_WAIT_MS = 10_000;
/** Past the drain, how long the primary waits for workers before killing them. */
const STOP_GRACE_MS = 5_000;

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
  /** Bound addresses of the listeners (the workers share them). */
  readonly proxy: { addresses(): Addresses };
  /** Pids of the workers now alive. */
  workers(): number[];
  config(): Readonly<Config>;
  reload(next?: Readonly<Config>): Promise<ReloadResult>;
  reloadFromFile(): Promise<ReloadResult>;
  selftest(): Promise<void>;
  /** Stop every worker (each drains, bounded, and sends its last journal events), then flush the journal. */
  close(): Promise<void>;
}

interface WorkerState {
  readonly worker: Worker;
  readonly pid: number;
  /** Said hello: messages reach it from now on (init was sent). */
  hello: boolean;
  /** The listeners it is told to bind. */
  readonly listeners: Config['listeners'];
  listening: boolean;
  /** Policy version the worker holds (acknowledged), or null. */
  policy: string | null;
  /** Settles when the worker listens (or fails to). */
  readonly ready: Promise<void>;
  settle(err?: Error): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The configured listeners with the real ports put in for port 0 (a worker started when none listens). */
function withPorts(listeners: Config['listeners'], bound: Addresses): Config['listeners'] {
  const out: Record<string, unknown> = { ...listeners };
  for (const [name, e] of Object.entries(listeners)) {
    const real = bound[name as keyof Addresses];
    if (e && real && e.port === 0) out[name] = { ...e, port: real.port };
  }
  return out as Config['listeners'];
}

export async function startCluster(initial: Readonly<Config>, log: Logger, opts: { configPath?: string } = {}): Promise<ClusterAppliance> {
  let config = initial;
  const count = workerCount(config);
  // The workers load the CA again for their edge, and get the same metric labels.
  const { interception, labels, metrics, journal } = await startEvidence(config, log);

  const states = new Map<number, WorkerState>();
  let bundle: { bytes: Uint8Array; version: string } | null = null;
  const sendTo = (s: WorkerState, m: ToWorker): void => {
    // Before its hello a worker would drop the message; init carries the state of that moment.
    if (!s.hello || !s.worker.isConnected()) return;
    try {
      s.worker.send(m);
    } catch (err) {
      log.warn('could not reach a worker', { worker: s.pid, error: String(err) });
    }
  };
  const broadcast = (m: ToWorker): void => {
    for (const s of states.values()) sendTo(s, m);
  };
  const onInstall = (policy: Policy): void => {
    bundle = { bytes: encodeBundle(policy), version: policy.version };
    broadcast({ type: 'safespot:policy', bundle: bundle.bytes, version: bundle.version });
  };
  const manager = await PolicyManager.start(config, { metrics, journal, log, onInstall }).catch((err: unknown) => {
    journal.close();
    throw err;
  });
  const holder = manager.holder;

  // --- /metrics: the primary's registry merged with every worker's -------------------------------
  const workerMetrics = new WorkerMetrics();
  const pending = new Map<number, { waiting: Set<number>; done: () => void }>();
  let nextRequest = 0;
  const collect = (): Promise<void> => {
    const targets = [...states.values()].filter((s) => s.listening && s.worker.isConnected());
    if (targets.length === 0) return Promise.resolve();
    const id = nextRequest++;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        pending.delete(id);
        resolve();
      };
      const timer = setTimeout(done, METRICS_WAIT_MS);
      pending.set(id, { waiting: new Set(targets.map((s) => s.worker.id)), done });
      for (const s of targets) sendTo(s, { type: 'safespot:metrics', id });
    });
  };
  const exposition = {
    contentType: metrics.registry.contentType,
    async metrics(): Promise<string> {
      await collect();
      return (await workerMetrics.merge(metrics.registry)).metrics();
    },
  };

  // --- admin ---------------------------------------------------------------------------------------
  let bound: Addresses | null = null;
  const { admin, ownEndpoints } = await startApplianceAdmin({
    config: () => config,
    registry: exposition,
    reloadFromFile,
    forwardPort: () => bound?.forward?.port,
    routes: interception.routes,
    isReady: () => {
      const reasons: string[] = [];
      const current = holder.current;
      if (!current) reasons.push(`no valid policy loaded${manager.lastError ? ` (${manager.lastError})` : ''}`);
      const serving = [...states.values()].filter((s) => s.listening);
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
  let stopping = false;
  let starting = true;
  const restarts: number[] = [];
  const restartTimers = new Set<NodeJS.Timeout>();
  cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), args: [], serialization: 'advanced' });

  const onMessage = (s: WorkerState, raw: unknown): void => {
    if (!isFromWorker(raw)) return;
    const m: FromWorker = raw;
    switch (m.type) {
      case 'safespot:hello':
        s.hello = true;
        sendTo(s, { type: 'safespot:init', config: { ...config, listeners: s.listeners }, workers: count, ownEndpoints, bundle: bundle?.bytes ?? null, labels });
        return;
      case 'safespot:listening':
        s.listening = true;
        s.policy = m.policy;
        bound ??= m.addresses;
        log.info('worker serving', { worker: s.pid, policy: m.policy });
        s.settle();
        return;
      case 'safespot:fatal': {
        log.error('worker could not start', { worker: s.pid, error: m.error });
        const code = m.code as ErrorCode | null;
        s.settle(code ? new SafespotError(code, m.error) : new Error(m.error));
        return;
      }
      case 'safespot:policy-ack':
        s.policy = m.version;
        return;
      case 'safespot:journal':
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
        return;
      case 'safespot:metrics': {
        workerMetrics.update(s.worker.id, m.metrics as MetricJson[]);
        const p = pending.get(m.id);
        p?.waiting.delete(s.worker.id);
        if (p && p.waiting.size === 0) p.done();
        return;
      }
    }
  };

  const onExit = (s: WorkerState, code: number | null, signal: string | null): void => {
    states.delete(s.worker.id);
    for (const p of pending.values()) {
      p.waiting.delete(s.worker.id);
      if (p.waiting.size === 0) p.done();
    }
    void workerMetrics.retire(s.worker.id);
    const wasListening = s.listening;
    s.listening = false;
    s.settle(new Error(`worker ${s.pid} exited (${signal ?? `code ${code}`}) before it was serving`));
    if (stopping || (starting && !wasListening)) return;
    log.error('worker died; starting a new one', { worker: s.pid, code, signal });
    metrics.workerRestarts.inc();
    scheduleRestart();
  };

  const fork = (): WorkerState => {
    const others = [...states.values()].some((s) => s.listening && s.worker.isConnected());
    // Port 0: while any worker listens, the shared handle exists and a new worker joins it by asking
    // for the same address again; with none left it would get a new port, so it asks for the real one.
    const listeners = bound && !others ? withPorts(config.listeners, bound) : initial.listeners;
    const worker = cluster.fork();
    let settled = false;
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    ready.catch(() => undefined); // awaited by the start or ignored after it: never unhandled
    const s: WorkerState = {
      worker,
      pid: worker.process.pid ?? 0,
      hello: false,
      listeners,
      listening: false,
      policy: null,
      ready,
      settle(err) {
        if (settled) return;
        settled = true;
        if (err) rejectReady(err);
        else resolveReady();
      },
    };
    states.set(worker.id, s);
    worker.on('message', (m: unknown) => onMessage(s, m));
    worker.on('exit', (code, signal) => onExit(s, code, signal));
    worker.on('error', (err) => log.warn('worker channel error', { worker: s.pid, error: err.message }));
    return s;
  };

  function scheduleRestart(): void {
    const now = Date.now();
    while (restarts.length > 0 && restarts[0]! <= now - RESTART_WINDOW_MS) restarts.shift();
    const delay = restarts.length >= MAX_RESTARTS ? restarts[0]! + RESTART_WINDOW_MS - now : 0;
    restarts.push(now + delay);
    if (delay > 0) log.error('workers keep dying: the next restart waits', { delayMs: delay, maxRestarts: MAX_RESTARTS, windowMs: RESTART_WINDOW_MS });
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      if (!stopping) fork();
    }, delay);
    restartTimers.add(timer);
  }

  const stopWorkers = async (drainMs: number): Promise<void> => {
    stopping = true;
    for (const t of restartTimers) clearTimeout(t);
    restartTimers.clear();
    const all = [...states.values()];
    // Wait for the exit and for the channel to close: the last journal batch is read before EOF.
    const gone = all.map((s) =>
      Promise.all([
        new Promise<void>((r) => (s.worker.isDead() ? r() : s.worker.process.once('exit', () => r()))),
        new Promise<void>((r) => (s.worker.isConnected() ? s.worker.once('disconnect', () => r()) : r())),
      ]),
    );
    for (const s of all) {
      if (s.hello) sendTo(s, { type: 'safespot:stop', drainMs });
      else s.worker.process.kill('SIGTERM'); // not set up yet: nothing to drain
    }
    const killer = setTimeout(() => {
      for (const s of all) if (!s.worker.isDead()) s.worker.process.kill('SIGKILL');
    }, drainMs + STOP_GRACE_MS);
    await Promise.all(gone);
    clearTimeout(killer);
  };

  const first = Array.from({ length: count }, () => fork());
  try {
    await Promise.all(first.map((s) => s.ready));
  } catch (err) {
    await stopWorkers(0);
    await admin?.close();
    await manager.stop();
    journal.close();
    throw err;
  }
  starting = false;

  // --- self-test, reload, close ----------------------------------------------------------------------
  const selftest = (): Promise<void> => runSelftest({ config, holder, forward: bound?.forward, metrics, journal, log });
  await selftest();
  const timer = new SelftestTimer(() => void selftest(), config.selftest.interval);

  /** Wait until every serving worker holds `version` (bounded); the pids that do not. */
  async function workersAt(version: string | null): Promise<number[]> {
    const deadline = Date.now() + RELOAD_WAIT_MS;
    for (;;) {
      const behind = [...states.values()].filter((s) => s.listening && s.policy !== version).map((s) => s.pid);
      if (behind.length === 0 || Date.now() > deadline) return behind;
      await sleep(20);
    }
  }

  async function reloadFromFile(): Promise<ReloadResult> {
    return reloadConfigFile(opts.configPath, reload, log);
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
      broadcast({ type: 'safespot:config', config: { ...next, listeners: initial.listeners } });
    }
    const behind = await workersAt(holder.current?.version ?? null);
    if (behind.length > 0) log.error('the policy has not reached every worker', { version: holder.current?.version ?? null, workers: behind });
    if (result.ok) log.info('reloaded', { version: result.version ?? null, workers: states.size });
    else log.error('reload refused; the previous policy keeps serving', { error: result.error ?? null });
    await selftest();
    return result;
  }

  return {
    holder,
    metrics,
    journal,
    admin,
    proxy: { addresses: () => ({ ...(bound ?? {}) }) },
    workers: () => [...states.values()].map((s) => s.pid),
    config: () => config,
    reload,
    reloadFromFile,
    selftest,
    async close() {
      timer.stop();
      await stopWorkers(config.limits.drainTimeout);
      await admin?.close();
      await manager.stop();
      journal.close();
    },
  };
}
