/**
 * Reading `node --cpu-prof` profiles for the benches: where a process spent its CPU during given
 * time windows (monotonic µs, as `process.hrtime.bigint() / 1000n` gives them; V8 stamps samples on
 * the same clock), as self time by function and inclusive time of safespot's own functions.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the profiled process's CPU went in `windows`: self time by function, and inclusive time of safespot's functions. */
export function summarizeProfiles(dir: string, windows: readonly { from: number; to: number }[]): string {
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
      startTime: number; samples: number[]; timeDeltas: number[];
    };
    const key = new Map<number, string>();
    const parent = new Map<number, number>();
    for (const n of p.nodes) {
      const cf = n.callFrame;
      const where = cf.url ? ` ${cf.url.replace(/^.*\/dist\//, '').replace(/^node:internal\//, '')}:${cf.lineNumber + 1}` : '';
      key.set(n.id, `${cf.functionName || '(anonymous)'}${where}`);
      for (const c of n.children ?? []) parent.set(c, n.id);
    }
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i]!;
      const dt = p.timeDeltas[i + 1] ?? 0;
      if (!windows.some((w) => t >= w.from && t <= w.to)) continue;
      const leaf = key.get(p.samples[i]!)!;
      if (leaf === '(idle)') {
        idle += dt;
        continue;
      }
      busy += dt;
      self.set(leaf, (self.get(leaf) ?? 0) + dt);
      const seen = new Set<string>();
      for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) {
        const k = key.get(id)!;
        if (seen.has(k) || !/^\S+ (proxy|policy|audit|appliance|certs)\//.test(k)) continue;
        seen.add(k);
        incl.set(k, (incl.get(k) ?? 0) + dt);
      }
    }
  }
  const top = (m: Map<string, number>, n: number): string[] =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
  return [
    `${(busy / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle (sampled)`,
    'self time, share of busy:',
    ...top(self, 20),
    'inclusive time of safespot functions, share of busy:',
    ...top(incl, 25),
  ].join('\n');
}
