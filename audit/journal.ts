/**
 * The durable audit journal: one SQLite file (better-sqlite3) that an auditor's period report is
 * computed from (audit/report.ts).
 *
 * Promise (docs/audit.md): a clean `close()` loses nothing; a `kill -9` loses at most the last
 * second. How: `record()` only pushes onto an in-memory queue (no I/O on the proxy's hot path); a
 * timer flushes the queue in one transaction at most FLUSH_INTERVAL_MS after the first queued event.
 * WAL mode with `synchronous=FULL`: each flush commit is fsynced, so the promise holds for a power
 * cut too, not only for a killed process. That costs one fsync per flush (at most four a second,
 * and only while blocks happen: allows are never journaled), which we accept for evidence.
 *
 * Availability evidence: the journal writes `start` on open and `stop` on close itself, and keeps a
 * heartbeat (`session.last_alive`, every HEARTBEAT_MS). When it opens and finds the previous
 * session never closed (a crash, kill -9, power cut), it writes the missing `stop` at the last sign
 * of life, so a report counts the time the appliance was down as down.
 *
 * Privacy: `url` and `client` are stored only when recordUrls / recordClients are on; `record()`
 * drops them otherwise, whoever calls it. `detail` is a short human note and must never hold list
 * clear text (callers pass list ids, counts and error codes).
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { SafespotError } from '../policy/errors.js';
import type { Observer } from './metrics.js';

export const JOURNAL_KINDS = [
  'verdict',
  'image',
  'list_load',
  'list_refresh',
  'list_failure',
  'selftest',
  'start',
  'stop',
  'filtering_inactive',
  'filtering_active',
] as const;
export type JournalKind = (typeof JOURNAL_KINDS)[number];

/** Most events ever held in memory; past it, new events are counted as dropped (see stats()). */
export const MAX_QUEUE = 100_000;
/** Longest time an event waits in memory before its transaction commits. */
export const FLUSH_INTERVAL_MS = 250;
/** How often the session's last sign of life is written while nothing else is. */
export const HEARTBEAT_MS = 10_000;
const DAY_MS = 86_400_000;
const SCHEMA_VERSION = 1;

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
}

export interface JournalRow {
  id: number;
  time: number;
  kind: JournalKind;
  listener: string | null;
  protocol: string | null;
  action: string | null;
  category: string | null;
  list: string | null;
  match: string | null;
  detail: string | null;
  url: string | null;
  client: string | null;
}

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

export interface JournalStats {
  pending: number;
  written: number;
  dropped: number;
  flushes: number;
  failedFlushes: number;
  /** Duration of the last flush in ms (the event loop is blocked for this long). */
  lastFlushMs: number;
}

export interface Journal {
  readonly path: string;
  readonly readOnly: boolean;
  /** Where a corrupt journal found at open was moved to, or null. */
  readonly setAside: string | null;
  /** Queue one event (never blocks on I/O; url/client dropped unless enabled). */
  record(e: JournalEvent): void;
  /** Write everything queued now, in one transaction. */
  flush(): void;
  /** Flush, write `stop`, close. Idempotent. */
  close(): void;
  /** Events with from <= time < to (ms), oldest first; optionally only some kinds. */
  query(from: number, to: number, kinds?: readonly JournalKind[]): JournalRow[];
  /** The newest event before `time` (ms) of one of `kinds`, or null. */
  lastBefore(time: number, kinds: readonly JournalKind[]): JournalRow | null;
  /** Per list id, the time (ms) of its newest event before `time` of one of `kinds`. */
  lastTimePerList(time: number, kinds: readonly JournalKind[]): Map<string, number>;
  /** Grouped counts over the same rows `query` returns. */
  count(q: CountQuery): CountRow[];
  /** The open session (if any): when it started and its last sign of life (ms). */
  session(): { open: boolean; started: number | null; lastAlive: number | null };
  stats(): JournalStats;
}

export interface JournalOptions {
  path: string;
  retentionDays: number;
  recordUrls: boolean;
  recordClients: boolean;
  now?: () => number;
  /** Open for reading only (reports): no writes, no retention, no start/stop, corrupt = error. */
  readOnly?: boolean;
  /**
   * Write start (at open) and stop (at close) and keep the heartbeat (default true when writable).
   * While on, `record()` ignores start/stop events from callers: the journal owns them.
   */
  lifecycle?: boolean;
  /** Where warnings go (corrupt file set aside, failed flush); default stderr. */
  warn?: (message: string) => void;
}

const LIMITS = { short: 64, detail: 240, url: 2048, client: 64 } as const;

function cut(v: string | null | undefined, max: number): string | null {
  if (v === null || v === undefined) return null;
  const s = String(v);
  return s.length > max ? s.slice(0, max) : s;
}

const KIND_SET = new Set<string>(JOURNAL_KINDS);

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'));
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

type Db = Database.Database;

