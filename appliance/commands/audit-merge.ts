/**
 * `safespot audit merge (--key KEYFILE … | --keys DIR) [--allow-different-periods] [--format text|json|csv] REPORT…`
 * (issue 20, point 3): one city table from signed per-venue json reports (audit/report-merge.ts).
 * Exit 0 with the table on stdout; 1 when any report is refused (every refused file and why, on
 * stderr; nothing merged); 2 on bad usage (every problem listed).
 *
 * Keys: `--key` (repeatable) reads one verifier key file each (what `safespot audit key` prints);
 * `--keys DIR` reads every `*.pub` file in DIR. A report is verified by the given key whose
 * fingerprint it names; a report naming another fingerprint is refused.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SafespotError } from '../../policy/errors.js';
import { parseVerifierKey, type PublicIdentity } from '../../audit/identity.js';
import { mergeReports, type MergeInput } from '../../audit/report-merge.js';
import { mergeCsv, mergeJson, mergeText } from '../../audit/report-merge-format.js';
import type { Command } from '../io.js';
import { parseCommandArgs, writeOut } from '../io.js';

export const MERGE_USAGE =
  'safespot audit merge (--key KEYFILE ... | --keys DIR) [--allow-different-periods] [--format text|json|csv] REPORT.json...\n' +
  '  one city table from signed venue reports (`audit report --format json`); each is verified by the given key whose\n' +
  '  fingerprint it names (--keys DIR: every *.pub in DIR); exit 1 when any is refused, 2 on bad usage;\n' +
  '  the table is unsigned: the reports remain the evidence';

const FORMATS = ['text', 'json', 'csv'] as const;

function readKey(path: string, problems: string[]): PublicIdentity | null {
  try {
    return parseVerifierKey(readFileSync(path, 'utf8'));
  } catch (err) {
    problems.push(`key ${path}: ${(err as Error).message}`);
    return null;
  }
}

/** Every key of --key and --keys; each problem appended. */
function readKeys(files: readonly string[], dir: string | undefined, problems: string[]): PublicIdentity[] {
  const paths = [...files];
  if (dir !== undefined) {
    try {
      const pubs = readdirSync(dir)
        .filter((n) => n.endsWith('.pub'))
        .sort()
        .map((n) => join(dir, n))
        .filter((p) => statSync(p).isFile());
      if (pubs.length === 0) problems.push(`--keys ${dir}: no *.pub key file in it`);
      paths.push(...pubs);
    } catch (err) {
      problems.push(`--keys ${dir}: ${(err as Error).message}`);
    }
  }
  return paths.map((p) => readKey(p, problems)).filter((k): k is PublicIdentity => k !== null);
}

export const runMerge: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      key: { type: 'string', multiple: true },
      keys: { type: 'string' },
      'allow-different-periods': { type: 'boolean', default: false },
      format: { type: 'string', default: 'text' },
    },
    MERGE_USAGE,
    true,
  );
  const files = positionals.slice(1);
  const problems: string[] = [];
  if (files.length === 0) problems.push('give the venue reports to merge (REPORT.json ...)');
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(resolve(f))) problems.push(`${f} is given twice`);
    seen.add(resolve(f));
  }
  if (!values.key?.length && values.keys === undefined) problems.push('--key KEYFILE (repeatable) or --keys DIR is required: reports are verified against keys you hold');
  const format = values.format as (typeof FORMATS)[number];
  if (!FORMATS.includes(format)) problems.push(`--format must be one of ${FORMATS.join(', ')}`);
  const keys = readKeys(values.key ?? [], values.keys, problems);
  if (problems.length > 0) throw new SafespotError('ERR_USAGE', `bad arguments\nusage: ${MERGE_USAGE}`, { details: problems });

  const inputs: MergeInput[] = [];
  const unreadable: string[] = [];
  for (const file of files) {
    try {
      inputs.push({ file, text: readFileSync(file, 'utf8') });
    } catch (err) {
      unreadable.push(`${file}: cannot read it: ${(err as Error).message}`);
    }
  }
  const result = mergeReports(inputs, keys, { allowDifferentPeriods: values['allow-different-periods'] });
  const refused = [...unreadable, ...(result.ok ? [] : result.refusals.map((r) => `${r.file}: ${r.reason}`))];
  if (refused.length > 0 || !result.ok) {
    io.stderr.write(`safespot: audit merge refused ${refused.length} report(s); nothing is merged:\n${refused.map((l) => `  - ${l}\n`).join('')}`);
    return 1;
  }
  const m = result.merge;
  await writeOut(io.stdout, format === 'json' ? mergeJson(m) : format === 'csv' ? mergeCsv(m) : mergeText(m));
  return 0;
};
