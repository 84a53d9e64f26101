/**
 * `safespot audit report --prometheus URL [--venue-label venue] [--prometheus-token-file FILE] --from --to
 * [--format json|csv|html]` (issue 20, point 3): the period report for every venue and the city total
 * from a central Prometheus HTTP API (audit/prom-report.ts). appliance/commands/audit.ts parses the
 * shared flags and hands over here.
 */
import { readFileSync } from 'node:fs';
import { SafespotError } from '../../policy/errors.js';
import { buildPromReport } from '../../audit/prom-report.js';
import { promReportCsv, promReportHtml, promReportJson } from '../../audit/prom-report-format.js';
import type { Io } from '../io.js';
import { writeOut } from '../io.js';

export const PROM_USAGE =
  'safespot audit report --prometheus URL [--venue-label venue] [--prometheus-token-file FILE] --from ISO8601 --to ISO8601 [--format json|csv|html]\n' +
  '  every venue (series labelled --venue-label) and the city total, from a central Prometheus HTTP API;\n';

export async function runPromReport(
  v: { prometheus: string; 'venue-label'?: string; 'prometheus-token-file'?: string; config?: string; journal?: string; from: number; to: number; format: string },
  io: Io,
): Promise<number> {
  const problems: string[] = [];
  if (v.config || v.journal) problems.push('--prometheus reads the centre, not a journal: leave out --config and --journal');
  let url: URL | null = null;
  try {
    url = new URL(v.prometheus);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(`--prometheus "${v.prometheus}" is not an http(s) URL`);
  } catch {
    problems.push(`--prometheus "${v.prometheus}" is not a URL`);
  }
  const label = v['venue-label'] ?? 'venue';
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label)) problems.push(`--venue-label "${label}" is not a Prometheus label name`);
  if (problems.length > 0 || !url) throw new SafespotError('ERR_USAGE', 'bad arguments', { details: problems });
  let token: string | undefined;
  if (v['prometheus-token-file']) {
    try {
      token = readFileSync(v['prometheus-token-file'], 'utf8').trim();
    } catch (cause) {
      throw new SafespotError('ERR_USAGE', `--prometheus-token-file: ${(cause as Error).message}`, { cause });
    }
  }
  const report = await buildPromReport({ url: v.prometheus, venueLabel: label, token }, { from: v.from, to: v.to });
  const text = v.format === 'csv' ? promReportCsv(report) : v.format === 'html' ? promReportHtml(report) : promReportJson(report);
  await writeOut(io.stdout, text);
  return 0;
}
