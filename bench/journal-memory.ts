/**
 * Journal memory: RSS outside the V8 heap of a process writing block events into a journal file as
 * `serve` opens it (audit/journal-file.ts: SQLite page cache pinned to JOURNAL_CACHE_KIB), beside the
 * same writes with better-sqlite3's build default cache (16 MB), the baseline. Each variant runs in
 * a child process of its own (`--child pinned|default N`) so neither sees the other's memory; the
 * child inserts N synthetic verdict rows, 20 per transaction (a busy venue's flush), and reports
 * RSS minus the V8 committed heap after a GC at every tenth of the way. A cache that is bounded
 * shows as a plateau; one that fills as the file grows, as a climb.
 *
 *   npm run build && node dist/bench/run.js journal-memory          # 200,000 events per variant
 *   npm run build && node dist/bench/run.js --quick journal-memory  # 40,000
 *
 * Synthetic rows only (demo list id, categories); no URL or client columns are filled.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { INSERT_EVENT_SQL, JOURNAL_CACHE_KIB, openJournalFile } from '../audit/journal-file.js';
import { type BenchResult, isMain, printResults } from './common.js';

type Variant = 'pinned' | 'default';
/** better-sqlite3's SQLITE_DEFAULT_CACHE_SIZE, in KiB. */
const BUILD_DEFAULT_KIB = 16_000;
const PER_TRANSACTION = 20;
const CATEGORIES = ['adult', 'csam', 'malware'] as const;

const mib = (b: number): number => b / 2 ** 20;

/** Child: write `events` rows and print one JSON line per checkpoint: {events, nativeMiB}. */
function child(variant: Variant, events: number): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-journal-'));
  try {
    const { db } = openJournalFile(join(dir, 'journal.db'), false, Date.now, () => {});
    if (variant === 'default') db.pragma(`cache_size = -${BUILD_DEFAULT_KIB}`);
    const insert = db.prepare(INSERT_EVENT_SQL);
    const batch = db.transaction((from: number) => {
      for (let i = from; i < from + PER_TRANSACTION; i++) {
        insert.run({
          time: Date.now(), kind: 'verdict', listener: i % 3 ? 'forward' : 'tls', protocol: i % 2 ? 'http' : 'tls',
          action: 'block', category: CATEGORIES[i % 3], list: 'demo-adult', match: null, detail: null, url: null, client: null, count: 1,
        });
      }
    });
    const native = (): number => {
      gc();
      const m = process.memoryUsage();
      return mib(m.rss - m.heapTotal);
    };
    const report = (n: number): void => void process.stdout.write(`${JSON.stringify({ events: n, nativeMiB: native() })}\n`);
    report(0);
    const step = events / 10;
    for (let i = 0; i < events; i += PER_TRANSACTION) {
      batch(i);
      if ((i + PER_TRANSACTION) % step === 0) report(i + PER_TRANSACTION);
    }
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runChild(variant: Variant, events: number): Promise<Array<{ events: number; nativeMiB: number }>> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', variant, String(events)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`journal-memory child (${variant}) exited ${code}`));
      resolve(out.trim().split('\n').map((l) => JSON.parse(l) as { events: number; nativeMiB: number }));
    });
  });
}

export async function bench(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const events = opts.quick ? 40_000 : 200_000;
  const pinned = await runChild('pinned', events);
  const base = await runChild('default', events);
  const growth = (pts: typeof pinned, upTo: number): number => pts.find((p) => p.events === upTo)!.nativeMiB - pts[0]!.nativeMiB;
  const rows: BenchResult[] = [];
  for (const at of [events / 10, events / 2, events]) {
    rows.push({
      name: `RSS outside the V8 heap, growth after ${at.toLocaleString('en-US')} events`,
      value: growth(pinned, at),
      unit: 'MiB',
      baseline: growth(base, at),
      note: `cache ${JOURNAL_CACHE_KIB} KiB; baseline: better-sqlite3's ${BUILD_DEFAULT_KIB} KiB default`,
    });
  }
  const last = pinned.length - 1;
  rows.push({
    name: 'growth over the second half of the run',
    value: pinned[last]!.nativeMiB - pinned.find((p) => p.events === events / 2)!.nativeMiB,
    unit: 'MiB',
    baseline: base[last]!.nativeMiB - base.find((p) => p.events === events / 2)!.nativeMiB,
    note: 'a bounded cache: ~0',
  });
  return rows;
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) child(process.argv[i + 1] as Variant, Number(process.argv[i + 2]));
  else printResults(await bench({ quick: process.argv.includes('--quick') }), 2);
}
