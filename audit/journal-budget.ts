/**
 * The journal's budget (issue 22, finding 8): what keeps one guest from growing the journal without
 * bound, while every figure of a report stays exact.
 *
 * - **Rate.** Per UTC minute and per key (kind, listener, protocol, action, category, list, match,
 *   and the client when the caller gave one), the first `eventsPerMinute` block/monitor verdicts and
 *   image matches get a row of their own; the rest of that minute are added to one **aggregate
 *   row** of the same key: `count` = how many, `time` = the start of the minute, `detail` =
 *   `aggregate: …`, no URL (so recorded URLs are bounded per client and minute). A report sums
 *   `count`, so the figures by category, list and listener are those of every event.
 * - **Size.** Over `journal.maxBytes` (audit/journal.ts measures), every such event goes to an
 *   aggregate (`reason` budget): the journal then grows by about one row per key and minute.
 * - **Queue.** With MAX_QUEUE rows already waiting for the disk (a full or read-only disk), events
 *   go to aggregates (`reason` queue) instead of being dropped: the counts wait in memory, a
 *   bounded number of cells, and reach the disk when writes succeed again.
 * - **Loss.** What still cannot be kept (a worker's full queue, no room for one more cell, a queued
 *   non-verdict event past MAX_QUEUE) is counted into a `journal_loss` row per minute and reason,
 *   so the report shows it: evidence is never lost silently.
 *
 * An aggregate row is inserted once and then grows with `UPDATE … count = count + n` in each later
 * flush, so it costs one row per key and minute however long the storm lasts, and its events are
 * on disk within the same loss window as any other row (the writer writes every cell with unwritten
 * events in each transaction).
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { ADD_TO_ROW_SQL, INSERT_EVENT_SQL, type Db, type JournalRow } from './journal-file.js';

/** A row as queued: everything but the id SQLite assigns. */
export type PendingRow = Omit<JournalRow, 'id'>;

/** Why events went into an aggregate row instead of rows of their own. */
export const AGGREGATE_REASONS = ['rate', 'budget', 'queue'] as const;
export type AggregateReason = (typeof AGGREGATE_REASONS)[number];
/** Why events could not be kept at all (they are counted in `journal_loss` rows). */
export const LOSS_REASONS = ['queue_full', 'worker_queue', 'overflow'] as const;
export type LossReason = (typeof LOSS_REASONS)[number];

/** The detail of an aggregate row of this reason (reports read the reason back from it). */
export const aggregateDetail = (r: AggregateReason): string => AGGREGATE_DETAIL[r];
const AGGREGATE_DETAIL: Record<AggregateReason, string> = {
  rate: 'aggregate: past journal.eventsPerMinute for this key',
  budget: 'aggregate: journal past journal.maxBytes',
  queue: 'aggregate: write queue full (disk refusing writes?)',
};

/**
 * Most cells (keys of one minute) held at once. Keys with a client beyond it fall back to the same
 * key without the client (a guest rotating IPv6 addresses cannot fill memory); keys without a
 * client, whose number the configured lists bound, may use CELL_HEADROOM more; past that, lost.
 */
export const MAX_CELLS = 20_000;
const CELL_HEADROOM = 5_000;
const MINUTE_MS = 60_000;

/** One aggregate row: on disk (id) or not yet, and the events not yet added to it. */
interface Cell {
  readonly row: PendingRow;
  readonly minute: number;
  id: number | null;
  /** Events not yet on disk. */
  delta: number;
  /** Set while a transaction that inserted this row is open. */
  pendingId: number | null;
}

export interface BudgetStats {
  /** Events added to aggregate rows since open, by reason. */
  aggregated: Record<AggregateReason, number>;
  /** Events that could not be kept, by reason (each is counted in a journal_loss row). */
  lost: Record<LossReason, number>;
}

export interface JournalBudget {
  /**
   * Decide for one verdict or image row: true = queue it as a row of its own; false = it was added
   * to an aggregate (or counted as lost). `client` is the budget key's client (kept in the row only
   * if row.client is set); `forced` sends it to an aggregate whatever the rate.
   */
  admit(row: PendingRow, client: string | null, forced: AggregateReason | null): boolean;
  /** Count n events that could not be kept. */
  lose(n: number, reason: LossReason, time: number): void;
  /** Cells with events not yet on disk. */
  dirty(): boolean;
  /** Inside the writer's transaction: insert or grow every dirty cell's row. */
  writeDirty(): void;
  /** The transaction committed / failed. */
  committed(): void;
  rolledBack(): void;
  stats(): BudgetStats;
}

export interface BudgetOptions {
  db: Db;
  eventsPerMinute: number;
  /** The journal's clock, for which minutes are over. */
  now: () => number;
  /** A cell got events to write: make sure a flush is scheduled. */
  onDirty: () => void;
  /** The id of the last row a checkpoint covers (audit/journal-tree.ts); such rows are never updated. */
  sealedId?: () => number;
}

