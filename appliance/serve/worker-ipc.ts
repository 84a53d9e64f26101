/**
 * The messages between the `serve` primary and its workers (`workers` > 1; docs/workers.md), and
 * the worker's side of the journal: a forwarder that batches journal events to the primary, the
 * journal's single writer.
 *
 * The channel uses Node's `advanced` serialization (structured clone), so a policy bundle travels
 * as bytes without base64 or JSON. Every message type starts with `safespot:` so that prom-client
 * or Node's own cluster messages can never be mistaken for ours.
 */
import type { JournalEvent } from '../../audit/journal.js';
import { FLUSH_INTERVAL_MS, MAX_QUEUE } from '../../audit/journal.js';
import type { ListenerName } from '../../proxy/hooks.js';
import type { Endpoint } from '../../proxy/upstream.js';
import type { Config } from '../config.js';

export type Addresses = Partial<Record<ListenerName, Endpoint>>;

/** Primary → worker. */
export type ToWorker =
  /**
   * First message: the config in force (listeners as the worker must bind them), the current
   * bundle, and how many workers the appliance runs (each enforces its share of the connection limits).
   */
  | { type: 'safespot:init'; config: Config; workers: number; ownEndpoints: Endpoint[]; bundle: Uint8Array | null; labels?: { lists: readonly string[]; categories: readonly string[] } }
  /** A new policy (encodeBundle bytes): decode, verify, swap, then acknowledge. */
  | { type: 'safespot:policy'; bundle: Uint8Array; version: string }
  /** A reloaded config: new decision-hook options (listeners, limits and interception stay as started). */
  | { type: 'safespot:config'; config: Config }
  /** Send the registry as JSON (getMetricsAsJSON) for /metrics. */
  | { type: 'safespot:metrics'; id: number }
  /** Stop accepting, drain for up to drainMs, send the last journal events, exit 0. */
  | { type: 'safespot:stop'; drainMs: number };

/** Worker → primary. */
export type FromWorker =
  /** The worker listens for messages now (anything sent before would be lost): send init. */
  | { type: 'safespot:hello' }
  /** Listening; `policy` is the version it holds (null: failing closed). */
  | { type: 'safespot:listening'; addresses: Addresses; policy: string | null }
  /** The worker could not start (the primary fails the start, or restarts it later). */
  | { type: 'safespot:fatal'; error: string; code: string | null }
  | { type: 'safespot:policy-ack'; version: string | null; error?: string }
  | { type: 'safespot:journal'; events: JournalEvent[]; dropped: number }
  | { type: 'safespot:metrics'; id: number; metrics: unknown[] };

export function isFromWorker(m: unknown): m is FromWorker {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('safespot:');
}

export const isToWorker = isFromWorker as (m: unknown) => m is ToWorker;

export interface JournalForwarder {
  /** Queue one event, stamped with this worker's clock now (not when the primary writes it). */
  record(e: JournalEvent): void;
  /** Send what is queued now; resolves when the message has left this process. */
  flush(): Promise<void>;
  /** Events refused because the queue was full (reported to the primary with the next batch). */
  dropped(): number;
  /** Stop the timer (events recorded afterwards are not sent). */
  close(): void;
}

export interface ForwarderOptions {
  /** Longest time an event waits before its batch is sent (default the journal's own, 250 ms). */
  intervalMs?: number;
  maxQueue?: number;
  now?: () => number;
}

/**
 * The worker's journal: record() only queues; one batch goes to the primary at most `intervalMs`
 * after the first queued event. With the primary's own flush interval after it, an event is on
 * disk within about half a second, inside the journal's one-second loss promise.
 */
export function journalForwarder(send: (m: FromWorker, done: () => void) => void, opts: ForwarderOptions = {}): JournalForwarder {
  const interval = opts.intervalMs ?? FLUSH_INTERVAL_MS;
  const maxQueue = opts.maxQueue ?? MAX_QUEUE;
  const now = opts.now ?? Date.now;
  let queue: JournalEvent[] = [];
  let dropped = 0;
  let reported = 0;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const flush = (): Promise<void> => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (queue.length === 0 && dropped === reported) return Promise.resolve();
    const events = queue;
    queue = [];
    const newlyDropped = dropped - reported;
    reported = dropped;
    return new Promise<void>((resolve) => send({ type: 'safespot:journal', events, dropped: newlyDropped }, resolve));
  };

  return {
    record(e) {
      if (closed) return;
      if (queue.length >= maxQueue) {
        dropped++;
        return;
      }
      queue.push({ ...e, time: e.time ?? now() });
      if (!timer) {
        timer = setTimeout(() => void flush(), interval);
        timer.unref();
      }
    },
    flush,
    dropped: () => dropped,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
