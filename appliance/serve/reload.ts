/**
 * SIGHUP and POST /reload: re-read the config file (when serve was started with one) and hand it to
 * the composition's reload; a file that fails validation is refused with every problem logged, and
 * the running configuration keeps serving. Shared by the single-process and the worker composition.
 */
import { loadConfigFile, type Config } from '../config.js';
import type { Logger } from '../log.js';
import type { ReloadResult } from '../lists/policy-manager.js';

export async function reloadConfigFile(
  configPath: string | undefined,
  reload: (next?: Readonly<Config>) => Promise<ReloadResult>,
  log: Logger,
): Promise<ReloadResult> {
  if (!configPath) return reload();
  let next: Readonly<Config>;
  try {
    next = loadConfigFile(configPath);
  } catch (err) {
    const e = err as { message?: string; details?: readonly string[] };
    log.error('reload refused: config invalid; the running configuration keeps serving', { error: e.message ?? String(err), problems: e.details ?? [] });
    return { ok: false, error: [e.message ?? String(err), ...(e.details ?? [])].join('; ') };
  }
  return reload(next);
}
