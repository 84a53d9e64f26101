/**
 * The journal's writer: the in-memory queue and the flushes that commit it.
 *
 * `push()` only queues (no I/O on the proxy's hot path). A timer starts a flush at most
 * FLUSH_INTERVAL_MS after the oldest queued row was queued. That flush writes the queue in chunks
 * of at most FLUSH_CHUNK_ROWS rows, one transaction (one commit, one fsync) per chunk, and gives
 * the event loop a turn (setImmediate) between chunks: a block storm that queued tens of thousands
 * of rows no longer stops the proxy for the whole write (10,000 rows in one transaction held the
 * loop ~40-55 ms; one chunk holds it ~8 ms, see BENCHMARKS.md "Journal flush chunks").
 *
 * The loss promise (docs/audit.md: a `kill -9` loses at most the last second) outranks the
 * smoothness: each chunk commits on its own, so the oldest rows reach the disk first; and when the
 * oldest row still queued has waited RUSH_AFTER_MS (a busy loop gave the chunks too few turns, or
 * the queue was near MAX_QUEUE), the next step writes every row that has waited that long in one
 * transaction. RUSH_AFTER_MS leaves room for a full MAX_QUEUE in that one write (~0.4 s measured)
 * inside the second. Rows already older than LOSS_WINDOW_MS (after a failed write: a full or
 * read-only disk, or a loop stalled for a second) are past the promise; they drain in chunks, so
 * recovering from an outage does not stop the loop for a whole backlog.
 *
 * An explicit `flush()` (close, tests) writes everything queued in one transaction before it
 * returns.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import type { JournalBudget, PendingRow } from './journal-budget.js';
import { INSERT_EVENT_SQL, type Db } from './journal-file.js';

export type { PendingRow } from './journal-budget.js';

/**
 * Most rows ever held in memory; past it, verdicts and images go to per-minute aggregates
 * (audit/journal-budget.ts) and other events are counted as lost (see stats()).
 */
export const MAX_QUEUE = 100_000;
/** Longest time an event waits in memory before the flush that writes it starts. */
export const FLUSH_INTERVAL_MS = 250;
/**
 * Most rows one timer-driven transaction writes. Measured (BENCHMARKS.md): ~3.7 us a row plus
 * ~0.3 ms a commit, so 2,000 rows hold the loop ~8 ms and the extra commits cost ~4 %.
 */
export const FLUSH_CHUNK_ROWS = 2_000;
/** A row queued this long makes the next step write all rows this old at once (see above). */
export const RUSH_AFTER_MS = 600;
/** The loss promise: a row queued longer ago than this is on disk (unless writes fail). */
export const LOSS_WINDOW_MS = 1_000;

export interface JournalStats {
  /** Rows queued in memory, not yet written. */
  pending: number;
  /** Rows committed since open. */
  written: number;
  /**
   * Events that could not be kept at all, whatever the reason (the sum of `lost` of the journal's
   * stats; each is counted in a journal_loss row).
   */
  dropped: number;
  /** Transactions committed (a timer-driven flush of a large queue commits one per chunk). */
  flushes: number;
  failedFlushes: number;
  /**
   * The longest single synchronous write (one transaction) of the most recent flush, in ms: the
   * longest the event loop was blocked by it. For a timer-driven flush written in chunks, its
   * longest chunk; for an explicit flush(), the whole write.
   */
  lastFlushMs: number;
}

export interface WriterOptions {
  db: Db;
  /** The journal's file name, for warnings. */
  path: string;
  /** The journal's clock (ms): queue ages are measured with it. */
  now: () => number;
  warn: (message: string) => void;
  /** Run inside every write transaction, after the rows (the journal's last sign of life). */
  alsoInTransaction?: () => void;
  /** The aggregate rows: every transaction also writes the cells with events not yet on disk. */
  budget?: Pick<JournalBudget, 'dirty' | 'writeDirty' | 'committed' | 'rolledBack'>;
  /** After each committed transaction (the journal measures its size). */
  afterCommit?: () => void;
}

export interface JournalWriter {
  /** Queue one row; false (and nothing queued) when MAX_QUEUE rows are queued. */
  push(row: PendingRow): boolean;
  /** Aggregate cells have events to write: schedule a flush if none is. */
  poke(): void;
  /** Write everything queued now, in one transaction, before returning. */
  flush(): void;
  /** Cancel any scheduled flush; nothing is written after this. */
  stop(): void;
  pending(): number;
  stats(): JournalStats;
}

