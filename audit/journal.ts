/**
 * The durable audit journal: one SQLite file (better-sqlite3) that an auditor's period report is
 * computed from (audit/report.ts). This module is the public face; the file (opening, corrupt-file
 * handling, schema) is audit/journal-file.ts and the queue and its flushes audit/journal-writer.ts.
 *
 * Promise (docs/audit.md): a clean `close()` loses nothing; a `kill -9` loses at most the last
 * second. How: `record()` only pushes onto an in-memory queue (no I/O on the proxy's hot path); a
 * timer starts a flush at most FLUSH_INTERVAL_MS after the oldest queued event, which commits the
 * queue in chunks of at most FLUSH_CHUNK_ROWS, yielding to the event loop between chunks (details
 * and the rush rule that keeps the promise for a huge backlog: audit/journal-writer.ts).
 * WAL mode with `synchronous=FULL`: each commit is fsynced, so the promise holds for a power cut
 * too, not only for a killed process. That costs one fsync per transaction (at most four a second,
 * plus one per 2,000 rows in a storm, and only while blocks happen: allows are never journaled),
 * which we accept for evidence.
 *
 * Availability evidence: the journal writes `start` on open and `stop` on close itself, and keeps a
 * heartbeat (`session.last_alive`, every HEARTBEAT_MS). When it opens and finds the previous
 * session never closed (a crash, kill -9, power cut), it writes the missing `stop` at the last sign
 * of life, so a report counts the time the appliance was down as down.
 *
 * Budget (issue 22, finding 8; audit/journal-budget.ts): past `eventsPerMinute` per minute and key,
 * past `maxBytes`, or with MAX_QUEUE rows waiting, blocks and image matches are added to per-minute
 * aggregate rows (`count`), so a storm from one guest costs a row a minute and every figure stays
 * exact; what cannot be kept at all is counted in `journal_loss` rows. Reports sum `count`.
 *
 * Privacy: `url` and `client` are stored only when recordUrls / recordClients are on; `record()`
 * drops them otherwise, whoever calls it. `detail` is a short human note and must never hold list
 * clear text (callers pass list ids, counts and error codes).
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { SafespotError } from '../policy/errors.js';
import { statSync } from 'node:fs';
import { AGGREGATE_REASONS, aggregateDetail, createJournalBudget, type AggregateReason, type BudgetStats, type LossReason } from './journal-budget.js';
import { hasCountColumn, INSERT_EVENT_SQL, JOURNAL_KINDS, openJournalFile, type JournalKind, type JournalRow } from './journal-file.js';
import { createJournalWriter, MAX_QUEUE, type JournalStats as WriterStats, type JournalWriter, type PendingRow } from './journal-writer.js';
import type { Observer } from './metrics.js';
import type { Identity } from './identity.js';
import { hasTreeTables } from './journal-file.js';
import { createCheckpointer, pruneCovered, pruneDetail, type StoredCheckpoint } from './journal-tree.js';
import type { CheckpointReason } from './checkpoint.js';

export { JOURNAL_KINDS, type JournalKind, type JournalRow } from './journal-file.js';
export { FLUSH_CHUNK_ROWS, FLUSH_INTERVAL_MS, LOSS_WINDOW_MS, MAX_QUEUE, RUSH_AFTER_MS } from './journal-writer.js';
export { AGGREGATE_REASONS, LOSS_REASONS, MAX_CELLS, type AggregateReason, type LossReason } from './journal-budget.js';

/** The writer's figures, and the budget's (audit/journal-budget.ts). */
export interface JournalStats extends WriterStats, BudgetStats {
  /** Bytes the journal uses: its pages in use plus its WAL (measured at most once a second). */
  sizeBytes: number;
  /** journal.maxBytes; past it, verdicts and images are kept only as per-minute aggregates. */
  budgetBytes: number;
  /** journal.maxBytes × journal.alertPercent / 100: the size at which the journal warns. */
  alertBytes: number;
}

/** Defaults of the budget options (appliance/config.ts has the same). */
export const DEFAULT_EVENTS_PER_MINUTE = 600;
export const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;
export const DEFAULT_ALERT_PERCENT = 80;
/** How often the size is measured at most (after commits and with the heartbeat). */
const MEASURE_EVERY_MS = 1_000;

/** How often the session's last sign of life is written while nothing else is. */
export const HEARTBEAT_MS = 10_000;
const DAY_MS = 86_400_000;