function openDb(path: string, readOnly: boolean): Db {
  const db = new Database(path, readOnly ? { readonly: true, fileMustExist: true } : {});
  try {
    if (!readOnly) db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 2000');
    const check = db.pragma('quick_check', { simple: false }) as Array<Record<string, unknown>>;
    const results = check.map((r) => String(Object.values(r)[0]));
    if (results.length !== 1 || results[0] !== 'ok') {
      // quick_check reports one problem per line, hundreds on a damaged file: keep the message to one
      // short line so the operational log stays one JSON line per event.
      const summary = results.slice(0, 3).join('; ').replace(/\s+/g, ' ').slice(0, 300);
      const err = new Error(`quick_check: ${summary}${results.length > 3 ? ` (and ${results.length - 3} more)` : ''}`) as Error & { code: string };
      err.code = 'SQLITE_CORRUPT';
      throw err;
    }
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Move a corrupt journal (and its WAL/SHM side files) aside; returns the new name. */
function setAsideCorrupt(path: string, now: number): string {
  let target = `${path}.corrupt-${stamp(now)}`;
  for (let i = 1; existsSync(target); i++) target = `${path}.corrupt-${stamp(now)}-${i}`;
  renameSync(path, target);
  for (const side of ['-wal', '-shm']) {
    if (existsSync(path + side)) renameSync(path + side, target + side);
  }
  return target;
}

function migrate(db: Db, now: number): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied INTEGER NOT NULL)`);
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null };
  const current = row.v ?? 0;
  if (current > SCHEMA_VERSION) {
    throw new SafespotError(
      'ERR_JOURNAL',
      `the journal has schema version ${current}, newer than this safespot understands (${SCHEMA_VERSION}); use a newer safespot`,
    );
  }
  if (current < 1) {
    db.transaction(() => {
      db.exec(`
        CREATE TABLE events (
          id INTEGER PRIMARY KEY,
          time INTEGER NOT NULL,
          kind TEXT NOT NULL,
          listener TEXT, protocol TEXT, action TEXT, category TEXT, list TEXT, match TEXT,
          detail TEXT, url TEXT, client TEXT
        ) STRICT;
        CREATE INDEX events_time ON events (time);
        CREATE INDEX events_kind_time ON events (kind, time);
        CREATE TABLE session (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          open INTEGER NOT NULL,
          started INTEGER,
          last_alive INTEGER
        ) STRICT;
        INSERT INTO session (id, open) VALUES (1, 0);
      `);
      db.prepare('INSERT INTO schema_version (version, applied) VALUES (?, ?)').run(1, now);
    })();
  }
}

export function openJournal(opts: JournalOptions): Journal {
  const now = opts.now ?? Date.now;
  const readOnly = opts.readOnly ?? false;
  const lifecycle = !readOnly && (opts.lifecycle ?? true);
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`safespot: ${m}\n`));
  const path = opts.path;
  let setAside: string | null = null;

  let db: Db;
  try {
    if (!readOnly && path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    try {
      db = openDb(path, readOnly);
    } catch (err) {
      if (readOnly || !isCorruption(err) || path === ':memory:') throw err;
      setAside = setAsideCorrupt(path, now());
      warn(
        `the audit journal ${path} is corrupt (${(err as Error).message}); it was moved to ${setAside} ` +
          'and a new journal was started. Keep the old file: it is evidence.',
      );
      db = openDb(path, false);
    }
    if (readOnly) {
      const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").get();
      if (!has) throw new Error('not a safespot journal (no events table)');
    } else {
      db.pragma('synchronous = FULL');
      migrate(db, now());
    }
  } catch (err) {
    if (err instanceof SafespotError) throw err;
    const hint = readOnly && isCorruption(err) ? ' (the file is corrupt; `safespot serve` sets it aside on its next start)' : '';
    throw new SafespotError('ERR_JOURNAL', `cannot open the audit journal ${path}: ${(err as Error).message}${hint}`, { cause: err });
  }

  const insert = readOnly
    ? null
    : db.prepare(
        `INSERT INTO events (time, kind, listener, protocol, action, category, list, match, detail, url, client)
         VALUES (@time, @kind, @listener, @protocol, @action, @category, @list, @match, @detail, @url, @client)`,
      );
  const alive = readOnly ? null : db.prepare('UPDATE session SET last_alive = ? WHERE id = 1');
  const selectRange = db.prepare('SELECT * FROM events WHERE time >= ? AND time < ? ORDER BY time, id');

  type Pending = Omit<JournalRow, 'id'>;
  let queue: Pending[] = [];
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const stats: JournalStats = { pending: 0, written: 0, dropped: 0, flushes: 0, failedFlushes: 0, lastFlushMs: 0 };
  let lastFailureWarned = 0;

  const writeBatch = readOnly
    ? null
    : db.transaction((rows: Pending[], aliveAt: number) => {
        for (const r of rows) insert!.run(r);
        if (lifecycle) alive!.run(aliveAt);
      });

  const toRow = (e: JournalEvent): Pending => ({
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
  });

  const flush = (): void => {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (readOnly || closed || queue.length === 0) return;
    const batch = queue;
    queue = [];
    const t0 = performance.now();
    try {
      writeBatch!(batch, now());
      stats.written += batch.length;
      stats.flushes++;
    } catch (err) {
      stats.failedFlushes++;
      // Keep the events for the next try (disk full, locked file), within the memory bound.
      const room = MAX_QUEUE - queue.length;
      const kept = batch.slice(0, Math.max(0, room));
      stats.dropped += batch.length - kept.length;
      queue = kept.concat(queue);
      if (now() - lastFailureWarned > 60_000) {
        lastFailureWarned = now();
        warn(`cannot write the audit journal ${path}: ${(err as Error).message}; ${queue.length} event(s) held in memory`);
      }
      schedule();
    } finally {
      stats.lastFlushMs = performance.now() - t0;
    }
  };

  function schedule(): void {
    if (timer || closed) return;
    timer = setTimeout(flush, FLUSH_INTERVAL_MS);
    timer.unref();
  }

  let internal = false;
  const record = (e: JournalEvent): void => {
    if (readOnly) throw new SafespotError('ERR_JOURNAL', `the audit journal ${path} is open read-only`);
    if (closed) return;
    if (!KIND_SET.has(e.kind)) throw new SafespotError('ERR_JOURNAL', `unknown journal event kind "${String(e.kind)}"`);
    // With lifecycle on, the journal itself writes start (at open) and stop (at close, or at the next
    // open after a crash); a caller's own start/stop would only duplicate them.
    if (lifecycle && (e.kind === 'start' || e.kind === 'stop') && !internal) return;
    if (queue.length >= MAX_QUEUE) {
      stats.dropped++;
      return;
    }
    queue.push(toRow(e));
    schedule();
  };

  let heartbeat: NodeJS.Timeout | null = null;
  let retention: NodeJS.Timeout | null = null;
  const deleteOld = readOnly ? null : db.prepare('DELETE FROM events WHERE time < ?');
  const applyRetention = (): void => {
    try {
      deleteOld!.run(now() - opts.retentionDays * DAY_MS);
    } catch (err) {
      warn(`audit journal retention failed: ${(err as Error).message}`);
    }
  };

  if (!readOnly) {
    applyRetention();
    retention = setInterval(applyRetention, DAY_MS);
    retention.unref();
  }
  if (lifecycle) {
    const s = db.prepare('SELECT open, started, last_alive FROM session WHERE id = 1').get() as
      | { open: number; started: number | null; last_alive: number | null }
      | undefined;
    const t = now();
    db.transaction(() => {
      if (s && s.open === 1) {
        // The previous process never closed the journal: it died. Its last sign of life is the later
        // of its heartbeat and its last event; from there until now the appliance was down.
        const last = db.prepare('SELECT MAX(time) AS t FROM events').get() as { t: number | null };
        const lastSign = Math.max(s.last_alive ?? 0, last.t ?? 0, s.started ?? 0);
        insert!.run({ ...toRow({ kind: 'stop', detail: 'unclean shutdown: time is the last sign of life' }), time: Math.min(lastSign, t) });
      }
      insert!.run(toRow({ kind: 'start', time: t, detail: setAside ? `previous journal was corrupt, set aside` : null }));
      db.prepare('UPDATE session SET open = 1, started = ?, last_alive = ? WHERE id = 1').run(t, t);
    })();
    heartbeat = setInterval(() => {
      if (queue.length > 0) flush();
      else {
        try {
          alive!.run(now());
        } catch {
          // the next flush reports a broken file
        }
      }
    }, HEARTBEAT_MS);
    heartbeat.unref();
  }

  const close = (): void => {
    if (closed) return;
    if (lifecycle) {
      internal = true;
      record({ kind: 'stop', detail: 'clean shutdown' });
      internal = false;
    }
    flush();
    closed = true;
    if (heartbeat) clearInterval(heartbeat);
    if (retention) clearInterval(retention);
    try {
      if (lifecycle) db.prepare('UPDATE session SET open = 0, last_alive = ? WHERE id = 1').run(now());
    } finally {
      db.close();
    }
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
      const select = cols.map((c, i) => `${c} AS k${i}`).concat('COUNT(*) AS n').join(', ');
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
    session() {
      const s = db.prepare('SELECT open, started, last_alive FROM session WHERE id = 1').get() as
        | { open: number; started: number | null; last_alive: number | null }
        | undefined;
      return { open: s?.open === 1, started: s?.started ?? null, lastAlive: s?.last_alive ?? null };
    },
    stats: () => ({ ...stats, pending: queue.length }),
  };
}

/**
 * The journal's Observer: block and monitor verdicts and image matches (never allows, never
 * connection counts). url and client are passed on and kept only if the journal is configured to.
 */
export function journalObserver(j: Pick<Journal, 'record'>): Observer {
  return {
    verdict(e) {
      if (e.action !== 'block' && e.action !== 'monitor') return;
      j.record({
        kind: 'verdict',
        listener: e.listener,
        protocol: e.protocol,
        action: e.action,
        category: e.category,
        list: e.list,
        url: e.url ?? null,
        client: e.client ?? null,
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
