/**
 * The worker processes of a `serve` cluster (serve/cluster.ts composes the rest): forking them with
 * the listeners they are to bind, the start handshake (hello → init → listening or fatal), the policy
 * version each one acknowledged, restarting one that died (at most MAX_RESTARTS per
 * RESTART_WINDOW_MS, counted in safespot_worker_restarts_total), and stopping them all with a bounded
 * drain. What a worker sends besides (journal batches, metrics answers) goes to the callbacks; the
 * pool knows nothing of the journal or of /metrics.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Metrics } from '../../audit/metrics.js';
import { SafespotError, type ErrorCode } from '../../policy/errors.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { isFromWorker, type Addresses, type FromWorker, type ToWorker } from './worker-ipc.js';

/** Restarts allowed in any window of RESTART_WINDOW_MS; past that, the next one waits. */
export const MAX_RESTARTS = 5;
export const RESTART_WINDOW_MS = 60_000;
/** Past the drain, how long the pool waits for workers before killing them. */
const STOP_GRACE_MS = 5_000;

export interface PoolWorker {
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

export interface WorkerPoolOptions {
  readonly log: Logger;
  readonly metrics: Pick<Metrics, 'workerRestarts'>;
  /** The listeners as configured at start (port 0 stays 0 while another worker holds the port). */
  readonly initialListeners: Config['listeners'];
  /** The listeners of the config in force. */
  listeners(): Config['listeners'];
  /** The init message for a worker that said hello. */
  init(w: PoolWorker): ToWorker;
  /** A journal batch (with the count a full queue dropped). */
  onJournal(w: PoolWorker, m: Extract<FromWorker, { type: 'safespot:journal' }>): void;
  /** A worker's answer to a metrics request. */
  onMetrics(w: PoolWorker, m: Extract<FromWorker, { type: 'safespot:metrics' }>): void;
  /** A worker is gone (exit): whatever waits for it stops waiting. */
  onGone(w: PoolWorker): void;
}

/** The configured listeners with the real ports put in for port 0 (a worker started when none listens). */
function withPorts(listeners: Config['listeners'], bound: Addresses): Config['listeners'] {
  const out: Record<string, unknown> = { ...listeners };
  for (const [name, e] of Object.entries(listeners)) {
    const real = bound[name as keyof Addresses];
    if (e && real && e.port === 0) out[name] = { ...e, port: real.port };
  }
  return out as Config['listeners'];
}

export class WorkerPool {
  readonly #o: WorkerPoolOptions;
  readonly #states = new Map<number, PoolWorker>();
  readonly #restarts: number[] = [];
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  #bound: Addresses | null = null;
  #stopping = false;
  #starting = true;

  constructor(o: WorkerPoolOptions) {
    this.#o = o;
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), args: [], serialization: 'advanced' });
  }

  /** The listeners' bound addresses, as the first worker to listen reported them. */
  get bound(): Addresses | null {
    return this.#bound;
  }

  all(): PoolWorker[] {
    return [...this.#states.values()];
  }

  serving(): PoolWorker[] {
    return this.all().filter((s) => s.listening);
  }

  send(s: PoolWorker, m: ToWorker): void {
    // Before its hello a worker would drop the message; init carries the state of that moment.
    if (!s.hello || !s.worker.isConnected()) return;
    try {
      s.worker.send(m);
    } catch (err) {
      this.#o.log.warn('could not reach a worker', { worker: s.pid, error: String(err) });
    }
  }

  broadcast(m: ToWorker): void {
    for (const s of this.#states.values()) this.send(s, m);
  }

  /** Fork `count` workers and wait until each listens; on any failure stop them all and throw. */
  async start(count: number): Promise<void> {
    const first = Array.from({ length: count }, () => this.#fork());
    try {
      await Promise.all(first.map((s) => s.ready));
    } catch (err) {
      await this.stop(0);
      throw err;
    }
    this.#starting = false;
  }

  /** Tell every worker to drain (bounded by drainMs, then killed) and wait until each has exited. */
  async stop(drainMs: number): Promise<void> {
    this.#stopping = true;
    for (const t of this.#restartTimers) clearTimeout(t);
    this.#restartTimers.clear();
    const all = this.all();
    // Wait for the exit and for the channel to close: the last journal batch is read before EOF.
    const gone = all.map((s) =>
      Promise.all([
        new Promise<void>((r) => (s.worker.isDead() ? r() : s.worker.process.once('exit', () => r()))),
        new Promise<void>((r) => (s.worker.isConnected() ? s.worker.once('disconnect', () => r()) : r())),
      ]),
    );
    for (const s of all) {
      if (s.hello) this.send(s, { type: 'safespot:stop', drainMs });
      else s.worker.process.kill('SIGTERM'); // not set up yet: nothing to drain
    }
    const killer = setTimeout(() => {
      for (const s of all) if (!s.worker.isDead()) s.worker.process.kill('SIGKILL');
    }, drainMs + STOP_GRACE_MS);
    await Promise.all(gone);
    clearTimeout(killer);
  }

  #fork(): PoolWorker {
    const others = this.all().some((s) => s.listening && s.worker.isConnected());
    // Port 0: while any worker listens, the shared handle exists and a new worker joins it by asking
    // for the same address again; with none left it would get a new port, so it asks for the real one.
    const listeners = this.#bound && !others ? withPorts(this.#o.listeners(), this.#bound) : this.#o.initialListeners;
    const worker = cluster.fork();
    let settled = false;
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    ready.catch(() => undefined); // awaited by the start or ignored after it: never unhandled
    const s: PoolWorker = {
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
    this.#states.set(worker.id, s);
    worker.on('message', (m: unknown) => this.#onMessage(s, m));
    worker.on('exit', (code, signal) => this.#onExit(s, code, signal));
    worker.on('error', (err) => this.#o.log.warn('worker channel error', { worker: s.pid, error: err.message }));
    return s;
  }

  #onMessage(s: PoolWorker, raw: unknown): void {
    if (!isFromWorker(raw)) return;
    const m: FromWorker = raw;
    const { log } = this.#o;
    switch (m.type) {
      case 'safespot:hello':
        s.hello = true;
        this.send(s, this.#o.init(s));
        return;
      case 'safespot:listening':
        s.listening = true;
        s.policy = m.policy;
        this.#bound ??= m.addresses;
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
        this.#o.onJournal(s, m);
        return;
      case 'safespot:metrics':
        this.#o.onMetrics(s, m);
        return;
    }
  }

  #onExit(s: PoolWorker, code: number | null, signal: string | null): void {
    this.#states.delete(s.worker.id);
    this.#o.onGone(s);
    const wasListening = s.listening;
    s.listening = false;
    s.settle(new Error(`worker ${s.pid} exited (${signal ?? `code ${code}`}) before it was serving`));
    if (this.#stopping || (this.#starting && !wasListening)) return;
    this.#o.log.error('worker died; starting a new one', { worker: s.pid, code, signal });
    this.#o.metrics.workerRestarts.inc();
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    const now = Date.now();
    const restarts = this.#restarts;
    while (restarts.length > 0 && restarts[0]! <= now - RESTART_WINDOW_MS) restarts.shift();
    const delay = restarts.length >= MAX_RESTARTS ? restarts[0]! + RESTART_WINDOW_MS - now : 0;
    restarts.push(now + delay);
    if (delay > 0) this.#o.log.error('workers keep dying: the next restart waits', { delayMs: delay, maxRestarts: MAX_RESTARTS, windowMs: RESTART_WINDOW_MS });
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (!this.#stopping) this.#fork();
    }, delay);
    this.#restartTimers.add(timer);
  }
}
