/**
 * The journal's SQLite page cache is pinned to JOURNAL_CACHE_KIB, on the writable and on the
 * read-only connection (reports), and on a journal started after a corrupt one was set aside.
 * better-sqlite3's build default is 16 MB, which a growing journal fills a page at a time: RSS that
 * climbs for months on a venue's router (BENCHMARKS.md, "Soak"). No sockets: files in a temp dir.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { JOURNAL_CACHE_KIB, openJournalFile } from '../../audit/journal-file.js';

const dir = mkdtempSync(join(tmpdir(), 'safespot-journal-cache-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const now = (): number => Date.UTC(2026, 0, 1);
const cacheKib = (db: { pragma(s: string, o: { simple: true }): unknown }): number => -Number(db.pragma('cache_size', { simple: true }));

t.test('writable and read-only connections use it', async (t) => {
  const path = join(dir, 'j.db');
  const w = openJournalFile(path, false, now, () => {});
  t.equal(cacheKib(w.db), JOURNAL_CACHE_KIB, 'writable');
  const r = openJournalFile(path, true, now, () => {});
  t.equal(cacheKib(r.db), JOURNAL_CACHE_KIB, 'read-only');
  r.db.close();
  w.db.close();
});

t.test('so does the new journal started after a corrupt one was set aside', async (t) => {
  const path = join(dir, 'corrupt.db');
  writeFileSync(path, Buffer.alloc(8192, 0x5a));
  const warnings: string[] = [];
  const f = openJournalFile(path, false, now, (m) => warnings.push(m));
  t.not(f.setAside, null, 'the corrupt file was set aside');
  t.equal(warnings.length, 1, 'with one warning');
  t.equal(cacheKib(f.db), JOURNAL_CACHE_KIB, 'the new file has the bounded cache');
  f.db.close();
});
