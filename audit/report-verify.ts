/**
 * Offline verification of signed reports (issue 21, point 4), beyond the signature itself
 * (audit/report-sign.ts `verifyReport`):
 *
 * - `verifyReportFile(file, key, { journal })`: the signature; a json report's own covering
 *   checkpoint note and appliance key; with a journal, that the journal verifies and holds the
 *   report's checkpoint (an older copy of it does not: a rollback), and that the report's figures
 *   are exactly what the rows within that checkpoint's tree give, computed again from the report's
 *   signed basis. The first figure (json path, csv row, html line) that differs is named.
 * - `verifyExtends(earlier, later, key, journal)`: LATER's checkpoint extends EARLIER's. The journal
 *   is needed: it must verify and hold both checkpoints (so both roots are prefixes of one verified
 *   tree), and the RFC 9162 consistency proof between them is computed from its rows and checked.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import Database from 'better-sqlite3';
import { rowLeaf, type CheckpointBody } from './checkpoint.js';
import type { PublicIdentity } from './identity.js';
import type { JournalRow } from './journal-file.js';
import { treeBase } from './journal-tree.js';
import { consistencyProof, leafHash, verifyConsistency } from './merkle.js';
import { coveredCopy, reportFromJournal } from './report-make.js';
import { reportCsv, reportHtml } from './report.js';
import { verifyReport, type ReportFormat, type ReportSignatureBody } from './report-sign.js';
import { checkCheckpointNote, verifyJournal, type JournalVerification } from './verify.js';
import { safespotVersion } from './metrics.js';

export interface ReportFile {
  /** The report's text, and its detached signature (csv and html) when there is one. */
  text: string;
  sig?: string | null;
  format?: ReportFormat;
}

export interface ReportVerification {
  ok: boolean;
  /** The first thing that does not hold (null when ok). */
  failure: string | null;
  format: ReportFormat | null;
  body: ReportSignatureBody | null;
  /** The journal's own verification, when one was given. */
  journal: JournalVerification | null;
  /** What was checked, in words (for the command's output). */
  checked: string[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

function checkpointBody(key: PublicIdentity, b: ReportSignatureBody): CheckpointBody | null {
  const c = b.checkpoint;
  if (!c) return null;
  return { origin: key.name, size: c.size, root: c.root, time: c.time, reason: c.reason as CheckpointBody['reason'] };
}

/** The first place two JSON values differ, as a path and both values; null when equal. */
export function firstJsonDifference(report: unknown, journal: unknown, path = ''): string | null {
  const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));
  if (report === journal) return null;
  const bothObjects = report !== null && journal !== null && typeof report === 'object' && typeof journal === 'object';
  if (!bothObjects || Array.isArray(report) !== Array.isArray(journal)) {
    return `${path || '(the report)'}: the report says ${show(report)}, the journal's rows give ${show(journal)}`;
  }
  if (Array.isArray(report) && Array.isArray(journal)) {
    for (let i = 0; i < Math.max(report.length, journal.length); i++) {
      const d = firstJsonDifference(report[i], journal[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  const a = report as Record<string, unknown>;
  const b = journal as Record<string, unknown>;
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])]) {
    const d = firstJsonDifference(a[k], b[k], path ? `${path}.${k}` : k);
    if (d) return d;
  }
  return null;
}

const textOf = (line: string): string =>
  line
    .replace(/<[^>]*>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();

/** The first line where a csv or html report and the one the journal gives differ, in words. */
function firstLineDifference(format: 'csv' | 'html', report: string, journal: string): string | null {
  if (report === journal) return null;
  const sep = format === 'csv' ? '\r\n' : '\n';
  const a = report.split(sep);
  const b = journal.split(sep);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    const say = (s: string | undefined) => (s === undefined ? '(no line)' : format === 'html' ? `"${textOf(s)}"` : `"${s}"`);
    return `line ${i + 1}: the report says ${say(a[i])}, the journal's rows give ${say(b[i])}`;
  }
  return null;
}

