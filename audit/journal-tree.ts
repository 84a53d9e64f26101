/**
 * The journal as an append-only Merkle tree (issue 21): every row of `events`, in id order, is a
 * leaf (audit/checkpoint.ts says its bytes); a checkpoint signs the tree's size and root
 * (c2sp.org/tlog-checkpoint) and is kept in the `checkpoints` table beside the rows.
 *
 * Rows are hashed only when a checkpoint is made, never when they are recorded: the guest path and
 * the journal's flushes do no hashing. A checkpoint reads the rows after the previous one's last
 * row and continues its frontier, in one IMMEDIATE transaction, so it is safe while another
 * process (the running appliance, or `audit report`) writes too.
 *
 * Rows a checkpoint covers never change again: the budget's per-minute aggregate rows are updated
 * in place only while no checkpoint covers them (`sealedId`); after one, the rest of the minute
 * goes into a new aggregate row (audit/journal-budget.ts).
 *
 * Retention (`prune`) deletes a prefix of covered rows only, keeps the frontier of what it deleted
 * as the tree's base (`tree_base`), and records a `journal_prune` row naming the new base, inside
 * the tree, followed by a `prune` checkpoint: a verifier accepts a base only when a signed row says
 * so, so deleting the oldest rows by hand is not mistaken for pruning.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { formatCheckpoint, rowLeaf, type CheckpointReason } from './checkpoint.js';
import { signNote, type Identity } from './identity.js';
import type { Db, JournalRow } from './journal-file.js';
import { Frontier, leafHash } from './merkle.js';

export interface TreeState {
  /** Leaves in the tree (rows at or before lastId, counted from the first row ever, pruned ones too). */
  size: number;
  /** id of the last row in the tree (0 when none). */
  lastId: number;
  frontier: Frontier;
}

export interface StoredCheckpoint {
  id: number;
  size: number;
  lastId: number;
  time: number;
  note: string;
}

/** The tree's base: what retention pruned (size 0 when nothing was). */
export function treeBase(db: Db): TreeState {
  const b = db.prepare('SELECT size, last_id, frontier FROM tree_base WHERE id = 1').get() as { size: number; last_id: number; frontier: Buffer } | undefined;
  return b ? { size: b.size, lastId: b.last_id, frontier: Frontier.fromBytes(b.size, b.frontier) } : { size: 0, lastId: 0, frontier: new Frontier() };
}

/** Where the newest checkpoint left the tree, or the base when there is none. */
export function lastTreeState(db: Db): TreeState {
  const c = db.prepare('SELECT size, last_id, frontier FROM checkpoints ORDER BY id DESC LIMIT 1').get() as
    | { size: number; last_id: number; frontier: Buffer }
    | undefined;
  return c ? { size: c.size, lastId: c.last_id, frontier: Frontier.fromBytes(c.size, c.frontier) } : treeBase(db);
}

/** Continue `state` with the rows after state.lastId up to and including `upToId` (all when omitted). */
function extend(db: Db, state: TreeState, upToId = Number.MAX_SAFE_INTEGER): TreeState {
  const f = state.frontier.clone();
  let lastId = state.lastId;
  const rows = db.prepare('SELECT * FROM events WHERE id > ? AND id <= ? ORDER BY id').iterate(state.lastId, upToId) as IterableIterator<JournalRow>;
  for (const r of rows) {
    f.push(leafHash(rowLeaf(r)));
    lastId = r.id;
  }
  return { size: f.size, lastId, frontier: f };
}

export interface Checkpointer {
  /** Hash the rows since the last checkpoint and sign the tree (one transaction). */
  checkpoint(reason: CheckpointReason, time: number): StoredCheckpoint;
  /** The id of the last row a checkpoint covers (0 when none): rows up to it must not change. */
  sealedId(): number;
}

export function createCheckpointer(db: Db, identity: Identity): Checkpointer {
  const insert = db.prepare('INSERT INTO checkpoints (size, last_id, time, note, frontier) VALUES (?, ?, ?, ?, ?)');
  const sealed = db.prepare('SELECT last_id FROM checkpoints ORDER BY id DESC LIMIT 1').pluck();
  const lastTime = db.prepare('SELECT MAX(time) FROM checkpoints').pluck();
  const write = db.transaction((reason: CheckpointReason, asked: number): StoredCheckpoint => {
    // Two processes may sign (the appliance, and `audit report`, audit/report-make.ts): the time was
    // read before this transaction waited for the lock, so keep checkpoint times in id order.
    const time = Math.max(asked, Number(lastTime.get() ?? 0));
    const s = extend(db, lastTreeState(db));
    const note = signNote(formatCheckpoint({ origin: identity.name, size: s.size, root: s.frontier.root(), time, reason }), identity);
    const id = Number(insert.run(s.size, s.lastId, time, note, s.frontier.toBytes()).lastInsertRowid);
    return { id, size: s.size, lastId: s.lastId, time, note };
  });
  return {
    checkpoint: (reason, time) => write.immediate(reason, time),
    sealedId: () => Number(sealed.get() ?? 0),
  };
}

/** The detail of a `journal_prune` row (the verifier parses it back with PRUNE_DETAIL). */
export const pruneDetail = (rows: number, base: number): string => `pruned ${rows} rows; tree base ${base}`;
export const PRUNE_DETAIL = /^pruned (\d+) rows; tree base (\d+)$/;

/**
 * Delete the rows older than `cutoff` (ms) that a checkpoint covers and that come before every
 * newer row (a prefix by id; never the newest covered row, so ids keep growing). Returns how many
 * rows went and the new base size, or null when nothing was pruned. The caller records the
 * journal_prune row and a `prune` checkpoint.
 */
export function pruneCovered(db: Db, cutoff: number): { rows: number; base: number } | null {
  return db
    .transaction((): { rows: number; base: number } | null => {
      const covered = lastTreeState(db);
      const firstKept = db.prepare('SELECT MIN(id) FROM events WHERE time >= ?').pluck().get(cutoff) as number | null;
      // Rows with id < upTo go: older than the cutoff, all before the first row to keep, covered,
      // and never the newest covered row.
      const upTo = Math.min(firstKept ?? Number.MAX_SAFE_INTEGER, covered.lastId);
      const base = treeBase(db);
      if (upTo - 1 <= base.lastId) return null;
      const next = extend(db, base, upTo - 1);
      if (next.size === base.size) return null;
      db.prepare('DELETE FROM events WHERE id <= ?').run(next.lastId);
      db.prepare(
        'INSERT INTO tree_base (id, size, last_id, frontier) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET size = excluded.size, last_id = excluded.last_id, frontier = excluded.frontier',
      ).run(next.size, next.lastId, next.frontier.toBytes());
      return { rows: next.size - base.size, base: next.size };
    })
    .immediate();
}
