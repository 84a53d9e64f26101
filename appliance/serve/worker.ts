/**
 * One worker of a `serve` cluster (`workers` > 1; docs/workers.md). It owns the proxy listeners
 * (Node's cluster shares the listening sockets: the primary accepts and hands connections out
 * round-robin) and decides with its own PolicyHolder. Everything else is the primary's: the lists
 * and their compilation, the journal (events go there in batches), the admin listener (it asks
 * for this worker's registry), the self-test and the signals.
 *
 * Fail closed: the holder stays empty until a bundle from the primary decodes and verifies, and an
 * empty holder blocks every request (rule `no-policy`). A bundle that fails to decode leaves the
 * previous policy in force and is reported back, so the primary's /readyz names this worker.
 *
 * The worker exits when told to stop (after draining), on SIGTERM/SIGINT of its own (the same
 * drain; the primary starts a new one unless it is stopping), and when the primary is gone (the
 * IPC channel closes: a worker never serves without the journal's writer).
 */
import { combineObservers, createMetrics, metricsObserver } from '../../audit/metrics.js';
import { journalObserver } from '../../audit/journal.js';
import { loadOrCreateSiteKey, siteTagger } from '../../audit/site-tag.js';
import { decodeBundle } from '../../policy/bundle.js';
import { SafespotError } from '../../policy/errors.js';
import { PolicyHolder } from '../../policy/policy.js';
import type { ConnectionLimits } from '../../proxy/limits.js';
import { createPolicyHooks } from '../../proxy/policy-hooks.js';
import { startProxy, type ProxyHandle } from '../../proxy/server.js';
import type { Config } from '../config.js';
import { setupInterception } from './intercept-setup.js';
import { createLogger, type Logger } from '../log.js';
import { listenerLabels, policyHookOptions, proxyOptions } from './options.js';
import { isToWorker, journalForwarder, type FromWorker, type ToWorker } from './worker-ipc.js';

/**
 * A worker's share of the connection limits, which are configured for the whole appliance: each of
 * `workers` processes admits at most ceil(limit / workers) connections in total and per client
 * address. The appliance therefore never holds more than workers × ceil(limit / workers) (the
 * configured figure, or up to workers − 1 above it when it does not divide). Node's cluster hands
 * connections to the workers round-robin, not by their load, so a refusal can come before the
 * appliance-wide figure is reached when the open connections are unevenly spread: long-lived ones
 * piling up in one worker, or one client's few connections landing mostly in one (docs/workers.md).
 */
export function workerLimits<L extends ConnectionLimits>(limits: L, workers: number): L {
  const n = Math.max(1, Math.floor(workers));
  const share = (limit: number): number => Math.max(1, Math.ceil(limit / n));
  return { ...limits, maxConnections: share(limits.maxConnections), maxConnectionsPerClient: share(limits.maxConnectionsPerClient) };
}

function send(m: FromWorker, done?: () => void): void {
  if (!process.connected || !process.send) {
    done?.();
    return;
  }
  try {
    process.send(m, undefined, {}, () => done?.());
  } catch {
    done?.();
  }
}

/** The operational log with this worker's pid on every line. */
function workerLogger(base: Logger): Logger {
  const w = (f?: Record<string, unknown>): Record<string, unknown> => ({ worker: process.pid, ...f });
  return {
    error: (m, f) => base.error(m, w(f)),
    warn: (m, f) => base.warn(m, w(f)),
    info: (m, f) => base.info(m, w(f)),
    debug: (m, f) => base.debug(m, w(f)),
  };
}