export interface JournalEvent {
  kind: JournalKind;
  /** Unix time in ms; the journal's clock by default. */
  time?: number;
  listener?: string | null;
  protocol?: string | null;
  /** block | monitor | error for verdicts and images; pass | fail for self-tests. */
  action?: string | null;
  category?: string | null;
  list?: string | null;
  /** Image match type: md5 | sha1 | sha256 | pdq. */
  match?: string | null;
  /** Short human note (an error code, an entry count); never list clear text. */
  detail?: string | null;
  url?: string | null;
  client?: string | null;
  /** The per-client budget's key when `client` is not given (never stored; see VerdictEvent.budgetKey). */
  budgetKey?: string | null;
}

/**
 * What an `admin` row records (issue 21, point 7), in its `action` column:
 * - `reload`: SIGHUP or POST /reload (detail: the trigger, the SHA-256 of the config file read, and
 *   whether it came into force or was refused and why);
 * - `list_swap`: a list's new version came into force (list, category; detail: the SHA-256 of the
 *   list body and its entries, never a line of it);
 * - `ca_change`: the interception CA in ca.dir is another one than the journal last recorded
 *   (detail: its SHA-256 fingerprint, and the one it replaced);
 * - `config`: the configuration a start came up with (detail: the SHA-256 of the config file's
 *   bytes, or that it runs on the embedded defaults), one row per start.
 * Retention pruning has rows of its own kind, `journal_prune`. All are leaves of the same tree.
 */
export const ADMIN_ACTIONS = ['reload', 'list_swap', 'ca_change', 'config'] as const;
export type AdminAction = (typeof ADMIN_ACTIONS)[number];
const ADMIN_SET = new Set<string>(ADMIN_ACTIONS);

/** Columns a count can be grouped by; `day` is the UTC date (YYYY-MM-DD). */
export type GroupColumn = 'category' | 'match' | 'list' | 'listener' | 'protocol' | 'action' | 'day';
const GROUP_SQL: Record<GroupColumn, string> = {
  category: 'category',
  match: 'match',
  list: 'list',
  listener: 'listener',
  protocol: 'protocol',
  action: 'action',
  day: "strftime('%Y-%m-%d', time / 1000, 'unixepoch')",
};

export interface CountQuery {
  /** Inclusive, ms. */
  from: number;
  /** Exclusive, ms. */
  to: number;
  kind: JournalKind;
  actions?: readonly string[];
  /** Leave out rows with this listener (the report leaves out 'selftest' canary verdicts). */
  excludeListener?: string;
  by: readonly GroupColumn[];
}

export interface CountRow {
  key: Partial<Record<GroupColumn, string | null>>;
  n: number;
}

export interface Journal {
  readonly path: string;
  readonly readOnly: boolean;
  /** Where a corrupt journal found at open was moved to, or null. */
  readonly setAside: string | null;
  /** Queue one event (never blocks on I/O; url/client dropped unless enabled). */
  record(e: JournalEvent): void;
  /** Write everything queued now, in one transaction, before returning (close, tests, drains). */
  flush(): void;
  /** Flush, write `stop`, close. Idempotent. */
  close(): void;
  /** Events with from <= time < to (ms), oldest first; optionally only some kinds. */
  query(from: number, to: number, kinds?: readonly JournalKind[]): JournalRow[];
  /** The newest event before `time` (ms) of one of `kinds`, or null. */
  lastBefore(time: number, kinds: readonly JournalKind[]): JournalRow | null;
  /** The newest `admin` row with this action (any time), or null: e.g. the CA last recorded. */
  lastAdmin(action: AdminAction): JournalRow | null;
  /**
   * Distinct site tags (journalObserver's keyed hashes) of own-row block verdicts in [from, to),
   * excluding self-test verdicts: in total and per category. Aggregate rows carry no tag.
   */
  distinctSites(from: number, to: number): { total: number; byCategory: Record<string, number>; untaggedEvents: number };
  /** Per list id, the time (ms) of its newest event before `time` of one of `kinds`. */
  lastTimePerList(time: number, kinds: readonly JournalKind[]): Map<string, number>;
  /** Grouped counts over the same rows `query` returns. */
  count(q: CountQuery): CountRow[];
  /** The open session (if any): when it started and its last sign of life (ms). */
  session(): { open: boolean; started: number | null; lastAlive: number | null };
  /** Aggregate rows and lost events in [from, to), for the report's "journal" section. */
  keeping(from: number, to: number): JournalKeeping;
  /** Count n events that could not be kept (e.g. a worker's queue was full): a journal_loss row. */
  noteLost(n: number, reason: LossReason): void;
  /**
   * Flush, then hash the rows since the last checkpoint and sign the tree (audit/journal-tree.ts).
   * Null when the journal has no identity (read-only, or opened without one).
   */
  checkpoint(reason: CheckpointReason): StoredCheckpoint | null;
  stats(): JournalStats;
}

