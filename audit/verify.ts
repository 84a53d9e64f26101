/**
 * Offline verification of a journal against the appliance's public key (issue 21, `safespot audit
 * verify --key KEY --journal FILE`): no network, no config, nothing from the appliance but the file.
 *
 * What holds when it says ok:
 * 1. every checkpoint's note is signed by the key, names the key as its origin, and checkpoints
 *    never shrink the tree or go back in time;
 * 2. the rows, hashed in id order (audit/checkpoint.ts) from the tree's base, give every
 *    checkpoint's root at its size: no covered row was edited, deleted, inserted or moved;
 * 3. a pruned base is one the journal itself recorded (a covered `journal_prune` row names it), and
 *    no row sits before it;
 * 4. every checkpoint an auditor brings from elsewhere (a report's) is in the journal: its size is
 *    within the tree and the root there is its root. A journal rolled back to an older copy fails
 *    here, since on its own an older copy is a perfectly good shorter journal.
 * Rows after the last checkpoint are not covered by any signature: they are counted and shown
 * (`uncovered`), and so are rows first signed by a `recovery` checkpoint after a crash.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import Database from 'better-sqlite3';
import { SafespotError } from '../policy/errors.js';
import { parseCheckpoint, rowLeaf, type CheckpointBody } from './checkpoint.js';
import { verifyNote, type PublicIdentity } from './identity.js';
import { hasTreeTables, type JournalRow } from './journal-file.js';
import { PRUNE_DETAIL, treeBase } from './journal-tree.js';
import { Frontier, leafHash } from './merkle.js';

export interface VerifiedCheckpoint extends CheckpointBody {
  /** Row of the checkpoints table. */
  id: number;
}

export interface JournalVerification {
  ok: boolean;
  /** The first thing that does not hold, in words (null when ok). */
  failure: string | null;
  checkpoints: number;
  /** Rows in the file. */
  rows: number;
  /** Leaves of the tree: the pruned base and the rows. */
  treeSize: number;
  /** Leaves pruned by retention (their rows are gone; their hashes are the base). */
  base: number;
  lastCheckpoint: VerifiedCheckpoint | null;
  /** Rows after the last checkpoint: not covered by any signature. */
  uncovered: { rows: number; fromId: number; toId: number; fromTime: number; toTime: number } | null;
  /** Rows written before a crash and first signed by the `recovery` checkpoint at the next start. */
  recovered: Array<{ rows: number; signedAt: number }>;
  /** The tree root at every checkpoint size that verified (size → root): what reports are checked against. */
  roots: Map<number, Buffer>;
}

export interface VerifyOptions {
  /** Checkpoints from elsewhere (reports) the journal must contain. */
  expect?: readonly CheckpointBody[];
}

