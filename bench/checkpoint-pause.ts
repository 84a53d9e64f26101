/**
 * What a journal checkpoint costs the guest path (issue 21: "checkpointing must not slow the guest
 * path"). Rows are hashed into the tree only when a checkpoint is made (audit/journal-tree.ts), on
 * the main thread that also serves guests; so the question is how long one checkpoint holds that
 * thread, for the rows a checkpoint interval gathers. The rows come through record() as serve writes
 * them; the default budget (journal.eventsPerMinute 600) over the default 15-minute interval is at
 * most 9,000 rows a checkpoint, 10× and 100× that are also measured. Beside it, in the same run and
 * process: the floor of any checkpoint of those rows, reading them from SQLite and hashing each leaf
 * once (no tree, no signature, no write).
 *
 *   npm run build && node dist/bench/checkpoint-pause.js [--rows 9000,90000,900000] [--rounds 3]
 *
 * Synthetic rows only (a demo list id, categories); no URL or client columns are filled.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { rowLeaf } from '../audit/checkpoint.js';
import { generateIdentity } from '../audit/identity.js';
import type { JournalRow } from '../audit/journal-file.js';
import { openJournal } from '../audit/journal.js';
import { leafHash } from '../audit/merkle.js';
import { type BenchResult, isMain, printResults } from './common.js';

const CATEGORIES = ['adult', 'csam', 'malware'] as const;
const LISTENERS = ['forward', 'tls', 'http', 'dns'] as const;

const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;

/** One round for `rows`: wall and CPU ms of the checkpoint, and of the floor over the same rows. */
function round(dir: string, rows: number, k: number): { wall: number; cpu: number; floorWall: number } {
  const path = join(dir, `journal-${rows}-${k}.db`);
  let t = Date.UTC(2026, 0, 1);
  const j = openJournal({
    path,
    retentionDays: 3650,
    recordUrls: false,
    recordClients: false,
    now: () => t,
    identity: generateIdentity('safespot/bench-venue'),
    eventsPerMinute: Number.MAX_SAFE_INTEGER,
    checkpointIntervalMs: 20 * 86_400_000, // never within the run: the one measured is called here
    warn: () => {},
  });
  try {
    // The start's checkpoint is made; then the interval's rows.
    for (let i = 1; i <= rows; i++) {
      t += 7;
      j.record({ kind: 'verdict', listener: LISTENERS[i % 4]!, protocol: 'http', action: 'block', category: CATEGORIES[i % 3]!, list: 'demo-adult' });
      if (i % 2_000 === 0) j.flush();
    }
    j.flush();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const cp = j.checkpoint('interval');
    const wall = performance.now() - w0;
    const cpu = cpuMs(process.cpuUsage(c0));
    if (!cp) throw new Error('no checkpoint was made');
    // The floor: the same rows read in id order and each leaf hashed once.
    const db = new Database(path, { readonly: true, fileMustExist: true });
    const f0 = performance.now();
    let x = 0;
    let n = 0;
    for (const r of db.prepare('SELECT * FROM events ORDER BY id').iterate() as IterableIterator<JournalRow>) {
      x ^= leafHash(rowLeaf(r))[0]!;
      n++;
    }
    const floorWall = performance.now() - f0;
    db.close();
    if (x < 0 || n < rows) throw new Error('unreachable');
    return { wall, cpu, floorWall };
  } finally {
    j.close();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function bench(opts: { rows?: number[]; rounds?: number } = {}): BenchResult[] {
  const sizes = opts.rows ?? [9_000, 90_000, 900_000];
  const rounds = opts.rounds ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-checkpoint-'));
  const out: BenchResult[] = [];
  try {
    for (const rows of sizes) {
      const r = Array.from({ length: rounds }, (_, k) => round(dir, rows, k));
      out.push({ name: `checkpoint of ${rows.toLocaleString('en')} rows: main thread held`, value: median(r.map((x) => x.wall)), unit: 'ms', baseline: median(r.map((x) => x.floorWall)), note: `CPU ${median(r.map((x) => x.cpu)).toFixed(1)} ms; baseline: read and hash the leaves only; median of ${rounds}` });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { rows: { type: 'string' }, rounds: { type: 'string' } } });
  const rows = values.rows?.split(',').map((s) => Number(s.replace(/_/g, '')));
  if (rows?.some((n) => !Number.isInteger(n) || n < 1)) {
    process.stderr.write('--rows: comma-separated whole numbers\n');
    process.exit(2);
  }
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
  printResults(bench({ ...(rows ? { rows } : {}), ...(rounds ? { rounds } : {}) }), 1);
}
