/**
 * Making a signed period report (issue 21, points 2 and 3), and computing one again from a journal
 * for `audit verify REPORT --journal FILE`:
 *
 * 1. `checkpointNow`: sign a `report` checkpoint of the journal's tree from this process, so the
 *    report's covering checkpoint includes the period's end. Safe while `safespot serve` writes the
 *    same file: it is one IMMEDIATE transaction (SQLite's write lock; the serve's flushes wait on
 *    busy_timeout and are retried, never lost), the rows it hashes are read inside it, and the
 *    serve's aggregate rows read the newest checkpoint inside their own write transaction before
 *    growing a row in place (audit/journal-budget.ts), so no row a checkpoint covers ever changes.
 * 2. `coveredCopy`: a point-in-time copy of the journal (VACUUM INTO) cut to the first `size` leaves
 *    of the tree: every figure is computed from exactly the rows the checkpoint signs, both when the
 *    report is made and when it is verified, so rows the appliance flushed a moment after the
 *    checkpoint do not make a report and its verification disagree.
 * 3. `reportFromJournal`: the report from such a copy and a `ReportBasis` (audit/report-sign.ts).
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SafespotError } from '../policy/errors.js';
import { parseCheckpoint, type CheckpointReason } from './checkpoint.js';
import type { Identity, PublicIdentity } from './identity.js';
import { hasTreeTables } from './journal-file.js';
import { openJournal } from './journal.js';
import { createCheckpointer, treeBase } from './journal-tree.js';
import { computeReport, loadReportInput, type Report } from './report.js';
import type { ReportBasis, ReportCheckpointRef } from './report-sign.js';

/** A checkpoint a report is made against: its reference, and its signed note. */
export interface CoveringCheckpoint extends ReportCheckpointRef {
  note: string;
}

/** How long `checkpointNow` waits for the appliance's write lock. */
const LOCK_WAIT_MS = 10_000;

function noteRef(note: string): CoveringCheckpoint {
  const text = note.slice(0, note.lastIndexOf('\n\n') + 1);
  const c = parseCheckpoint(text);
  if (!c.ok) throw new SafespotError('ERR_JOURNAL', `the journal holds a checkpoint that does not parse: ${c.reason}`);
  return { size: c.value.size, root: c.value.root, time: c.value.time, reason: c.value.reason, note };
}

/**
 * Sign a `report` checkpoint now. Null when the journal has no tree (written by a safespot before
 * signed checkpoints). Throws ERR_JOURNAL when the file cannot be written (the caller may then use
 * `newestCheckpoint`).
 */
export function checkpointNow(path: string, identity: Identity, now: () => number = Date.now, reason: CheckpointReason = 'report'): CoveringCheckpoint | null {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true });
  } catch (err) {
    throw new SafespotError('ERR_JOURNAL', `cannot open the journal ${path} to sign a checkpoint: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.pragma(`busy_timeout = ${LOCK_WAIT_MS}`);
    db.pragma('synchronous = FULL');
    if (!hasTreeTables(db)) return null;
    const version = Number(db.prepare('SELECT MAX(version) FROM schema_version').pluck().get() ?? 0);
    if (version !== 3) throw new SafespotError('ERR_JOURNAL', `the journal ${path} has schema version ${version}; this safespot signs version 3`);
    const stored = createCheckpointer(db, identity).checkpoint(reason, now());
    return noteRef(stored.note);
  } catch (err) {
    if (err instanceof SafespotError) throw err;
    throw new SafespotError('ERR_JOURNAL', `cannot sign a checkpoint in ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
}

/** The newest checkpoint already in the journal (a read-only file), or null. */
export function newestCheckpoint(path: string): CoveringCheckpoint | null {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    if (!hasTreeTables(db)) return null;
    const note = db.prepare('SELECT note FROM checkpoints ORDER BY id DESC LIMIT 1').pluck().get() as string | undefined;
    return note === undefined ? null : noteRef(note);
  } finally {
    db.close();
  }
}

export interface CoveredCopy {
  path: string;
  /** The journal's session in the copy (when the copy was taken). */
  session: { open: boolean; lastAlive: number | null };
  dispose(): void;
}

/**
 * A copy of the journal holding only the first `size` leaves of its tree (the pruned base and the
 * rows after it, in id order). Throws ERR_JOURNAL when the journal does not hold that many, or has
 * pruned some of them.
 */
export function coveredCopy(path: string, size: number): CoveredCopy {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-report-'));
  const copy = join(dir, 'covered.db');
  const dispose = () => rmSync(dir, { recursive: true, force: true });
  try {
    const src = new Database(path, { readonly: true, fileMustExist: true });
    try {
      src.pragma('busy_timeout = 2000');
      src.prepare('VACUUM INTO ?').run(copy);
    } finally {
      src.close();
    }
    const db = new Database(copy);
    try {
      const base = hasTreeTables(db) ? treeBase(db) : { size: 0, lastId: 0 };
      const keep = size - base.size;
      if (keep < 0) throw new SafespotError('ERR_JOURNAL', `the journal has pruned rows the checkpoint of ${size} covers (its tree starts at ${base.size})`);
      const have = Number(db.prepare('SELECT COUNT(*) FROM events WHERE id > ?').pluck().get(base.lastId));
      if (have < keep) throw new SafespotError('ERR_JOURNAL', `the journal holds ${base.size + have} leaves, fewer than the ${size} the checkpoint covers`);
      const cut = db.prepare('SELECT id FROM events WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?').pluck().get(base.lastId, keep) as number | undefined;
      if (cut !== undefined) db.prepare('DELETE FROM events WHERE id >= ?').run(cut);
      const s = db.prepare('SELECT open, last_alive FROM session WHERE id = 1').get() as { open: number; last_alive: number | null } | undefined;
      return { path: copy, session: { open: s?.open === 1, lastAlive: s?.last_alive ?? null }, dispose };
    } finally {
      db.close();
    }
  } catch (err) {
    dispose();
    if (err instanceof SafespotError) throw err;
    throw new SafespotError('ERR_JOURNAL', `cannot copy the journal ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The report that a journal (a covered copy, or the live file when unsigned) and a basis give. */
export function reportFromJournal(
  journalPath: string,
  basis: ReportBasis,
  extra: { key?: PublicIdentity; checkpoint?: CoveringCheckpoint | null; withNote?: boolean } = {},
): Report {
  const journal = openJournal({ path: journalPath, retentionDays: 36500, recordUrls: false, recordClients: false, readOnly: true });
  try {
    const input = loadReportInput(journal, {
      from: basis.from,
      to: basis.to,
      now: () => basis.generatedAt,
      categories: basis.categories,
      lists: basis.lists,
    });
    const cp = extra.checkpoint ?? null;
    return computeReport({
      ...input,
      journalPath: basis.journal,
      session: basis.session,
      generator: basis.generator,
      appliance: extra.key ? { site: basis.site, key: extra.key.verifierKey, fingerprint: extra.key.fingerprint } : null,
      checkpoint: cp
        ? {
            size: cp.size,
            root: cp.root.toString('base64'),
            time: new Date(cp.time).toISOString(),
            reason: cp.reason,
            ...(extra.withNote ? { note: cp.note } : {}),
          }
        : null,
    });
  } finally {
    journal.close();
  }
}