/** Verify one signed checkpoint note against the key: its body, or why not. */
export function checkCheckpointNote(note: string, key: PublicIdentity): { ok: true; value: CheckpointBody } | { ok: false; reason: string } {
  const v = verifyNote(note, key);
  if (!v.ok) return v;
  const c = parseCheckpoint(v.text);
  if (!c.ok) return c;
  if (c.value.origin !== key.name) return { ok: false, reason: `its origin is "${c.value.origin}", not the key's "${key.name}"` };
  return c;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function verifyJournal(path: string, key: PublicIdentity, opts: VerifyOptions = {}): JournalVerification {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new SafespotError('ERR_JOURNAL', `cannot open the journal ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return verifyDb(db, key, opts);
  } catch (err) {
    if (err instanceof SafespotError) throw err;
    throw new SafespotError('ERR_JOURNAL', `cannot read the journal ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
}

function verifyDb(db: Database.Database, key: PublicIdentity, opts: VerifyOptions): JournalVerification {
  const out: JournalVerification = {
    ok: false,
    failure: null,
    checkpoints: 0,
    rows: 0,
    treeSize: 0,
    base: 0,
    lastCheckpoint: null,
    uncovered: null,
    recovered: [],
    roots: new Map(),
  };
  const fail = (why: string): JournalVerification => {
    out.failure = why;
    out.ok = false;
    return out;
  };
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").get() === undefined) return fail('not a safespot journal (no events table)');
  if (!hasTreeTables(db)) return fail('the journal has no checkpoints table: it was written by a safespot without signed checkpoints');

  // 1. Checkpoints: signatures, origin, order.
  const cps: VerifiedCheckpoint[] = [];
  for (const r of db.prepare('SELECT id, note FROM checkpoints ORDER BY id').iterate() as IterableIterator<{ id: number; note: string }>) {
    const c = checkCheckpointNote(r.note, key);
    if (!c.ok) return fail(`checkpoint #${r.id}: ${c.reason}`);
    const prev = cps[cps.length - 1];
    if (prev && c.value.size < prev.size) {
      return fail(`checkpoint #${r.id} signs ${c.value.size} rows, fewer than #${prev.id} before it (${prev.size}): the tree was cut back`);
    }
    if (prev && c.value.time < prev.time) return fail(`checkpoint #${r.id} (${iso(c.value.time)}) is older than #${prev.id} before it (${iso(prev.time)})`);
    cps.push({ ...c.value, id: r.id });
  }
  out.checkpoints = cps.length;
  if (cps.length === 0) return fail('the journal has no signed checkpoint');

  // 2. The rows from the base.
  const base = treeBase(db);
  out.base = base.size;
  const early = db.prepare('SELECT id FROM events WHERE id <= ? ORDER BY id LIMIT 1').pluck().get(base.lastId) as number | undefined;
  if (early !== undefined) return fail(`row id ${early} lies before the tree's base (pruned up to id ${base.lastId}): it was inserted`);
  const f: Frontier = base.frontier.clone();
  let next = 0;
  // Checkpoints older than the base can only be checked by their signatures: their rows are pruned.
  while (next < cps.length && cps[next]!.size < base.size) next++;
  let segmentStart = { size: base.size, id: base.lastId };
  let firstGap: string | null = null;
  let prevId = base.lastId;
  let prevTime = -Infinity;
  let lastPrune: number | null = null;
  /** A journal_prune row not yet covered by a checkpoint: it counts only once one covers it. */
  let pendingPrune: number | null = null;
  let rowsSinceCheckpoint = 0;
  let uncoveredFrom: JournalRow | null = null;
  let lastRow: JournalRow | null = null;
  /** A clean-shutdown stop row after the last checkpoint (the journal always signs after one). */
  let uncoveredCleanStop: number | null = null;
  const checkAt = (size: number): string | null => {
    while (next < cps.length && cps[next]!.size === size) {
      const c = cps[next]!;
      const root = f.root();
      if (!root.equals(c.root)) {
        const where =
          size === segmentStart.size
            ? `at the tree's base`
            : `between leaf ${segmentStart.size} and leaf ${size} (rows after id ${segmentStart.id})`;
        return (
          `checkpoint #${c.id} (${c.size} rows, signed ${iso(c.time)}): the rows do not give its root; ${where} a row was edited, ` +
          `deleted, inserted or moved${firstGap ? ` (${firstGap})` : ''}`
        );
      }
      out.roots.set(size, root);
      if (pendingPrune !== null) lastPrune = pendingPrune;
      pendingPrune = null;
      if (c.reason === 'recovery' && rowsSinceCheckpoint > 0) out.recovered.push({ rows: rowsSinceCheckpoint, signedAt: c.time });
      out.lastCheckpoint = c;
      rowsSinceCheckpoint = 0;
      uncoveredFrom = null;
      uncoveredCleanStop = null;
      segmentStart = { size, id: prevId };
      firstGap = null;
      next++;
    }
    return null;
  };
  const atBase = checkAt(f.size);
  if (atBase) return fail(atBase);
  for (const r of db.prepare('SELECT * FROM events WHERE id > ? ORDER BY id').iterate(base.lastId) as IterableIterator<JournalRow>) {
    out.rows++;
    if (firstGap === null && r.id !== prevId + 1 && prevId !== 0) firstGap = `row ids jump from ${prevId} to ${r.id}`;
    if (firstGap === null && r.time < prevTime - 3_600_000) firstGap = `row id ${r.id} is an hour older than the row before it`;
    prevId = r.id;
    prevTime = Math.max(prevTime, r.time);
    f.push(leafHash(rowLeaf(r)));
    rowsSinceCheckpoint++;
    uncoveredFrom ??= r;
    lastRow = r;
    if (r.kind === 'stop' && r.detail === 'clean shutdown') uncoveredCleanStop = r.id;
    if (r.kind === 'journal_prune') {
      const m = PRUNE_DETAIL.exec(r.detail ?? '');
      if (m) pendingPrune = Number(m[2]);
    }
    if (next < cps.length && cps[next]!.size === f.size) {
      const problem = checkAt(f.size);
      if (problem) return fail(problem);
    }
  }
  out.treeSize = f.size;
  if (next < cps.length) {
    const c = cps[next]!;
    return fail(
      `checkpoint #${c.id} (signed ${iso(c.time)}) covers ${c.size} rows, the journal has only ${f.size}: ` +
        `${c.size - f.size} covered row(s) were deleted or the file was cut short`,
    );
  }
  // 3. The base is one the journal recorded (the newest covered journal_prune row names it).
  if (base.size > 0 && lastPrune !== base.size) {
    return fail(
      `rows before leaf ${base.size} are gone, but ${lastPrune === null ? 'no journal_prune row records a pruning' : `the last journal_prune row names base ${lastPrune}`}: rows were deleted`,
    );
  }
  if (rowsSinceCheckpoint > 0 && uncoveredFrom && lastRow) {
    const from = uncoveredFrom as JournalRow;
    // The journal signs a `stop` checkpoint right after its clean-shutdown row, and a `start` one
    // right after its start row: rows after a stop checkpoint that do not begin with a start, or an
    // unsigned clean stop, mean rows were added later or a checkpoint was removed.
    if (out.lastCheckpoint?.reason === 'stop' && from.kind !== 'start') {
      return fail(
        `row id ${from.id} and ${rowsSinceCheckpoint - 1} more come after checkpoint #${out.lastCheckpoint.id}, which the appliance signed as it stopped: they were added afterwards`,
      );
    }
    if (uncoveredCleanStop !== null) return fail(`row id ${uncoveredCleanStop} is a clean shutdown that no checkpoint follows: a checkpoint was removed`);
    out.uncovered = { rows: rowsSinceCheckpoint, fromId: from.id, toId: lastRow.id, fromTime: from.time, toTime: lastRow.time };
  }
  // 4. Checkpoints from elsewhere.
  for (const e of opts.expect ?? []) {
    if (e.size > out.treeSize) {
      return fail(
        `a checkpoint signed ${iso(e.time)} covers ${e.size} rows, the journal holds only ${out.treeSize}: this is an older copy of the journal (rolled back) or rows were cut`,
      );
    }
    const root = out.roots.get(e.size) ?? rootAtSize(db, base, e.size);
    if (!root) return fail(`a checkpoint signed ${iso(e.time)} covers ${e.size} rows, before the journal's pruned base (${base.size})`);
    if (!root.equals(e.root)) return fail(`a checkpoint signed ${iso(e.time)} (${e.size} rows) does not match the journal's rows at that size: history was rewritten`);
  }
  out.ok = true;
  return out;
}

/** The root of the first `size` leaves, recomputed from the base (null when size is before it). */
function rootAtSize(db: Database.Database, base: { size: number; lastId: number; frontier: Frontier }, size: number): Buffer | null {
  if (size < base.size) return null;
  const f = base.frontier.clone();
  if (f.size === size) return f.root();
  for (const r of db.prepare('SELECT * FROM events WHERE id > ? ORDER BY id').iterate(base.lastId) as IterableIterator<JournalRow>) {
    f.push(leafHash(rowLeaf(r)));
    if (f.size === size) return f.root();
  }
  return null;
}
