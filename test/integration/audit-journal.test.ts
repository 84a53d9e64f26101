/**
 * The tamper-evident journal (audit/journal-tree.ts, audit/verify.ts) on real files: a journal
 * written with an identity verifies; the same file edited with the `sqlite3` shell the way a person
 * would (an edited, deleted, inserted or reordered row, an edited or removed checkpoint, rows added
 * after the stop) does not, and the failure names what differs; an older copy of the journal fails
 * against a later checkpoint; a process killed with SIGKILL while it writes and checkpoints leaves a
 * journal that verifies up to its last checkpoint and shows the rest as uncovered; retention pruning
 * keeps it verifiable and deleting more than the journal pruned is caught.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import t from 'tap';
import { parseCheckpoint } from '../../audit/checkpoint.js';
import { generateIdentity, verifyNote, type Identity } from '../../audit/identity.js';
import { openJournal, type JournalOptions } from '../../audit/journal.js';
import { Frontier, leafHash } from '../../audit/merkle.js';
import { rowLeaf } from '../../audit/checkpoint.js';
import { verifyJournal } from '../../audit/verify.js';
import { runCmd } from '../helpers/commands.js';

const identity = generateIdentity('safespot/venue-test');
const T0 = Date.UTC(2026, 5, 1);

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const opts = (path: string, clock: { t: number }, id: Identity = identity): JournalOptions => ({
  path,
  retentionDays: 400,
  recordUrls: false,
  recordClients: false,
  warn: () => {},
  eventsPerMinute: 1_000_000,
  identity: id,
  now: () => clock.t,
});

/** A journal of 60 blocks (10 csam, 50 adult) over an hour with checkpoints at start, 30 min, stop. */
function writeJournal(path: string): void {
  const clock = { t: T0 };
  const j = openJournal(opts(path, clock));
  for (let i = 0; i < 60; i++) {
    clock.t = T0 + i * 60_000;
    j.record({ kind: 'verdict', listener: 'forward', protocol: 'http', action: 'block', category: i % 6 === 0 ? 'csam' : 'adult', list: i % 6 === 0 ? 'hotline' : 'adult' });
    if (i === 30) j.checkpoint('interval');
  }
  clock.t = T0 + 3_600_000;
  j.close();
}

