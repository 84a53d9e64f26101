/**
 * `npm run bench`: import every bench/*.js module that exports `bench`, run them one after another
 * and print one aligned table. Figures only, never pass/fail.
 *
 *   node dist/bench/run.js [--quick] [NAME…]     NAME = a module's file name without .js (e.g. policy)
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BenchResult } from './common.js';


type BenchFn = (opts: { quick?: boolean }) => Promise<BenchResult[]>;

function format(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const right = new Set([2, 4]);
  return rows
    .map((r) => r.map((cell, c) => (right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const only = args.filter((a) => !a.startsWith('--'));
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.js') && f !== 'run.js')
    .filter((f) => only.length === 0 || only.includes(f.slice(0, -3)))
    .sort();
  const rows: string[][] = [['module', 'measurement', 'value', 'unit', 'baseline', 'note']];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { bench?: BenchFn };
    if (typeof mod.bench !== 'function') continue;
    const name = f.slice(0, -3);
    process.stderr.write(`bench: running ${name}${quick ? ' (quick)' : ''}…\n`);
    try {
      for (const r of await mod.bench({ quick })) {
        rows.push([name, r.name, format(r.value), r.unit, r.baseline === undefined ? '' : format(r.baseline), r.note ?? '']);
      }
    } catch (err) {
      rows.push([name, 'FAILED', '', '', '', (err as Error).message]);
    }
  }
  process.stdout.write(`${table(rows)}\n`);
}

await main();
