/**
 * `safespot audit key --config FILE`: the appliance's public key as a note verifier key line (the
 * file `audit verify --key` reads) on stdout, and its fingerprint on stderr.
 *
 * `safespot audit verify --key KEYFILE --journal FILE`: offline verification of a journal
 * (audit/verify.ts); `--key KEYFILE REPORT [--journal FILE]` of a signed report and
 * `--key KEYFILE EARLIER LATER --journal FILE` of two (audit/report-verify.ts). Exit 0 when every checkpoint signature and every covered row holds, 1 with the
 * first thing that does not, 2 on bad usage. Rows after the last checkpoint are not covered by any
 * signature: they are listed, never hidden.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafespotError } from '../../policy/errors.js';
import { IDENTITY_FILE, parseVerifierKey, readIdentityFile, type PublicIdentity } from '../../audit/identity.js';
import { verifyJournal, type JournalVerification } from '../../audit/verify.js';
import { verifyExtends, verifyReportFile, type ReportFile } from '../../audit/report-verify.js';
import { SIG_SUFFIX } from '../../audit/report-sign.js';
import { loadConfigFile } from '../config.js';
import type { Command } from '../io.js';
import { parseCommandArgs, writeOut } from '../io.js';

export const KEY_USAGE = 'safespot audit key --config FILE   (the public key, to stdout: a file `audit verify --key` accepts)';
export const VERIFY_USAGE =
  'safespot audit verify --key KEYFILE --journal FILE            (the journal: every checkpoint, every covered row)\n' +
  '       safespot audit verify --key KEYFILE REPORT [--journal FILE]   (its signature; with --journal, every figure)\n' +
  '       safespot audit verify --key KEYFILE EARLIER LATER --journal FILE   (LATER\'s tree extends EARLIER\'s)\n' +
  '  a csv or html REPORT is signed by REPORT.sig beside it; exit 0: all holds; 1: something does not (printed); 2: bad usage';

export const runKey: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(args, { config: { type: 'string', short: 'c' } }, KEY_USAGE, true);
  if (positionals.length !== 1 || !values.config) throw new SafespotError('ERR_USAGE', `--config FILE is required\nusage: ${KEY_USAGE}`);
  const config = loadConfigFile(values.config);
  const path = join(config.state.dir, IDENTITY_FILE);
  let id;
  try {
    id = readIdentityFile(path);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') {
      throw new SafespotError('ERR_JOURNAL', `no appliance identity at ${path} yet: it is made on the first \`safespot serve\``);
    }
    throw err;
  }
  io.stderr.write(`fingerprint ${id.fingerprint}\n`);
  await writeOut(io.stdout, `${id.verifierKey}\n`);
  return 0;
};

export function readKeyFile(path: string): PublicIdentity {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SafespotError('ERR_USAGE', `cannot read the key file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseVerifierKey(text);
  } catch (err) {
    throw new SafespotError('ERR_USAGE', `${path}: ${(err as Error).message}`);
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The verification in lines an auditor reads. */
export function describeJournal(path: string, v: JournalVerification, key: PublicIdentity): string {
  const lines = [`journal ${path}`, `key ${key.name} ${key.fingerprint}`];
  if (v.ok) lines.push('result INTACT');
  else lines.push(`result NOT INTACT: ${v.failure}`);
  lines.push(`checkpoints ${v.checkpoints}`, `rows ${v.rows}`, `tree ${v.treeSize} leaves${v.base ? ` (the first ${v.base} pruned by retention)` : ''}`);
  if (v.lastCheckpoint) lines.push(`last checkpoint ${v.lastCheckpoint.size} leaves, signed ${iso(v.lastCheckpoint.time)} (${v.lastCheckpoint.reason})`);
  for (const r of v.recovered) lines.push(`gap: ${r.rows} row(s) written before a crash were first signed at the next start, ${iso(r.signedAt)}`);
  if (v.uncovered) {
    lines.push(
      `gap: ${v.uncovered.rows} row(s) after the last checkpoint (ids ${v.uncovered.fromId}..${v.uncovered.toId}, ` +
        `${iso(v.uncovered.fromTime)} to ${iso(v.uncovered.toTime)}) are not covered by any signature (a crash before the next checkpoint, or rows added since)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** A report file and, beside it, its detached signature when there is one. */
function readReport(path: string): ReportFile | { error: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { error: `cannot read the report ${path}: ${(err as Error).message}` };
  }
  let sig: string | null = null;
  try {
    sig = readFileSync(path + SIG_SUFFIX, 'utf8');
  } catch {
    // none beside it: a json report embeds its own; verifyReport says when one is missing
  }
  return { text, sig };
}

function describeReport(path: string, key: PublicIdentity, ok: boolean, failure: string | null, checked: readonly string[]): string {
  const lines = [`report ${path}`, `key ${key.name} ${key.fingerprint}`, ok ? 'result INTACT' : `result NOT INTACT: ${failure}`];
  for (const c of checked) lines.push(`checked ${c}`);
  return `${lines.join('\n')}\n`;
}

export const runVerify: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(args, { key: { type: 'string' }, journal: { type: 'string' } }, VERIFY_USAGE, true);
  const files = positionals.slice(1);
  const problems: string[] = [];
  if (!values.key) problems.push('--key KEYFILE is required');
  if (!values.journal && files.length === 0) problems.push('--journal FILE (or report files) is required');
  if (files.length > 2) problems.push('give one report, or two (EARLIER LATER)');
  if (files.length === 2 && !values.journal) problems.push('EARLIER LATER needs --journal FILE: the consistency proof between their checkpoints is computed from it');
  if (problems.length > 0) throw new SafespotError('ERR_USAGE', `bad arguments\nusage: ${VERIFY_USAGE}`, { details: problems });
  const key = readKeyFile(values.key!);
  if (files.length === 0) {
    const v = verifyJournal(values.journal!, key);
    await writeOut(io.stdout, describeJournal(values.journal!, v, key));
    return v.ok ? 0 : 1;
  }
  const reports = files.map(readReport);
  const unreadable = reports.find((r): r is { error: string } => 'error' in r);
  if (unreadable) {
    await writeOut(io.stdout, `result NOT INTACT: ${unreadable.error}\n`);
    return 1;
  }
  const [first, second] = reports as ReportFile[];
  if (second) {
    const v = verifyExtends(first!, second, key, values.journal!);
    await writeOut(io.stdout, describeReport(`${files[0]} then ${files[1]}`, key, v.ok, v.failure, v.checked));
    return v.ok ? 0 : 1;
  }
  const v = verifyReportFile(first!, key, { journal: values.journal });
  await writeOut(io.stdout, describeReport(files[0]!, key, v.ok, v.failure, v.checked));
  return v.ok ? 0 : 1;
};