async function sqlite(path: string, sql: string): Promise<void> {
  const r = await runCmd('sqlite3', [path, sql]);
  if (r.code !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
}

t.test('a journal written with an identity verifies, with its checkpoints signed by that key', async (t) => {
  const path = join(tempDir(t), 'journal.db');
  writeJournal(path);
  const v = verifyJournal(path, identity);
  t.equal(v.failure, null);
  t.equal(v.ok, true);
  t.equal(v.checkpoints, 3, 'start, interval, stop');
  t.equal(v.rows, 62, 'start, 60 blocks, stop');
  t.equal(v.treeSize, 62);
  t.equal(v.uncovered, null, 'every row is covered');
  t.equal(v.lastCheckpoint?.reason, 'stop');
  const db = new Database(path, { readonly: true });
  t.teardown(() => db.close());
  const notes = db.prepare('SELECT note FROM checkpoints ORDER BY id').pluck().all() as string[];
  const bodies = notes.map((n) => {
    const v = verifyNote(n, identity);
    return v.ok ? parseCheckpoint(v.text) : v;
  });
  t.match(bodies, [{ ok: true, value: { size: 1, reason: 'start' } }, { ok: true, value: { size: 32, reason: 'interval' } }, { ok: true, value: { size: 62, reason: 'stop' } }]);
  t.match(verifyJournal(path, generateIdentity('safespot/venue-test')), { ok: false, failure: /checkpoint #1: no signature by safespot\/venue-test/ }, 'another key: nothing verifies');
});

const TAMPERS: Array<{ name: string; sql: string; failure: RegExp }> = [
  { name: 'a csam row edited into adult', sql: "UPDATE events SET category = 'adult', list = 'adult' WHERE id = 50", failure: /checkpoint #3 .*do not give its root; between leaf 32 and leaf 62/ },
  { name: 'an early row edited', sql: "UPDATE events SET category = 'adult' WHERE id = 2", failure: /checkpoint #2 \(32 rows.*between leaf 1 and leaf 32/ },
  { name: 'a count raised', sql: 'UPDATE events SET count = 5 WHERE id = 40', failure: /checkpoint #3/ },
  { name: 'a row deleted', sql: 'DELETE FROM events WHERE id = 20', failure: /checkpoint #2 .*row ids jump from 19 to 21/ },
  { name: 'the csam rows deleted', sql: "DELETE FROM events WHERE category = 'csam'", failure: /checkpoint #2 .*row ids jump from 1 to 3/ },
  { name: 'a row inserted into a gap', sql: "DELETE FROM events WHERE id = 20; INSERT INTO events (id, time, kind, action, category, list) VALUES (20, 1780286400000, 'verdict', 'block', 'adult', 'x')", failure: /checkpoint #2/ },
  { name: 'a row inserted before the first', sql: "INSERT INTO events (id, time, kind, action, category, list) VALUES (0, 1780286400000, 'verdict', 'block', 'adult', 'x')", failure: /row id 0 lies before the tree's base/ },
  { name: 'a row added after the stop', sql: "INSERT INTO events (time, kind, action, category, list) VALUES (1780290000000, 'verdict', 'block', 'csam', 'hotline')", failure: /row id 63 .*come after checkpoint #3, which the appliance signed as it stopped/ },
  { name: 'two rows swapped (reordered)', sql: 'UPDATE events SET id = -1 WHERE id = 5; UPDATE events SET id = 5 WHERE id = 6; UPDATE events SET id = 6 WHERE id = -1', failure: /checkpoint #2/ },
  { name: 'a start shifted by an hour', sql: "UPDATE events SET time = time - 3600000 WHERE kind = 'start'", failure: /checkpoint #1 \(1 rows.*at the tree's base|checkpoint #1/ },
  { name: 'the stop checkpoint removed', sql: 'DELETE FROM checkpoints WHERE id = 3', failure: /row id 62 is a clean shutdown that no checkpoint follows/ },
  { name: 'a checkpoint size edited', sql: "UPDATE checkpoints SET note = replace(note, char(10) || '32' || char(10), char(10) || '31' || char(10)) WHERE id = 2", failure: /checkpoint #2: the signature by safespot\/venue-test does not verify/ },
  { name: 'every row after the interval cut off', sql: 'DELETE FROM events WHERE id > 32', failure: /checkpoint #3 .*covers 62 rows, the journal has only 32/ },
  { name: 'the first rows deleted and a tree base forged', sql: 'FORGE', failure: /rows before leaf 10 are gone, but no journal_prune row records a pruning/ },
];

t.test('every edit with the sqlite3 shell is caught, and the failure says where', async (t) => {
  const dir = tempDir(t);
  const original = join(dir, 'journal.db');
  writeJournal(original);
  for (const tamper of TAMPERS) {
    const copy = join(dir, `${tamper.name.replace(/\W+/g, '-')}.db`);
    copyFileSync(original, copy);
    if (tamper.sql === 'FORGE') {
      // What someone who read this code would do: delete rows 1..10 and store their frontier as the base.
      const db = new Database(copy);
      const f = new Frontier();
      for (const r of db.prepare('SELECT * FROM events WHERE id <= 10 ORDER BY id').all() as Parameters<typeof rowLeaf>[0][]) f.push(leafHash(rowLeaf(r)));
      db.prepare('DELETE FROM events WHERE id <= 10').run();
      db.prepare('INSERT INTO tree_base (id, size, last_id, frontier) VALUES (1, ?, 10, ?)').run(f.size, f.toBytes());
      db.close();
    } else {
      await sqlite(copy, tamper.sql);
    }
    const v = verifyJournal(copy, identity);
    t.equal(v.ok, false, `${tamper.name}: not ok`);
    t.match(v.failure, tamper.failure, `${tamper.name}: ${v.failure}`);
  }
  t.equal(verifyJournal(original, identity).ok, true, 'the original still verifies');
});

t.test('property: any random edit of one cell of a covered row is caught', async (t) => {
  const dir = tempDir(t);
  const original = join(dir, 'journal.db');
  writeJournal(original);
  const columns = ['time', 'kind', 'listener', 'protocol', 'action', 'category', 'list', 'match', 'detail', 'url', 'client', 'count'] as const;
  let n = 0;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 62 }), fc.constantFrom(...columns), fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: 1, max: 1e12 }), fc.constant(null)), (id, col, value) => {
      const copy = join(dir, `p${n++}.db`);
      copyFileSync(original, copy);
      const db = new Database(copy);
      const before = db.prepare(`SELECT ${col} AS v FROM events WHERE id = ?`).get(id) as { v: unknown };
      let changed = false;
      try {
        changed = db.prepare(`UPDATE events SET ${col} = ? WHERE id = ? AND ${col} IS NOT ?`).run(value, id, value).changes === 1;
      } catch {
        // the schema refused the value (STRICT types, NOT NULL, CHECK): nothing changed
      }
      db.close();
      const v = verifyJournal(copy, identity);
      rmSync(copy);
      return changed && before.v !== value ? !v.ok : v.ok;
    }),
    { numRuns: 60 },
  );
  t.pass('60 random edits: every one that changed a value was caught, every refused one left it verifying');
});

t.test('an older copy of the journal is a good shorter journal alone, and fails against a later checkpoint', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'journal.db');
  const clock = { t: T0 };
  let j = openJournal(opts(path, clock));
  for (let i = 0; i < 10; i++) j.record({ kind: 'verdict', action: 'block', category: 'csam', list: 'hotline' });
  clock.t += 60_000;
  j.close();
  const old = join(dir, 'old.db');
  copyFileSync(path, old);
  clock.t += 3_600_000;
  j = openJournal(opts(path, clock));
  for (let i = 0; i < 10; i++) j.record({ kind: 'verdict', action: 'block', category: 'csam', list: 'hotline' });
  const later = j.checkpoint('report');
  j.close();
  const laterBody = parseCheckpoint((verifyNote(later!.note, identity) as { text: string }).text);
  if (!laterBody.ok) throw new Error(laterBody.reason);
  const expect = [laterBody.value];
  t.equal(verifyJournal(old, identity).ok, true, 'on its own, the older copy is a valid journal');
  t.match(verifyJournal(old, identity, { expect }), { ok: false, failure: /covers 23 rows, the journal holds only 12: this is an older copy of the journal \(rolled back\)/ });
  t.equal(verifyJournal(path, identity, { expect }).ok, true, 'the real journal holds the later checkpoint');
});
