/**
 * SIGHUP and POST /reload: re-read the config file (when serve was started with one) and hand it to
 * the composition's reload; a file that fails validation is refused with every problem logged, and
 * the running configuration keeps serving. Shared by the single-process and the worker composition.
 *
 * Every reload is on the record (issue 21, point 7): one `admin` row, action `reload`, in the
 * journal's tree, whose detail names what asked for it (`sighup`, `http` for POST /reload), the
 * SHA-256 of the exact bytes of the config file read (what an auditor compares with `sha256sum`
 * of the file the venue hands over), and whether it came into force or was refused and why.
 */
import { createHash } from 'node:crypto';
import type { Journal } from '../../audit/journal.js';
import { loadConfigFile, type Config } from '../config.js';
import type { Logger } from '../log.js';
import type { ReloadResult } from '../lists/policy-manager.js';

/** What asked for a reload: SIGHUP, POST /reload, or the program itself (tests, tools). */
export type ReloadTrigger = 'sighup' | 'http' | 'internal';

export interface ReloadRecordOptions {
  /** Where the reload's `admin` row goes (absent: not journaled, e.g. a tool's reload). */
  readonly journal?: Pick<Journal, 'record'>;
  readonly trigger?: ReloadTrigger;
}

/** The detail of a reload's admin row: short, digests and outcome only (never config content). */
export function reloadDetail(trigger: ReloadTrigger, configSha256: string | null, result: ReloadResult): string {
  const config = configSha256 === null ? 'no config file (lists refreshed)' : `config sha256:${configSha256}`;
  const outcome = result.ok
    ? `applied${result.version ? `; policy ${result.version}` : ''}${result.notApplied?.length ? `; restart needed for ${result.notApplied.join(',')}` : ''}`
    : `refused: ${result.error ?? 'unknown'}`;
  // The journal cuts details at 240 characters: the digest comes first so it is never cut.
  return `trigger ${trigger}; ${config}; ${outcome}`;
}

export async function reloadConfigFile(
  configPath: string | undefined,
  reload: (next?: Readonly<Config>) => Promise<ReloadResult>,
  log: Logger,
  record: ReloadRecordOptions = {},
): Promise<ReloadResult> {
  const trigger = record.trigger ?? 'internal';
  const note = (sha: string | null, result: ReloadResult): ReloadResult => {
    try {
      record.journal?.record({ kind: 'admin', action: 'reload', detail: reloadDetail(trigger, sha, result) });
    } catch (err) {
      log.warn('the reload could not be journaled', { error: String((err as Error)?.message ?? err) });
    }
    return result;
  };
  if (!configPath) return note(null, await reload());
  let next: Readonly<Config>;
  let sha: string | null = null;
  try {
    next = loadConfigFile(configPath, (bytes) => (sha = createHash('sha256').update(bytes).digest('hex')));
  } catch (err) {
    const e = err as { message?: string; details?: readonly string[] };
    log.error('reload refused: config invalid; the running configuration keeps serving', { error: e.message ?? String(err), problems: e.details ?? [] });
    const problems = e.details?.length ? `${e.details.length} problem(s)` : (e.message ?? String(err));
    note(sha, { ok: false, error: `config invalid, ${problems}` });
    return { ok: false, error: [e.message ?? String(err), ...(e.details ?? [])].join('; ') };
  }
  return note(sha, await reload(next));
}
