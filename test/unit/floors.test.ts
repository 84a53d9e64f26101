/**
 * The floors, checked (issue 19, point 2): every source file's imports (static, `export … from` and
 * dynamic `import('…')`) against README.md's layout. policy/ is pure: nothing of ours, no sockets,
 * files, processes or threads; audit/ and certs/ take only policy/errors.ts of ours; proxy/ takes
 * policy/, audit/ and certs/, never appliance/, and its observers from audit/observer.ts, not the
 * audit/metrics.js barrel that loads prom-client; appliance/ anything below. The checker is tested on
 * made-up sources first, so a rule that could never fail would show.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, resolve } from 'node:path';
import t from 'tap';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const FLOORS = ['policy', 'audit', 'certs', 'proxy', 'appliance'] as const;
type Floor = (typeof FLOORS)[number];

/** Node modules policy/ must not touch: sockets, files, processes, threads, timers. */
const IMPURE = new Set(['net', 'tls', 'http', 'https', 'http2', 'dgram', 'dns', 'fs', 'fs/promises', 'child_process', 'cluster', 'worker_threads', 'timers', 'timers/promises', 'os', 'process']);

/** Every module specifier a source imports. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of source.matchAll(re))
    out.push((m[1] ?? m[2])!);
  return out;
}

/** Why `spec`, imported by the file at `file` (repo-relative, posix), breaks the floors, or null. */
export function violation(file: string, spec: string): string | null {
  const floor = file.split('/')[0] as Floor;
  if (!FLOORS.includes(floor))
    return null;
  if (spec.startsWith('.')) {
    const target = posix.normalize(posix.join(posix.dirname(file), spec));
    const to = target.split('/')[0]!;
    if (to === floor)
      return null;
    if (!(FLOORS as readonly string[]).includes(to))
      return `${file} imports ${spec}, outside the floors`;
    const allowed: Record<Floor, string[]> = {
      policy: [],
      audit: ['policy/errors.js'],
      certs: ['policy/errors.js'],
      proxy: ['policy', 'audit', 'certs'],
      appliance: ['policy', 'audit', 'certs', 'proxy'],
    };
    // proxy/ takes the Observer from audit/observer.ts: audit/metrics.js is the barrel that loads prom-client.
    if (floor === 'proxy' && target === 'audit/metrics.js')
      return `${file} imports audit/metrics.js: proxy/ takes observers from audit/observer.ts`;
    const ok = allowed[floor].some((a) => (a.includes('/') ? target === a : to === a));
    return ok ? null : `${file} imports ${target}: ${floor}/ may not import from ${to}/`;
  }
  if (floor === 'policy') {
    const name = spec.replace(/^node:/, '');
    if (IMPURE.has(name))
      return `${file} imports ${spec}: policy/ is pure (no sockets, files, processes, threads or timers)`;
  }
  return null;
}

t.test('the checker, on made-up files: each rule can fail', async (t) => {
  const bad: [string, string][] = [
    ['policy/x.ts', 'node:net'],
    ['policy/x.ts', 'fs'],
    ['policy/x.ts', 'node:worker_threads'],
    ['policy/x.ts', '../audit/metrics.js'],
    ['audit/x.ts', '../proxy/server.js'],
    ['audit/x.ts', '../policy/policy.js'],
    ['certs/x.ts', '../appliance/config.js'],
    ['proxy/x.ts', '../appliance/config.js'],
    ['proxy/sub/x.ts', '../../appliance/config.js'],
  ];
  for (const [file, spec] of bad)
    t.not(violation(file, spec), null, `${file} → ${spec} is refused`);
  const good: [string, string][] = [
    ['policy/x.ts', './y.js'],
    ['policy/x.ts', 'node:crypto'],
    ['audit/x.ts', '../policy/errors.js'],
    ['audit/x.ts', 'prom-client'],
    ['proxy/x.ts', '../audit/observer.js'],
    ['proxy/locales/en.ts', './strings.js'],
    ['appliance/x.ts', '../proxy/server.js'],
  ];
  for (const [file, spec] of good)
    t.equal(violation(file, spec), null, `${file} → ${spec} is fine`);
  const src = "import a from './a.js';\nimport type { B } from '../b.js';\nexport { c } from './c.js';\nconst d = await import('./d.js');\nimport './e.js';";
  t.same(importsOf(src).sort(), ['../b.js', './a.js', './c.js', './d.js', './e.js'], 'static, type, re-export, dynamic and bare imports are all read');
  t.not(violation('proxy/x.ts', '../audit/metrics.js'), null, 'proxy/ takes observers from audit/observer.ts, not the prom-client barrel');
});

t.test('every source file keeps to its floor', async (t) => {
  const problems: string[] = [];
  let files = 0;
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory())
        walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) {
        files++;
        const rel = relative(ROOT, p).split('\\').join('/');
        for (const spec of importsOf(readFileSync(p, 'utf8'))) {
          const v = violation(rel, spec);
          if (v)
            problems.push(v);
        }
      }
    }
  };
  for (const f of FLOORS)
    walk(join(ROOT, f));
  t.ok(files > 100, `${files} source files read`);
  t.same(problems, [], 'no import against the floors');
});
