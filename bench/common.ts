/**
 * What every bench module shares: the row type `npm run bench` prints, "was this file run
 * directly?", and printing rows when a module runs alone (`node dist/bench/NAME.js [--quick]`).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** One figure. Benchmarks print figures beside a baseline measured in the same run; never pass/fail. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: number;
  note?: string;
}

/** True when the module at `moduleUrl` (its `import.meta.url`) is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/** Print rows for a module run alone, with `digits` decimals. */
export function printResults(results: readonly BenchResult[], digits = 3): void {
  const width = Math.max(...results.map((r) => r.name.length), 10);
  for (const r of results) {
    const base = r.baseline === undefined ? '' : `  (baseline ${r.baseline.toFixed(digits)})`;
    const note = r.note ? `  [${r.note}]` : '';
    process.stdout.write(`${r.name.padEnd(width)}  ${r.value.toFixed(digits).padStart(12)} ${r.unit}${base}${note}\n`);
  }
}