export async function runWorker(): Promise<void> {
  // One listener from the first moment: a message emitted with no listener is lost, and this ESM
  // module only runs after the channel is open, which is why the primary waits for `hello`. Until
  // the worker is set up, messages wait in `early`.
  const early: ToWorker[] = [];
  let handle: ((m: ToWorker) => void) | null = null;
  let gotInit!: (m: Extract<ToWorker, { type: 'safespot:init' }>) => void;
  const initMessage = new Promise<Extract<ToWorker, { type: 'safespot:init' }>>((r) => (gotInit = r));
  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    if (m.type === 'safespot:init') gotInit(m);
    else if (handle) handle(m);
    else early.push(m);
  });
  send({ type: 'safespot:hello' });
  const init = await initMessage;
  let config: Readonly<Config> = init.config;
  const log = workerLogger(createLogger(process.stderr, config.logLevel));
  const metrics = createMetrics({
    // The primary's label sets (in bundle mode they come from the bundle, not the config).
    categories: init.labels?.categories ?? [...new Set(config.lists.map((l) => l.category))],
    lists: init.labels?.lists ?? config.lists.map((l) => l.id),
    listeners: listenerLabels(config),
  });
  const holder = new PolicyHolder();
  const install = (bytes: Uint8Array): string => {
    const policy = decodeBundle(bytes);
    holder.swap(policy);
    metrics.filteringActive.set(true);
    return policy.version;
  };
  if (init.bundle) {
    try {
      install(init.bundle);
    } catch (err) {
      log.error('policy bundle from the primary refused; failing closed until the next one', { error: String((err as Error)?.message ?? err) });
    }
  }

  const journal = journalForwarder(send);
  // The primary made the site-tag key in state.dir before starting workers (serve.ts startEvidence).
  const siteTag = siteTagger(loadOrCreateSiteKey(config.state.dir).key);
  const observer = combineObservers(metricsObserver(metrics), journalObserver(journal, { siteTag }));
  const interception = await setupInterception(config);
  let proxy: ProxyHandle | null = null;
  let stopping: Promise<void> | null = null;

  const stop = (drainMs: number, code: number): Promise<void> => {
    stopping ??= (async () => {
      await proxy?.close(drainMs);
      await journal.flush();
      journal.close();
      process.exit(code);
    })();
    return stopping;
  };

  handle = (m: ToWorker): void => {
    switch (m.type) {
      case 'safespot:policy': {
        try {
          const version = install(m.bundle);
          send({ type: 'safespot:policy-ack', version });
        } catch (err) {
          const error = err instanceof SafespotError ? `${err.code}: ${err.message}` : String(err);
          log.error('policy bundle from the primary refused; the previous policy keeps serving', { error });
          send({ type: 'safespot:policy-ack', version: holder.current?.version ?? null, error });
        }
        return;
      }
      case 'safespot:config':
        config = m.config;
        proxy?.setHooks(createPolicyHooks(holder, observer, policyHookOptions(config)));
        return;
      case 'safespot:metrics':
        void metrics.registry.getMetricsAsJSON().then((json) => send({ type: 'safespot:metrics', id: m.id, metrics: json }));
        return;
      case 'safespot:stop':
        void stop(m.drainMs, 0);
        return;
      case 'safespot:init':
        return;
    }
  };
  for (const m of early.splice(0)) handle(m);
  // The primary is gone (killed): no journal writer, no admin; stop at once.
  process.on('disconnect', () => void stop(0, 1));
  process.on('SIGTERM', () => void stop(config.limits.drainTimeout, 0));
  process.on('SIGINT', () => void stop(config.limits.drainTimeout, 0));
  // A terminal hang-up reaches the whole process group; reloads are the primary's business.
  process.on('SIGHUP', () => undefined);

  proxy = await startProxy(
    {
      ...proxyOptions(config),
      limits: workerLimits(config.limits, init.workers),
      ownEndpoints: init.ownEndpoints,
      ...(interception.edge ? { intercept: interception.edge } : {}),
    },
    createPolicyHooks(holder, observer, policyHookOptions(config)),
    observer,
  );
  send({ type: 'safespot:listening', addresses: proxy.addresses(), policy: holder.current?.version ?? null });
  log.debug('worker serving', { policy: holder.current?.version ?? null });
}

/** The worker process's entry (serve/worker-main.ts): report a start failure to the primary, then exit 1. */
export function main(): void {
  runWorker().catch((err: unknown) => {
    const code = err instanceof SafespotError ? err.code : null;
    const error = err instanceof Error ? err.message : String(err);
    send({ type: 'safespot:fatal', error, code }, () => process.exit(1));
  });
}
