/**
 * `safespot audit report --config FILE --from ISO8601 --to ISO8601 --format json|csv|html [--journal FILE]`:
 * print a period report computed from the audit journal (audit/report.ts). The journal is opened
 * read-only, so a report can be made while the appliance runs. `audit key`, `audit verify`
 * (audit-verify.ts), `audit report --prometheus` (audit-city.ts) and `audit merge` (audit-merge.ts)
 * are dispatched from here.
 */
import { SafespotError } from '../../policy/errors.js';
import { makeReport } from './audit-report.js';
import { loadConfigFile } from '../config.js';
import type { Command } from '../io.js';
import { parseCommandArgs } from '../io.js';
import { KEY_USAGE, runKey, runVerify, VERIFY_USAGE } from './audit-verify.js';
import { PROM_USAGE, runPromReport } from './audit-city.js';
import { MERGE_USAGE, runMerge } from './audit-merge.js';

const USAGE =
  'safespot audit report --config FILE --from ISO8601 --to ISO8601 [--format json|csv|html] [--out FILE] [--lang en|sq] [--journal FILE]\n' +
  '  signed with the appliance key when state.dir holds it: json embeds the signature, csv and html need --out FILE (signature in FILE.sig);\n' +
  PROM_USAGE +
  '  --from is inclusive, --to exclusive; a date alone (2025-06-01) means midnight UTC;\n' +
  '  a date and time needs a zone (2025-06-01T00:00:00Z or +02:00).';

const FORMATS = ['json', 'csv', 'html'] as const;
type Format = (typeof FORMATS)[number];

/** ISO 8601 date (UTC midnight) or date-time with an explicit zone; Unix ms, or null. */
export function parseIsoTime(text: string): number | null {
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (date) {
    const ms = Date.UTC(Number(date[1]), Number(date[2]) - 1, Number(date[3]));
    return new Date(ms).toISOString().slice(0, 10) === text ? ms : null;
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

export const run: Command = async (args, io) => {
  // `key` and `verify` (issue 21): appliance/commands/audit-verify.ts.
  const sub = args[0];
  if (sub === 'key') return runKey(args, io);
  if (sub === 'verify') return runVerify(args, io);
  // `merge` (issue 20): one city table from signed venue reports, appliance/commands/audit-merge.ts.
  if (sub === 'merge') return runMerge(args, io);
  return runReport(args, io);
};

const runReport: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      config: { type: 'string', short: 'c' },
      from: { type: 'string' },
      to: { type: 'string' },
      format: { type: 'string', default: 'json' },
      journal: { type: 'string' },
      out: { type: 'string', short: 'o' },
      lang: { type: 'string' },
      // issue 20: the city report from a central Prometheus (appliance/commands/audit-city.ts).
      prometheus: { type: 'string' },
      'venue-label': { type: 'string', default: 'venue' },
      'prometheus-token-file': { type: 'string' },
    },
    USAGE,
    true,
  );
  if (positionals.length !== 1 || positionals[0] !== 'report') {
    throw new SafespotError('ERR_USAGE', `expected the subcommand "report", "key", "verify" or "merge"\nusage: ${USAGE}\n       ${KEY_USAGE}\n       ${VERIFY_USAGE}\n       ${MERGE_USAGE}`);
  }
  const problems: string[] = [];
  if (!values.config && !values.journal && !values.prometheus) problems.push('--config FILE (or --journal FILE) is required');
  if (!values.from) problems.push('--from is required');
  if (!values.to) problems.push('--to is required');
  const from = values.from ? parseIsoTime(values.from) : null;
  const to = values.to ? parseIsoTime(values.to) : null;
  if (values.from && from === null) problems.push(`--from "${values.from}" is not an ISO 8601 date or date-time with a zone`);
  if (values.to && to === null) problems.push(`--to "${values.to}" is not an ISO 8601 date or date-time with a zone`);
  if (from !== null && to !== null && to <= from) problems.push('--to must be after --from');
  const format = values.format as Format;
  if (!FORMATS.includes(format)) problems.push(`--format must be one of ${FORMATS.join(', ')}`);
  if (problems.length > 0 || from === null || to === null) {
    throw new SafespotError('ERR_USAGE', `bad arguments\nusage: ${USAGE}`, { details: problems });
  }
  if (values.prometheus) return runPromReport({ ...values, prometheus: values.prometheus, from, to, format }, io);

  const config = values.config ? loadConfigFile(values.config) : null;
  // Signed when the config's appliance identity exists (issue 21): appliance/commands/audit-report.ts.
  return makeReport({ config, journalPath: values.journal ?? config!.journal.path, from, to, format, out: values.out, lang: values.lang }, io);
};