export function verifyReportFile(file: ReportFile, key: PublicIdentity, opts: { journal?: string } = {}): ReportVerification {
  const out: ReportVerification = { ok: false, failure: null, format: null, body: null, journal: null, checked: [] };
  const fail = (why: string): ReportVerification => ({ ...out, ok: false, failure: why });
  const c = verifyReport(file, key);
  if (!c.ok) return fail(c.reason);
  out.format = c.format;
  out.body = c.body;
  out.checked.push(`signature by ${key.name} (${key.fingerprint}) over the ${c.format} content`);
  const body = c.body;
  if (c.json) {
    // The json's own claims must agree with what the signature says (they are signed too, but they
    // are what a reader quotes).
    const appliance = c.json.appliance as { key?: unknown; fingerprint?: unknown } | null | undefined;
    if (!appliance || appliance.key !== key.verifierKey || appliance.fingerprint !== key.fingerprint) {
      return fail('the report\'s "appliance" does not name the key it is signed with');
    }
    const cp = c.json.checkpoint as { note?: unknown; size?: unknown } | null | undefined;
    if (body.checkpoint) {
      if (!cp || typeof cp.note !== 'string') return fail('the report carries no signed checkpoint note');
      const n = checkCheckpointNote(cp.note, key);
      if (!n.ok) return fail(`the report's checkpoint: ${n.reason}`);
      if (n.value.size !== body.checkpoint.size || !n.value.root.equals(body.checkpoint.root) || n.value.time !== body.checkpoint.time) {
        return fail("the report's checkpoint note is not the checkpoint its signature names");
      }
      out.checked.push(`covering checkpoint: ${n.value.size} rows, signed ${iso(n.value.time)} (${n.value.reason})`);
    }
  }
  if (!opts.journal) {
    out.ok = true;
    return out;
  }
  const expected = checkpointBody(key, body);
  if (!expected) return fail('the report names no checkpoint: its figures cannot be checked against a journal');
  const jv = verifyJournal(opts.journal, key, { expect: [expected] });
  out.journal = jv;
  if (!jv.ok) return fail(`the journal: ${jv.failure}`);
  out.checked.push(`journal ${opts.journal}: intact, and it holds the report's checkpoint (${expected.size} rows)`);
  const copy = coveredCopy(opts.journal, expected.size);
  try {
    const cpNote = c.json ? String((c.json.checkpoint as { note?: unknown }).note) : '';
    const recomputed = reportFromJournal(copy.path, body.basis, {
      key,
      checkpoint: { size: expected.size, root: expected.root, time: expected.time, reason: expected.reason, note: cpNote },
      withNote: c.format === 'json',
    });
    let diff: string | null;
    if (c.format === 'json') {
      const { signature: _s, ...mine } = c.json!;
      diff = firstJsonDifference(mine, JSON.parse(JSON.stringify(recomputed)));
    } else if (c.format === 'csv') {
      diff = firstLineDifference('csv', file.text, reportCsv(recomputed));
    } else {
      diff = firstLineDifference('html', file.text, reportHtml(recomputed, { lang: body.basis.lang as 'en' | 'sq' | undefined, file: body.basis.file }));
    }
    if (diff) {
      const version = body.basis.generator;
      const mine = `safespot ${safespotVersion()}`;
      // Another version may lay a report out otherwise or carry more figures: say so, the comparison
      // is only exact with the version that made it (its figures are what the signature covers).
      const other = version !== mine ? `; this is ${mine}, so layout or new figures may differ: verify with ${version}` : '';
      return fail(`the figures are not what the journal's rows within the checkpoint give: ${diff} (report made by ${version}${other})`);
    }
  } finally {
    copy.dispose();
  }
  out.checked.push(`every figure equals what the journal's ${expected.size} covered rows give`);
  out.ok = true;
  return out;
}

export interface ExtendsVerification {
  ok: boolean;
  failure: string | null;
  checked: string[];
}

/** Leaf hashes of the first `size` leaves, when nothing of them is pruned (null otherwise). */
function leafHashes(path: string, size: number): Buffer[] | null {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    if (treeBase(db).size > 0) return null;
    const out: Buffer[] = [];
    for (const r of db.prepare('SELECT * FROM events ORDER BY id').iterate() as IterableIterator<JournalRow>) {
      if (out.length === size) break;
      out.push(leafHash(rowLeaf(r)));
    }
    return out.length === size ? out : null;
  } finally {
    db.close();
  }
}

/**
 * Does LATER's checkpoint extend EARLIER's (history between them only appended to)? Both reports'
 * signatures are checked first; the journal must verify and hold both checkpoints.
 */
export function verifyExtends(earlier: ReportFile, later: ReportFile, key: PublicIdentity, journal: string): ExtendsVerification {
  const checked: string[] = [];
  const fail = (why: string): ExtendsVerification => ({ ok: false, failure: why, checked });
  const e = verifyReportFile(earlier, key);
  if (!e.ok) return fail(`EARLIER: ${e.failure}`);
  const l = verifyReportFile(later, key);
  if (!l.ok) return fail(`LATER: ${l.failure}`);
  checked.push('both reports are signed by the key');
  const ec = checkpointBody(key, e.body!);
  const lc = checkpointBody(key, l.body!);
  if (!ec || !lc) return fail(`${ec ? 'LATER' : 'EARLIER'} names no checkpoint`);
  if (lc.size < ec.size) {
    return fail(`LATER's checkpoint covers ${lc.size} rows, fewer than EARLIER's ${ec.size}: the journal LATER was made from was cut back or rolled back`);
  }
  if (lc.size === ec.size && !lc.root.equals(ec.root)) return fail(`both checkpoints cover ${ec.size} rows but their roots differ: history was rewritten`);
  if (l.body!.from < e.body!.from) checked.push('note: LATER\'s period starts before EARLIER\'s');
  const jv = verifyJournal(journal, key, { expect: [ec, lc] });
  if (!jv.ok) return fail(`the journal: ${jv.failure}`);
  checked.push(`journal ${journal}: intact, and it holds both checkpoints (${ec.size} and ${lc.size} rows)`);
  const leaves = leafHashes(journal, lc.size);
  if (leaves) {
    const proof = consistencyProof(ec.size, leaves);
    if (!verifyConsistency(ec.size, lc.size, ec.root, lc.root, proof)) {
      return fail(`the consistency proof from ${ec.size} to ${lc.size} rows does not verify: LATER's tree does not extend EARLIER's`);
    }
    checked.push(`RFC 9162 consistency proof from ${ec.size} to ${lc.size} rows (${proof.length} hashes) verifies`);
  } else {
    checked.push('the journal is pruned: both roots are checked against its verified rows instead of a proof');
  }
  return { ok: true, failure: null, checked };
}
