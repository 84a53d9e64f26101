/**
 * The journal's file: opening it (WAL, quick_check), setting a corrupt one aside, and the schema
 * (the `events` and `session` tables and their migration). The writer (audit/journal-writer.ts) and
 * the public journal (audit/journal.ts) build on the handle returned here.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { SafespotError } from '../policy/errors.js';

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
  // Events the journal could not keep (a worker's full queue, no room for one more aggregate);
  // `count` says how many, `detail` why. See audit/journal-budget.ts.
  'journal_loss',
  // Retention removed the oldest rows of the tree; detail says how many and the new tree base
  // (audit/journal-tree.ts), so a verifier can tell pruning from deletion.
  'journal_prune',
  // An operator's action on the appliance (issue 21, point 7): `action` says which (ADMIN_ACTIONS
  // of audit/journal.ts), `detail` the digests that identify what came into force, never list text.
  'admin',
] as const;
export type JournalKind = (typeof JOURNAL_KINDS)[number];

/** One row of the `events` table (see migrate() below and docs/audit.md). */
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
  /**
   * How many events the row stands for: 1 for an event of its own; more for a per-minute aggregate
   * (detail `aggregate: …`, time = the start of its UTC minute) or a `journal_loss` row. Every
   * figure of a report is a SUM of this column, never a COUNT of rows.
   */
  count: number;
}

export type Db = Database.Database;

/** Insert one row of `events` (named parameters: a JournalRow without its id). */
export const INSERT_EVENT_SQL = `INSERT INTO events (time, kind, listener, protocol, action, category, list, match, detail, url, client, count)
  VALUES (@time, @kind, @listener, @protocol, @action, @category, @list, @match, @detail, @url, @client, @count)`;

/** Add n events to an aggregate row written earlier (audit/journal-budget.ts). */
export const ADD_TO_ROW_SQL = 'UPDATE events SET count = count + ? WHERE id = ?';

/**
 * 2: the `count` column (issue 22, finding 8). A safespot that knows only version 1 refuses to
 * write a version-2 file (see migrate), so no old writer adds rows it would count wrongly.
 * 3: the Merkle tree's `checkpoints` and `tree_base` tables (issue 21, audit/journal-tree.ts). A
 * version-2 writer would add to aggregate rows a checkpoint already covers: it refuses version 3.
 */
const SCHEMA_VERSION = 3;

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'));
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * SQLite's page cache for the journal, in KiB. better-sqlite3 builds SQLite with a 16 MB default
 * (SQLITE_DEFAULT_CACHE_SIZE=-16000), which a journal fills only as it grows: about 1 MiB of RSS
 * per 10,000 events until ~150,000, months of a venue's blocks, so RSS looks like a slow leak on a
 * small router. Appends touch the last pages of the table and its two indexes, and reports read
 * ranges the OS page cache serves well: 2 MiB is enough.
 */
export const JOURNAL_CACHE_KIB = 2048;

function openDb(path: string, readOnly: boolean): Db {
  const db = new Database(path, readOnly ? { readonly: true, fileMustExist: true } : {});
  try {
    // Before quick_check, which reads every page of the file.
    db.pragma(`cache_size = -${JOURNAL_CACHE_KIB}`);
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
  if (current < 2) {
    db.transaction(() => {
      // Existing rows are one event each; the CHECK holds for them by the default.
      db.exec('ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1)');
      db.prepare('INSERT INTO schema_version (version, applied) VALUES (?, ?)').run(2, now);
    })();
  }
  if (current < 3) {
    db.transaction(() => {
      // A checkpoint: the signed note, and (unsigned, only to resume hashing) the id of the last row
      // in its tree and the tree's frontier. Verification never trusts last_id or frontier.
      db.exec(`
        CREATE TABLE checkpoints (
          id INTEGER PRIMARY KEY,
          size INTEGER NOT NULL,
          last_id INTEGER NOT NULL,
          time INTEGER NOT NULL,
          note TEXT NOT NULL,
          frontier BLOB NOT NULL
        ) STRICT;
        CREATE TABLE tree_base (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          size INTEGER NOT NULL,
          last_id INTEGER NOT NULL,
          frontier BLOB NOT NULL
        ) STRICT;
      `);
      db.prepare('INSERT INTO schema_version (version, applied) VALUES (?, ?)').run(3, now);
    })();
  }
}

/** Whether the file has the tree's tables (a version-2 journal, read by a report, has not). */
export function hasTreeTables(db: Db): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'").get() !== undefined;
}

/** Whether the file has the `count` column (a version-1 journal, read by a report, has not). */
export function hasCountColumn(db: Db): boolean {
  const cols = db.prepare('PRAGMA table_info(events)').all() as Array<{ name: string }>;
  return cols.some((c) => c.name === 'count');
}

export interface OpenedFile {
  db: Db;
  /** Where a corrupt journal found at open was moved to, or null. */
  setAside: string | null;
}

/**
 * Open the journal file. Writable: create its folder, set a corrupt file aside (with a warning) and
 * start a fresh one, `synchronous=FULL`, migrate the schema. Read-only: never create or move
 * anything; a missing, corrupt or foreign file is an ERR_JOURNAL.
 */
export function openJournalFile(path: string, readOnly: boolean, now: () => number, warn: (m: string) => void): OpenedFile {
  let setAside: string | null = null;
  try {
    if (!readOnly && path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    let db: Db;
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
    try {
      if (readOnly) {
        const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").get();
        if (!has) throw new Error('not a safespot journal (no events table)');
      } else {
        // Each commit is fsynced: the loss promise holds for a power cut, not only for a killed process.
        db.pragma('synchronous = FULL');
        migrate(db, now());
      }
    } catch (err) {
      db.close();
      throw err;
    }
    return { db, setAside };
  } catch (err) {
    if (err instanceof SafespotError) throw err;
    const hint = readOnly && isCorruption(err) ? ' (the file is corrupt; `safespot serve` sets it aside on its next start)' : '';
    throw new SafespotError('ERR_JOURNAL', `cannot open the audit journal ${path}: ${(err as Error).message}${hint}`, { cause: err });
  }
}