export function createJournalWriter(o: WriterOptions): JournalWriter {
  const { db, now } = o;
  const insert = db.prepare(INSERT_EVENT_SQL);
  const writeRows = db.transaction((rows: PendingRow[]) => {
    for (const r of rows) insert.run(r);
    o.budget?.writeDirty();
    o.alsoInTransaction?.();
  });

  // FIFO; queuedAt[i] is when queue[i] was queued (journal clock), so queuedAt[0] is the oldest.
  let queue: PendingRow[] = [];
  let queuedAt: number[] = [];
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;
  let stopped = false;
  let lastFailureWarned = 0;
  const stats: JournalStats = { pending: 0, written: 0, dropped: 0, flushes: 0, failedFlushes: 0, lastFlushMs: 0 };

  /** Write the n oldest rows in one transaction; on failure keep them queued. True if committed. */
  function write(n: number): boolean {
    const rows = queue.splice(0, n);
    const times = queuedAt.splice(0, n);
    const t0 = performance.now();
    try {
      writeRows(rows);
      o.budget?.committed();
      stats.written += rows.length;
      stats.flushes++;
      o.afterCommit?.();
      return true;
    } catch (err) {
      o.budget?.rolledBack();
      stats.failedFlushes++;
      // Keep the rows for the next try (disk full, locked file). Nothing was queued while we wrote
      // (this is synchronous), so putting them back stays within MAX_QUEUE.
      queue = rows.concat(queue);
      queuedAt = times.concat(queuedAt);
      if (now() - lastFailureWarned > 60_000) {
        lastFailureWarned = now();
        o.warn(`cannot write the audit journal ${o.path}: ${(err as Error).message}; ${queue.length} event(s) held in memory`);
      }
      return false;
    } finally {
      stats.lastFlushMs = Math.max(stats.lastFlushMs, performance.now() - t0);
    }
  }

  function cancel(): void {
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    timer = null;
    immediate = null;
  }

  function arm(delay: number): void {
    if (stopped) return;
    // Clamped: a clock stepped backwards must not postpone a flush by the size of the step.
    timer = setTimeout(startFlush, Math.min(FLUSH_INTERVAL_MS, Math.max(0, delay)));
    timer.unref();
  }

  /** A timer-driven flush begins: lastFlushMs now describes this flush. */
  function startFlush(): void {
    stats.lastFlushMs = 0;
    step();
  }

  /** One step of a timer-driven flush: one chunk (in a rush, every row that waited), then yield or rest. */
  function step(): void {
    timer = null;
    immediate = null;
    if (stopped || !waiting()) return;
    const t = now();
    const age = queue.length > 0 ? t - queuedAt[0]! : 0;
    let n = Math.min(FLUSH_CHUNK_ROWS, queue.length);
    if (age >= RUSH_AFTER_MS && age < LOSS_WINDOW_MS) {
      // A rush: every row that has waited RUSH_AFTER_MS goes now, in one transaction.
      while (n < queue.length && t - queuedAt[n]! >= RUSH_AFTER_MS) n++;
    }
    if (!write(n)) {
      arm(FLUSH_INTERVAL_MS);
      return;
    }
    if (queue.length === 0) return;
    // Go on after one turn of the loop while a full chunk waits or the oldest row is due. Rows that
    // came in during the flush and are not due yet wait for their own timer: one commit for them,
    // not one per turn of the loop.
    const dueIn = queuedAt[0]! + FLUSH_INTERVAL_MS - now();
    if (queue.length >= FLUSH_CHUNK_ROWS || dueIn <= 0) {
      immediate = setImmediate(step);
      // Like the timer, the chain of chunks never holds the process open: close() writes the rest.
      immediate.unref();
    } else arm(dueIn);
  }

  /** Rows queued, or aggregate cells with events not yet on disk. */
  function waiting(): boolean {
    return queue.length > 0 || (o.budget?.dirty() ?? false);
  }

  return {
    push(row) {
      if (stopped) return true;
      if (queue.length >= MAX_QUEUE) return false;
      queue.push(row);
      queuedAt.push(now());
      if (!timer && !immediate) arm(FLUSH_INTERVAL_MS);
      return true;
    },
    poke() {
      if (!stopped && !timer && !immediate) arm(FLUSH_INTERVAL_MS);
    },
    flush() {
      cancel();
      if (stopped || !waiting()) return;
      stats.lastFlushMs = 0;
      if (!write(queue.length)) arm(FLUSH_INTERVAL_MS);
    },
    stop() {
      cancel();
      stopped = true;
    },
    pending: () => queue.length,
    stats: () => ({ ...stats, pending: queue.length }),
  };
}
