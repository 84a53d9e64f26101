/**
 * The making of `safespot audit report` once its arguments are read (appliance/commands/audit.ts):
 * with `--config` and the appliance's identity (state.dir/identity.json, made by the first serve) the
 * report is signed (issue 21): a `report` checkpoint is signed first, so it covers the period's end,
 * and the figures are computed from exactly the rows it covers (audit/report-make.ts). json embeds
 * the signature; csv and html get a detached FILE.sig, so they need `--out FILE`. With `--journal`
 * alone (or no identity yet) the report is unsigned, as before, and may go to stdout in any format.
 */
import { basename, join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { SafespotError } from '../../policy/errors.js';
import { IDENTITY_FILE, readIdentityFile, type Identity } from '../../audit/identity.js';
import { openJournal } from '../../audit/journal.js';
import { safespotVersion } from '../../audit/metrics.js';
import { checkpointNow, coveredCopy, newestCheckpoint, reportFromJournal, type CoveringCheckpoint } from '../../audit/report-make.js';
import { computeReport, loadReportInput, reportCsv, reportHtml, reportJson } from '../../audit/report.js';
import { REPORT_LANGS, type ReportLang } from '../../audit/report-strings.js';
import { SIG_SUFFIX, signJsonReport, signReportFile, type ReportBasis, type ReportFormat, type SignInput } from '../../audit/report-sign.js';
import type { Config } from '../config.js';
import type { Io } from '../io.js';
import { writeOut } from '../io.js';

export interface ReportRequest {
  config: Readonly<Config> | null;
  journalPath: string;
  from: number;
  to: number;
  format: ReportFormat;
  out?: string;
  lang?: string;
}

export const generator = (): string => `safespot ${safespotVersion()}`;

/** The appliance's identity for signing, or null (with why) when there is none to sign with. */
function identityOf(config: Readonly<Config> | null): { identity: Identity | null; why: string | null } {
  if (!config) return { identity: null, why: null };
  const path = join(config.state.dir, IDENTITY_FILE);
  try {
    return { identity: readIdentityFile(path), why: null };
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { identity: null, why: `no appliance identity at ${path} yet (it is made by the first \`safespot serve\`)` };
    throw err;
  }
}

export async function makeReport(req: ReportRequest, io: Io): Promise<number> {
  const lang = (req.lang ?? 'en') as ReportLang;
  if (!(REPORT_LANGS as readonly string[]).includes(lang)) {
    throw new SafespotError('ERR_USAGE', `--lang must be one of ${REPORT_LANGS.join(', ')}`);
  }
  const { identity, why } = identityOf(req.config);
  if (identity && req.format !== 'json' && !req.out) {
    throw new SafespotError(
      'ERR_USAGE',
      `a signed ${req.format} report is signed by a file beside it: give --out FILE (writes FILE and FILE${SIG_SUFFIX}); json embeds its signature and may go to stdout`,
    );
  }
  const warn = (m: string) => io.stderr.write(`safespot: ${m}\n`);
  const categories = req.config ? [...new Set(req.config.lists.map((l) => l.category))] : [];
  const lists = req.config ? req.config.lists.map((l) => l.id) : [];
  let text: string;
  let sig: string | null = null;
  if (!identity) {
    if (why) warn(`the report is NOT signed: ${why}`);
    const journal = openJournal({ path: req.journalPath, retentionDays: 36500, recordUrls: false, recordClients: false, readOnly: true });
    try {
      const report = computeReport({ ...loadReportInput(journal, { from: req.from, to: req.to, categories, lists }), generator: generator() });
      text = req.format === 'csv' ? reportCsv(report) : req.format === 'html' ? reportHtml(report, { lang }) : reportJson(report);
    } finally {
      journal.close();
    }
  } else {
    let cp: CoveringCheckpoint | null;
    try {
      cp = checkpointNow(req.journalPath, identity);
    } catch (err) {
      // A read-only copy (an auditor's, or a full disk): the newest checkpoint already signed covers it.
      cp = newestCheckpoint(req.journalPath);
      warn(`could not sign a checkpoint for the report (${(err as Error).message}); it is covered by the newest one in the journal${cp ? `, ${new Date(cp.time).toISOString()}` : ''}`);
    }
    if (!cp) throw new SafespotError('ERR_JOURNAL', `the journal ${req.journalPath} has no signed checkpoint to cover a signed report (a journal older than signed checkpoints: make an unsigned report with --journal)`);
    const copy = coveredCopy(req.journalPath, cp.size);
    try {
      const basis: ReportBasis = {
        from: req.from,
        to: req.to,
        generatedAt: cp.time,
        journal: req.journalPath,
        categories,
        lists,
        session: copy.session,
        site: { id: req.config!.site.id, name: req.config!.site.name || null },
        generator: generator(),
        ...(req.format === 'html' ? { lang } : {}),
        ...(req.out ? { file: basename(req.out) } : {}),
      };
      const report = reportFromJournal(copy.path, basis, { key: identity, checkpoint: cp, withNote: req.format === 'json' });
      const body: SignInput = { from: req.from, to: req.to, checkpoint: { size: cp.size, root: cp.root, time: cp.time, reason: cp.reason }, basis };
      if (req.format === 'json') text = signJsonReport(JSON.parse(JSON.stringify(report)) as Record<string, unknown>, body, identity);
      else {
        text = req.format === 'csv' ? reportCsv(report) : reportHtml(report, { lang, file: basis.file });
        sig = signReportFile(req.format, text, body, identity);
      }
    } finally {
      copy.dispose();
    }
  }
  if (req.out) {
    writeFileSync(req.out, text);
    if (sig !== null) writeFileSync(req.out + SIG_SUFFIX, sig);
    io.stderr.write(`wrote ${req.out}${sig !== null ? ` and ${req.out}${SIG_SUFFIX}` : ''}${identity ? ` (signed by ${identity.name}, ${identity.fingerprint})` : ''}\n`);
  } else await writeOut(io.stdout, text);
  return 0;
}