export interface JournalKeeping {
  /** verdict and image rows that stand for more than their own event (per-minute aggregates). */
  aggregateRows: number;
  /** The events those rows stand for, by reason (they are in every figure, without URL or client). */
  aggregatedEvents: Record<string, number>;
  /** Events that could not be written, by reason (journal_loss rows): not in any figure. */
  lostEvents: Record<string, number>;
}

export interface JournalOptions {
  path: string;
  retentionDays: number;
  recordUrls: boolean;
  recordClients: boolean;
  /** The journal's clock (Unix ms): event times by default, and how long queued events have waited. */
  now?: () => number;
  /** Open for reading only (reports): no writes, no retention, no start/stop, corrupt = error. */
  readOnly?: boolean;
  /**
   * Write start (at open) and stop (at close) and keep the heartbeat (default true when writable).
   * While on, `record()` ignores start/stop events from callers: the journal owns them.
   */
  lifecycle?: boolean;
  /** Where warnings go (corrupt file set aside, failed flush, size alerts); default stderr. */
  warn?: (message: string) => void;
  /**
   * Block/monitor verdicts and image matches per UTC minute and key (kind, listener, protocol,
   * action, category, list, match, client when given) that get rows of their own; the rest of the
   * minute are counted in one aggregate row (audit/journal-budget.ts). Default 600.
   */
  eventsPerMinute?: number;
  /** Size budget in bytes (pages in use + WAL); past it, only aggregates. Default 512 MiB. */
  maxBytes?: number;
  /** Warn when the journal reaches this percentage of maxBytes. Default 80. */
  alertPercent?: number;
  /**
   * The appliance's identity: with it, the journal signs a checkpoint of its Merkle tree at open
   * (`start`, or `recovery` after a crash), at close (`stop`), every `checkpointIntervalMs` and
   * after pruning (audit/journal-tree.ts). Writable journals only.
   */
  identity?: Identity;
  /** How often a checkpoint is signed while running. Default 15 minutes. */
  checkpointIntervalMs?: number;
}

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 15 * 60_000;

const LIMITS = { short: 64, detail: 240, url: 2048, client: 64 } as const;

function cut(v: string | null | undefined, max: number): string | null {
  if (v === null || v === undefined) return null;
  const s = String(v);
  return s.length > max ? s.slice(0, max) : s;
}


const KIND_SET = new Set<string>(JOURNAL_KINDS);
/** The reason of an aggregate row, from its detail (journal-budget.ts writes them). */
const AGGREGATE_BY_DETAIL = new Map<string, string>(AGGREGATE_REASONS.map((r) => [aggregateDetail(r), r]));

