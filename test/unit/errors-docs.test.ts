/** docs/errors.md and the ERRORS table stay in sync: every code documented with its statuses, nothing extra. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ERRORS } from '../../policy/errors.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');

t.test('docs/errors.md lists every error code with its HTTP status, TLS alert and exit status', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const m = /^\|\s*`(ERR_[A-Z_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.split('|').map((c) => c.trim()));
  }
  for (const [code, spec] of Object.entries(ERRORS)) {
    const row = rows.get(code);
    if (!row) {
      t.fail(`${code} is missing from docs/errors.md; add: | \`${code}\` | ${spec.http} | ${spec.tls} | ${spec.exit} | ${spec.summary} |`);
      continue;
    }
    t.same(row.slice(0, 3), [String(spec.http), spec.tls, String(spec.exit)], `${code} statuses documented as in the table`);
  }
  for (const code of rows.keys()) t.ok(code in ERRORS, `${code} in docs/errors.md exists in policy/errors.ts`);
});

t.test('every error code is raised or read somewhere: no dead codes in the table', async (t) => {
  const { readdirSync, statSync } = await import('node:fs');
  const sources: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) sources.push(readFileSync(p, 'utf8'));
    }
  };
  for (const floor of ['policy', 'proxy', 'audit', 'certs', 'appliance']) walk(join(ROOT, floor));
  const all = sources.filter((s) => !s.includes('export const ERRORS = {')).join('\n');
  for (const code of Object.keys(ERRORS)) {
    t.ok(all.includes(`'${code}'`) || all.includes(`ERRORS.${code}`), `${code} is raised (SafespotError('${code}', …)) or read (ERRORS.${code}) outside the table`);
  }
});
