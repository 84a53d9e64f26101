/**
 * What the journal's tree is made of, byte for byte: the canonical leaf bytes of a journal row and
 * the checkpoint, a c2sp.org/tlog-checkpoint signed note:
 *
 *     <origin>\n<tree size>\n<base64 root hash>\ntime <ISO 8601 UTC>\nreason <word>\n
 *     \n
 *     — <key name> <base64(key ID || Ed25519 signature)>\n
 *
 * The two lines after the root are extension lines (the spec lets a log add its own): when it was
 * made and why (start, stop, interval, report, recovery, prune). They are signed like the rest.
 * The origin is the key name (`safespot/<site id>`), so a checkpoint names the appliance it is of.
 *
 * Pure: no fs, no clock.
 */
import type { JournalRow } from './journal-file.js';

/** The version tag every leaf starts with: a change of the row encoding is a new tag. */
export const LEAF_TAG = 'safespot-journal-row/1\n';

/** The columns in leaf order. Changing it changes every root: only with a new LEAF_TAG. */
export const LEAF_COLUMNS = ['id', 'time', 'kind', 'listener', 'protocol', 'action', 'category', 'list', 'match', 'detail', 'url', 'client', 'count'] as const;

/**
 * The canonical leaf bytes of a row: the tag, then a JSON array of the columns in LEAF_COLUMNS order
 * (integers as JSON numbers, text as JSON strings, NULL as null), UTF-8. The id is part of it, so
 * renumbering rows changes their leaves; the position of a leaf in the tree is its rank by id.
 */
export function rowLeaf(r: Pick<JournalRow, (typeof LEAF_COLUMNS)[number]>): Buffer {
  const values = LEAF_COLUMNS.map((c) => {
    const v = r[c];
    return v === undefined ? null : v;
  });
  return Buffer.from(LEAF_TAG + JSON.stringify(values), 'utf8');
}

export const CHECKPOINT_REASONS = ['start', 'stop', 'interval', 'report', 'recovery', 'prune'] as const;
export type CheckpointReason = (typeof CHECKPOINT_REASONS)[number];

export interface CheckpointBody {
  origin: string;
  size: number;
  root: Buffer;
  /** Unix ms. */
  time: number;
  reason: CheckpointReason;
}

export function formatCheckpoint(c: CheckpointBody): string {
  if (!/^[\x21-\x7e]+$/.test(c.origin)) throw new RangeError('an origin is one printable word');
  return `${c.origin}\n${c.size}\n${c.root.toString('base64')}\ntime ${new Date(c.time).toISOString()}\nreason ${c.reason}\n`;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Parse a checkpoint's (already verified) note text. Strict: exactly the lines formatCheckpoint writes. */
export function parseCheckpoint(text: string): Parsed<CheckpointBody> {
  const lines = text.split('\n');
  if (lines.length !== 6 || lines[5] !== '') return { ok: false, reason: 'a checkpoint has five lines' };
  const [origin, sizeText, rootText, timeLine, reasonLine] = lines as [string, string, string, string, string];
  if (!/^[\x21-\x7e]+$/.test(origin)) return { ok: false, reason: 'the origin line is not one printable word' };
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) return { ok: false, reason: 'the tree size is not a decimal number' };
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== 32 || root.toString('base64') !== rootText) return { ok: false, reason: 'the root is not 32 bytes of base64' };
  const time = /^time (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)$/.exec(timeLine);
  const ms = time ? Date.parse(time[1]!) : NaN;
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== time![1]) return { ok: false, reason: 'the time line is not "time <ISO 8601 UTC>"' };
  const reason = /^reason ([a-z]+)$/.exec(reasonLine)?.[1];
  if (!reason || !(CHECKPOINT_REASONS as readonly string[]).includes(reason)) return { ok: false, reason: 'the reason line is not a known reason' };
  return { ok: true, value: { origin, size: Number(sizeText), root, time: ms, reason: reason as CheckpointReason } };
}