export function openJournal(opts: JournalOptions): Journal {
  const now = opts.now ?? Date.now;
  const readOnly = opts.readOnly ?? false;
  const lifecycle = !readOnly && (opts.lifecycle ?? true);
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`safespot: ${m}\n`));
  const path = opts.path;
  const { db, setAside } = openJournalFile(path, readOnly, now, warn);
  const checkpointer = !readOnly && opts.identity ? createCheckpointer(db, opts.identity) : null;
  // A tree-aware prune whenever the file has a tree, identity or not (a plain DELETE would break it).
  const treeFile = !readOnly && hasTreeTables(db);

  const alive = readOnly ? null : db.prepare('UPDATE session SET last_alive = ? WHERE id = 1');
  const selectRange = db.prepare('SELECT * FROM events WHERE time >= ? AND time < ? ORDER BY time, id');
  // Every write transaction also moves the session's last sign of life (when the journal owns it).
  let writer: JournalWriter | null = null;
  const budget = readOnly
    ? null
    : createJournalBudget({
        db,
        eventsPerMinute: opts.eventsPerMinute ?? DEFAULT_EVENTS_PER_MINUTE,
        now,
        onDirty: () => writer?.poke(),
        sealedId: treeFile ? () => Number(db.prepare('SELECT last_id FROM checkpoints ORDER BY id DESC LIMIT 1').pluck().get() ?? 0) : undefined,
      });
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const alertBytes = Math.floor((maxBytes * (opts.alertPercent ?? DEFAULT_ALERT_PERCENT)) / 100);
  let sizeBytes = 0;
  let measuredAt = -Infinity;
  let overBudget = false;
  let alerting = false;
  const pageSize = Number(db.pragma('page_size', { simple: true }));
  /** Pages in use (free pages left by retention are reused first) plus the WAL. */
  const measure = (force = false): void => {
    if (readOnly || (!force && performance.now() - measuredAt < MEASURE_EVERY_MS)) return;
    measuredAt = performance.now();
    try {
      const pages = Number(db.pragma('page_count', { simple: true })) - Number(db.pragma('freelist_count', { simple: true }));
      let wal = 0;
      try {
        if (path !== ':memory:') wal = statSync(`${path}-wal`).size;
      } catch {
        // no WAL file yet
      }
      sizeBytes = pages * pageSize + wal;
    } catch {
      return; // a closed or broken file: the next flush reports it
    }
    const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
    if (sizeBytes >= maxBytes && !overBudget) {
      warn(
        `the audit journal ${path} uses ${mib(sizeBytes)}, its budget journal.maxBytes is ${mib(maxBytes)}: blocked requests and ` +
          'images are now kept only as per-minute counts (figures stay exact; no URL or client is recorded). ' +
          'Raise journal.maxBytes or lower journal.retentionDays.',
      );
    } else if (sizeBytes >= alertBytes && sizeBytes < maxBytes && !alerting) {
      warn(`the audit journal ${path} uses ${mib(sizeBytes)}, ${Math.round((100 * sizeBytes) / maxBytes)}% of journal.maxBytes (${mib(maxBytes)})`);
    }
    overBudget = sizeBytes >= maxBytes;
    alerting = sizeBytes >= alertBytes;
  };
  // Every write transaction also moves the session's last sign of life (when the journal owns it).
  writer = readOnly
    ? null
    : createJournalWriter({
        db,
        path,
        now,
        warn,
        alsoInTransaction: lifecycle ? () => alive!.run(now()) : undefined,
        budget: budget!,
        afterCommit: () => measure(),
      });
  let closed = false;
  const countSql = hasCountColumn(db) ? 'SUM(count)' : 'COUNT(*)';

  const toRow = (e: JournalEvent): PendingRow => ({
    time: Math.floor(e.time ?? now()),
    kind: e.kind,
    listener: cut(e.listener, LIMITS.short),
    protocol: cut(e.protocol, LIMITS.short),
    action: cut(e.action, LIMITS.short),
    category: cut(e.category, LIMITS.short),
    list: cut(e.list, LIMITS.short),
    match: cut(e.match, LIMITS.short),
    detail: cut(e.detail, LIMITS.detail),
    url: opts.recordUrls ? cut(e.url, LIMITS.url) : null,
    client: opts.recordClients ? cut(e.client, LIMITS.client) : null,
    count: 1,
  });

  const flush = (): void => {
    if (closed || !writer) return;
    writer.flush();
    // An explicit flush (close, drains, tests) also measures at once, whatever the last measure.
    measure(true);
  };

  let internal = false;
  const record = (e: JournalEvent): void => {
    if (!writer) throw new SafespotError('ERR_JOURNAL', `the audit journal ${path} is open read-only`);
    if (closed) return;
    if (!KIND_SET.has(e.kind)) throw new SafespotError('ERR_JOURNAL', `unknown journal event kind "${String(e.kind)}"`);
    // With lifecycle on, the journal itself writes start (at open) and stop (at close, or at the next
    // open after a crash); a caller's own start/stop would only duplicate them.
    if (lifecycle && (e.kind === 'start' || e.kind === 'stop') && !internal) return;
    if (e.kind === 'journal_prune' && !internal) throw new SafespotError('ERR_JOURNAL', "journal_prune rows are the journal's own");
    if (e.kind === 'journal_loss') throw new SafespotError('ERR_JOURNAL', 'journal_loss rows are the journal\'s own: use noteLost()');
    if (e.kind === 'admin' && !ADMIN_SET.has(String(e.action))) throw new SafespotError('ERR_JOURNAL', `unknown admin action "${String(e.action)}"`);
    const row = toRow(e);
    if (row.kind === 'verdict' || row.kind === 'image') {
      // The client keys the budget even when it is not stored (it stays in memory, for a minute).
      const forced: AggregateReason | null = overBudget ? 'budget' : writer.pending() >= MAX_QUEUE ? 'queue' : null;
      if (!budget!.admit(row, cut(e.client ?? e.budgetKey, LIMITS.client), forced)) return;
    }
    if (!writer.push(row)) budget!.lose(1, 'queue_full', row.time);
  };

  let heartbeat: NodeJS.Timeout | null = null;
  let retention: NodeJS.Timeout | null = null;
  const deleteOld = readOnly ? null : db.prepare('DELETE FROM events WHERE time < ?');
  let checkpointTimer: NodeJS.Timeout | null = null;
  const checkpoint = (reason: CheckpointReason): StoredCheckpoint | null => {
    if (!checkpointer || closed) return null;
    flush();
    return checkpointer.checkpoint(reason, now());
  };
  const safeCheckpoint = (reason: CheckpointReason): void => {
    try {
      checkpoint(reason);
    } catch (err) {
      warn(`audit journal checkpoint (${reason}) failed: ${(err as Error).message}`);
    }
  };
  const applyRetention = (): void => {
    try {
      const cutoff = now() - opts.retentionDays * DAY_MS;
      // A journal never signed (opened without an identity, or older than the tree) has no tree to keep.
      const signed = treeFile && db.prepare('SELECT 1 FROM checkpoints LIMIT 1').get() !== undefined;
      if (!signed) {
        deleteOld!.run(cutoff);
        return;
      }
      const pruned = pruneCovered(db, cutoff);
      if (!pruned) return;
      internal = true;
      record({ kind: 'journal_prune', detail: pruneDetail(pruned.rows, pruned.base) });
      internal = false;
      if (checkpointer) safeCheckpoint('prune');
    } catch (err) {
      internal = false;
      warn(`audit journal retention failed: ${(err as Error).message}`);
    }
  };

  if (!readOnly) {
    applyRetention();
    measure(true);
    retention = setInterval(() => {
      applyRetention();
      measure(true);
    }, DAY_MS);
    retention.unref();
  }
  if (lifecycle) {
    const insert = db.prepare(INSERT_EVENT_SQL);
    const s = db.prepare('SELECT open, started, last_alive FROM session WHERE id = 1').get() as
      | { open: number; started: number | null; last_alive: number | null }
      | undefined;
    const t = now();
    const recovered = s?.open === 1;
    db.transaction(() => {
      if (s && s.open === 1) {
        // The previous process never closed the journal: it died. Its last sign of life is the later
        // of its heartbeat and its last event; from there until now the appliance was down.
        const last = db.prepare('SELECT MAX(time) AS t FROM events').get() as { t: number | null };
        const lastSign = Math.max(s.last_alive ?? 0, last.t ?? 0, s.started ?? 0);
        insert.run({ ...toRow({ kind: 'stop', detail: 'unclean shutdown: time is the last sign of life' }), time: Math.min(lastSign, t) });
      }
      insert.run(toRow({ kind: 'start', time: t, detail: setAside ? `previous journal was corrupt, set aside` : null }));
      db.prepare('UPDATE session SET open = 1, started = ?, last_alive = ? WHERE id = 1').run(t, t);
    })();
    heartbeat = setInterval(() => {
      // While events are queued, the flush that writes them moves the last sign of life itself.
      measure();
      if (writer!.pending() > 0) return;
      try {
        alive!.run(now());
      } catch {
        // the next flush reports a broken file
      }
    }, HEARTBEAT_MS);
    heartbeat.unref();
    if (checkpointer) {
      // After a crash the rows since the last checkpoint are first signed now: `recovery` says so.
      safeCheckpoint(recovered ? 'recovery' : 'start');
      checkpointTimer = setInterval(() => safeCheckpoint('interval'), opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS);
      checkpointTimer.unref();
    }
  }

  const close = (): void => {
    if (closed) return;
    if (lifecycle) {
      internal = true;
      record({ kind: 'stop', detail: 'clean shutdown' });
      internal = false;
    }
    flush();
    if (checkpointTimer) clearInterval(checkpointTimer);
    if (lifecycle) safeCheckpoint('stop');
    closed = true;
    writer?.stop();
    if (heartbeat) clearInterval(heartbeat);
    if (retention) clearInterval(retention);
    try {
      if (lifecycle) db.prepare('UPDATE session SET open = 0, last_alive = ? WHERE id = 1').run(now());
    } finally {
      db.close();
    }
  };

  const sessionRow = (): { open: boolean; started: number | null; lastAlive: number | null } => {
    const s = db.prepare('SELECT open, started, last_alive FROM session WHERE id = 1').get() as
      | { open: number; started: number | null; last_alive: number | null }
      | undefined;
    return { open: s?.open === 1, started: s?.started ?? null, lastAlive: s?.last_alive ?? null };
  };

  return {
    path,
    readOnly,
    setAside,
    record,
    flush,
    close,
    query(from, to, kinds) {
      if (!kinds) return selectRange.all(from, to) as JournalRow[];
      if (kinds.length === 0) return [];
      // Uses the (kind, time) index: a report's list and state events do not read every verdict.
      const marks = kinds.map(() => '?').join(', ');
      return db
        .prepare(`SELECT * FROM events WHERE kind IN (${marks}) AND time >= ? AND time < ? ORDER BY time, id`)
        .all(...kinds, from, to) as JournalRow[];
    },
    lastBefore(time, kinds) {
      if (kinds.length === 0) return null;
      const marks = kinds.map(() => '?').join(', ');
      const row = db
        .prepare(`SELECT * FROM events WHERE time < ? AND kind IN (${marks}) ORDER BY time DESC, id DESC LIMIT 1`)
        .get(time, ...kinds) as JournalRow | undefined;
      return row ?? null;
    },
    lastAdmin(action) {
      const row = db.prepare("SELECT * FROM events WHERE kind = 'admin' AND action = ? ORDER BY time DESC, id DESC LIMIT 1").get(action) as JournalRow | undefined;
      return row ?? null;
    },
    distinctSites(from, to) {
      // Own rows only (count = 1 and detail a tag): an aggregate row's events have no tag of their own.
      const where = "kind = 'verdict' AND action = 'block' AND time >= ? AND time < ? AND (listener IS NULL OR listener <> 'selftest')";
      const tagged = `${where} AND detail LIKE '${SITE_TAG_PREFIX}%'`;
      const total = Number(db.prepare(`SELECT COUNT(DISTINCT detail) FROM events WHERE ${tagged}`).pluck().get(from, to) ?? 0);
      const byCategory: Record<string, number> = {};
      for (const r of db.prepare(`SELECT category, COUNT(DISTINCT detail) AS n FROM events WHERE ${tagged} GROUP BY category`).all(from, to) as Array<{ category: string | null; n: number }>) {
        byCategory[r.category ?? 'none'] = r.n;
      }
      const untagged = Number(db.prepare(`SELECT ${countSql} FROM events WHERE ${where} AND (detail IS NULL OR detail NOT LIKE '${SITE_TAG_PREFIX}%')`).pluck().get(from, to) ?? 0);
      return { total, byCategory, untaggedEvents: untagged };
    },
    lastTimePerList(time, kinds) {
      const out = new Map<string, number>();
      if (kinds.length === 0) return out;
      const marks = kinds.map(() => '?').join(', ');
      const rows = db
        .prepare(`SELECT list, MAX(time) AS t FROM events WHERE time < ? AND kind IN (${marks}) AND list IS NOT NULL GROUP BY list`)
        .all(time, ...kinds) as Array<{ list: string; t: number }>;
      for (const r of rows) out.set(r.list, r.t);
      return out;
    },
    count(q) {
      const cols = q.by.map((c) => GROUP_SQL[c]);
      const where = ['time >= ?', 'time < ?', 'kind = ?'];
      const params: unknown[] = [q.from, q.to, q.kind];
      if (q.actions && q.actions.length > 0) {
        where.push(`action IN (${q.actions.map(() => '?').join(', ')})`);
        params.push(...q.actions);
      }
      if (q.excludeListener !== undefined) {
        where.push('(listener IS NULL OR listener <> ?)');
        params.push(q.excludeListener);
      }
      // Each row stands for `count` events (aggregates: audit/journal-budget.ts).
      const select = cols.map((c, i) => `${c} AS k${i}`).concat(`${countSql} AS n`).join(', ');
      const group = cols.length ? ` GROUP BY ${cols.map((_, i) => `k${i}`).join(', ')} ORDER BY ${cols.map((_, i) => `k${i}`).join(', ')}` : '';
      const rows = db.prepare(`SELECT ${select} FROM events WHERE ${where.join(' AND ')}${group}`).all(...params) as Array<
        Record<string, string | number | null>
      >;
      return rows
        .filter((r) => Number(r.n) > 0)
        .map((r) => {
          const key: Partial<Record<GroupColumn, string | null>> = {};
          q.by.forEach((c, i) => {
            const v = r[`k${i}`];
            key[c] = v === null || v === undefined ? null : String(v);
          });
          return { key, n: Number(r.n) };
        });
    },
    session: sessionRow,
    keeping(from, to) {
      const out: JournalKeeping = { aggregateRows: 0, aggregatedEvents: {}, lostEvents: {} };
      if (countSql === 'COUNT(*)') return out; // a version-1 journal has neither
      const agg = db
        .prepare(
          `SELECT detail, COUNT(*) AS r, SUM(count) AS n FROM events WHERE kind IN ('verdict', 'image') AND detail LIKE 'aggregate:%' AND time >= ? AND time < ? GROUP BY detail`,
        )
        .all(from, to) as Array<{ detail: string; r: number; n: number }>;
      for (const a of agg) {
        out.aggregateRows += a.r;
        const reason = AGGREGATE_BY_DETAIL.get(a.detail) ?? 'other';
        out.aggregatedEvents[reason] = (out.aggregatedEvents[reason] ?? 0) + a.n;
      }
      const lost = db
        .prepare(`SELECT detail, SUM(count) AS n FROM events WHERE kind = 'journal_loss' AND time >= ? AND time < ? GROUP BY detail`)
        .all(from, to) as Array<{ detail: string | null; n: number }>;
      for (const l of lost) out.lostEvents[l.detail ?? 'other'] = (out.lostEvents[l.detail ?? 'other'] ?? 0) + l.n;
      return out;
    },
    checkpoint,
    noteLost(n, reason) {
      if (!budget || closed) return;
      budget.lose(n, reason, now());
    },
    stats() {
      const w = writer?.stats() ?? { pending: 0, written: 0, dropped: 0, flushes: 0, failedFlushes: 0, lastFlushMs: 0 };
      const b = budget?.stats() ?? { aggregated: { rate: 0, budget: 0, queue: 0 }, lost: { queue_full: 0, worker_queue: 0, overflow: 0 } };
      const dropped = Object.values(b.lost).reduce((a, n) => a + n, 0);
      return { ...w, ...b, dropped, sizeBytes, budgetBytes: readOnly ? 0 : maxBytes, alertBytes: readOnly ? 0 : alertBytes };
    },
  };
}