export function createJournalBudget(o: BudgetOptions): JournalBudget {
  const insert = o.db.prepare(INSERT_EVENT_SQL);
  const add = o.db.prepare(ADD_TO_ROW_SQL);
  /** Rows of their own per minute and key. */
  let own = new Map<string, number>();
  let ownMinute = -1;
  /** Aggregate cells by minute, reason and key. */
  const cells = new Map<string, Cell>();
  const dirtyCells = new Set<Cell>();
  let inFlight: Cell[] = [];
  const stats: BudgetStats = {
    aggregated: { rate: 0, budget: 0, queue: 0 },
    lost: { queue_full: 0, worker_queue: 0, overflow: 0 },
  };

  const keyOf = (r: PendingRow, client: string | null): string =>
    `${r.kind}\u0000${r.listener}\u0000${r.protocol}\u0000${r.action}\u0000${r.category}\u0000${r.list}\u0000${r.match}\u0000${client ?? ''}`;

  let sweptAt = -1;
  /** Once a minute: forget cells of minutes before the previous one once their events are on disk. */
  function sweep(): void {
    const current = Math.floor(o.now() / MINUTE_MS);
    if (current === sweptAt) return;
    sweptAt = current;
    for (const [k, c] of cells) if (c.minute < current - 1 && c.delta === 0 && c.pendingId === null) cells.delete(k);
  }

  /** Add n events to the cell of `key`, creating it while fewer than `limit` cells exist. */
  function addTo(key: string, make: () => PendingRow, minute: number, n: number, limit: number): boolean {
    let c = cells.get(key);
    if (!c) {
      if (cells.size >= limit) return false;
      c = { row: make(), minute, id: null, delta: 0, pendingId: null };
      cells.set(key, c);
    }
    if (c.delta === 0) o.onDirty();
    c.delta += n;
    dirtyCells.add(c);
    return true;
  }

  function lose(n: number, reason: LossReason, time: number): void {
    if (!(n > 0)) return;
    const minute = Math.floor(time / MINUTE_MS);
    stats.lost[reason] += n;
    // Loss cells are at most one per reason and minute: always room for them.
    addTo(
      `loss\u0000${minute}\u0000${reason}`,
      () => ({
        time: minute * MINUTE_MS,
        kind: 'journal_loss',
        listener: null,
        protocol: null,
        action: null,
        category: null,
        list: null,
        match: null,
        detail: reason,
        url: null,
        client: null,
        count: 1,
      }),
      minute,
      n,
      Infinity,
    );
  }

  return {
    admit(row, client, forced) {
      sweep();
      const minute = Math.floor(row.time / MINUTE_MS);
      let reason = forced;
      if (reason === null) {
        if (minute !== ownMinute && minute > ownMinute) {
          // A new minute: the counts of rows of their own start again. (Events stamped with an
          // older minute, from a late worker batch, count against the current minute's map.)
          own = new Map();
          ownMinute = minute;
        }
        const k = keyOf(row, client);
        const n = own.get(k) ?? 0;
        if (n < o.eventsPerMinute && (own.size < MAX_CELLS || own.has(k))) {
          own.set(k, n + 1);
          return true;
        }
        reason = 'rate';
      }
      const make = (withClient: boolean) => (): PendingRow => ({
        ...row,
        time: minute * MINUTE_MS,
        detail: AGGREGATE_DETAIL[reason],
        url: null,
        client: withClient ? row.client : null,
        count: 1,
      });
      const base = `${minute}\u0000${reason}\u0000`;
      const kept =
        addTo(base + keyOf(row, client), make(true), minute, 1, client === null ? MAX_CELLS + CELL_HEADROOM : MAX_CELLS) ||
        (client !== null && addTo(base + keyOf(row, null), make(false), minute, 1, MAX_CELLS + CELL_HEADROOM));
      if (kept) stats.aggregated[reason]++;
      else lose(1, 'overflow', row.time);
      return false;
    },
    lose,
    dirty: () => dirtyCells.size > 0,
    writeDirty() {
      inFlight = [...dirtyCells];
      // A row a signed checkpoint covers is a leaf of the tree and never changes again (read in this
      // transaction: `audit report` may have checkpointed from another process). The rest of its
      // minute goes into a new aggregate row; figures are sums, so they stay exact.
      const sealed = inFlight.some((c) => c.id !== null) ? (o.sealedId?.() ?? 0) : 0;
      for (const c of inFlight) {
        if (c.id !== null && c.id <= sealed) c.id = null;
        if (c.id === null) c.pendingId = Number(insert.run({ ...c.row, count: c.delta }).lastInsertRowid);
        else add.run(c.delta, c.id);
      }
    },
    committed() {
      for (const c of inFlight) {
        if (c.pendingId !== null) c.id = c.pendingId;
        c.pendingId = null;
        c.delta = 0;
        dirtyCells.delete(c);
      }
      inFlight = [];
    },
    rolledBack() {
      for (const c of inFlight) c.pendingId = null;
      inFlight = [];
    },
    stats: () => ({ aggregated: { ...stats.aggregated }, lost: { ...stats.lost } }),
  };
}
