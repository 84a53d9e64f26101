/**
 * `safespot audit verify --journal` on a big journal (issue 21): CPU time and peak RSS of verifying
 * a journal of N rows against the appliance key, beside the floor of any verifier of this journal,
 * measured in the same run: reading the same rows from SQLite and hashing each one's leaf bytes once
 * (audit/checkpoint.ts rowLeaf, audit/merkle.ts leafHash), with no tree, no signatures, no checks.
 *
 * The journal is written the way serve writes it (audit/journal.ts with an identity): synthetic
 * verdict rows through record(), a signed `interval` checkpoint every tenth of the way and `stop` at
 * close. Each measurement runs in a child process of its own so neither sees the other's memory.
 *
 *   npm run build && node dist/bench/audit-verify.js             # 1,000,000 rows
 *   npm run build && node dist/bench/audit-verify.js --quick     # 100,000 rows
 *   node dist/bench/audit-verify.js --rows 250000
 *
 * Synthetic rows only (a demo list id, categories); no URL or client columns are filled.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { rowLeaf } from '../audit/checkpoint.js';
import { generateIdentity, parseVerifierKey, type PublicIdentity } from '../audit/identity.js';
import type { JournalRow } from '../audit/journal-file.js';
import { openJournal } from '../audit/journal.js';
import { leafHash } from '../audit/merkle.js';
import { verifyJournal } from '../audit/verify.js';
import { type BenchResult, isMain, printResults } from './common.js';

const CATEGORIES = ['adult', 'csam', 'malware'] as const;
const LISTENERS = ['forward', 'tls', 'http', 'dns'] as const;

interface Measured {
  cpuMs: number;
  wallMs: number;
  peakMiB: number;
  rows: number;
  ok?: boolean;
  failure?: string | null;
}

/** Child `write PATH N KEYFILE`: a journal of N verdict rows, signed as serve signs it; the public key to KEYFILE. */
function write(path: string, rows: number, keyFile: string): void {
  const identity = generateIdentity('safespot/bench-venue');
  writeFileSync(keyFile, `${identity.verifierKey}\n`);
  let t = Date.UTC(2026, 0, 1);
  const j = openJournal({
    path,
    retentionDays: 3650,
    recordUrls: false,
    recordClients: false,
    now: () => t,
    identity,
    eventsPerMinute: Number.MAX_SAFE_INTEGER,
    checkpointIntervalMs: 20 * 86_400_000, // below setTimeout's 2^31 ms: never within the run
    warn: () => {},
  });
  const tenth = Math.max(1, Math.floor(rows / 10));
  for (let i = 1; i <= rows; i++) {
    t += 7;
    j.record({ kind: 'verdict', listener: LISTENERS[i % 4]!, protocol: 'http', action: 'block', category: CATEGORIES[i % 3]!, list: 'demo-adult' });
    if (i % 2_000 === 0) j.flush();
    if (i % tenth === 0) j.checkpoint('interval');
  }
  j.close();
}

function measure(fn: () => Pick<Measured, 'rows' | 'ok' | 'failure'>): Measured {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const r = fn();
  const c = process.cpuUsage(c0);
  return { ...r, cpuMs: (c.user + c.system) / 1000, wallMs: performance.now() - w0, peakMiB: process.resourceUsage().maxRSS / 1024 };
}

/** Child `verify PATH KEYFILE`: what `audit verify --journal` does. */
function verify(path: string, key: PublicIdentity): Measured {
  return measure(() => {
    const v = verifyJournal(path, key);
    return { rows: v.rows, ok: v.ok, failure: v.failure };
  });
}

/** Child `floor PATH`: read every row in id order and hash its leaf once; nothing else. */
function floor(path: string): Measured {
  return measure(() => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    let rows = 0;
    let x = 0;
    for (const r of db.prepare('SELECT * FROM events ORDER BY id').iterate() as IterableIterator<JournalRow>) {
      x ^= leafHash(rowLeaf(r))[0]!;
      rows++;
    }
    db.close();
    if (x < 0) throw new Error('unreachable');
    return { rows };
  });
}

function runChild(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`bench child ${args[0]} exited ${code}`))));
  });
}

export async function bench(opts: { quick?: boolean; rows?: number } = {}): Promise<BenchResult[]> {
  const rows = opts.rows ?? (opts.quick ? 100_000 : 1_000_000);
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-verify-'));
  try {
    const path = join(dir, 'journal.db');
    const keyFile = join(dir, 'key.json');
    const w0 = performance.now();
    await runChild(['write', path, String(rows), keyFile]);
    const writeMs = performance.now() - w0;
    // Alternate the two so a busy moment of a shared machine does not land on one side only.
    const verifies: Measured[] = [];
    const floors: Measured[] = [];
    for (let i = 0; i < 3; i++) {
      verifies.push(JSON.parse(await runChild(['verify', path, keyFile])) as Measured);
      floors.push(JSON.parse(await runChild(['floor', path])) as Measured);
    }
    const bad = verifies.find((v) => !v.ok);
    if (bad) throw new Error(`the bench journal did not verify: ${bad.failure}`);
    const median = (xs: Measured[], k: keyof Measured): number => (xs.map((x) => x[k] as number).sort((a, b) => a - b)[1] ?? NaN);
    const fileMiB = statSync(path).size / 2 ** 20;
    const n = verifies[0]!.rows;
    return [
      { name: `audit verify --journal, ${n.toLocaleString('en-US')} rows: CPU`, value: median(verifies, 'cpuMs') / 1000, unit: 's', baseline: median(floors, 'cpuMs') / 1000, note: 'baseline: read + hash every leaf once' },
      { name: 'audit verify --journal: CPU per 1,000 rows', value: median(verifies, 'cpuMs') / (n / 1000), unit: 'ms', baseline: median(floors, 'cpuMs') / (n / 1000) },
      { name: 'audit verify --journal: peak RSS', value: median(verifies, 'peakMiB'), unit: 'MiB', baseline: median(floors, 'peakMiB') },
      { name: 'journal file', value: fileMiB, unit: 'MiB', note: `${((fileMiB * 2 ** 20) / n).toFixed(0)} B per row; written in ${(writeMs / 1000).toFixed(1)} s through record()` },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const readKey = (file: string): PublicIdentity => parseVerifierKey(readFileSync(file, 'utf8'));

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) {
    const [what, a, b, c] = process.argv.slice(i + 1);
    if (what === 'write') write(a!, Number(b), c!);
    else if (what === 'verify') process.stdout.write(JSON.stringify(verify(a!, readKey(b!))));
    else process.stdout.write(JSON.stringify(floor(a!)));
  } else {
    const r = process.argv.indexOf('--rows');
    printResults(await bench({ quick: process.argv.includes('--quick'), rows: r >= 0 ? Number(process.argv[r + 1]) : undefined }), 3);
  }
}