/** How a verdict row's detail holds its site tag (audit/site-tag.ts): `site:` + 16 hex digits. */
export const SITE_TAG_PREFIX = 'site:';

/**
 * The journal's Observer: block and monitor verdicts and image matches (never allows, never
 * connection counts). url and client are passed on and kept only if the journal is configured to.
 * With `siteTag` (audit/site-tag.ts), a verdict's `site` is kept only as its keyed hash, in the
 * row's detail, so that a report can count distinct blocked sites without any host on disk.
 */
export function journalObserver(j: Pick<Journal, 'record'>, opts: { siteTag?: (site: string) => string | null } = {}): Observer {
  const tag = opts.siteTag;
  return {
    verdict(e) {
      if (e.action !== 'block' && e.action !== 'monitor') return;
      const t = tag !== undefined && e.site !== undefined && e.listener !== 'selftest' ? tag(e.site) : null;
      j.record({
        kind: 'verdict',
        listener: e.listener,
        protocol: e.protocol,
        action: e.action,
        category: e.category,
        list: e.list,
        detail: t === null ? null : SITE_TAG_PREFIX + t,
        url: e.url ?? null,
        client: e.client ?? null,
        budgetKey: e.budgetKey ?? null,
      });
    },
    imageBlocked(e) {
      j.record({ kind: 'image', action: e.action, category: e.category, list: e.list, match: e.match });
    },
    clientHello() {},
    upstreamError() {},
    limitHit() {},
    connectionOpened() {},
    connectionClosed() {},
    imageScanned() {},
  };
}
