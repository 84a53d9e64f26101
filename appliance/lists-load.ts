/**
 * From a validated Config to the plain compile input of policy/: read each list's source file and
 * carry the list options, allowlist and profiles across. File sources only for now; https:// sources
 * (download, refresh, last-good copy) come with the list-refresh issue and are refused clearly here.
 * Image lists are passed without text: the URL policy records them as skipped.
 */
import { readFileSync } from 'node:fs';
import { SafespotError } from '../policy/errors.js';
import { URL_KINDS } from '../policy/lists.js';
import type { CompileInput, ListInput } from '../policy/policy.js';
import type { Config } from './config.js';

const isUrlSource = (s: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/** Read every URL list named by `config` and build the compile input. Throws ERR_LIST_READ listing every unreadable source. */
export function compileInputFromConfig(config: Readonly<Config>, read: (path: string) => Uint8Array = readFileSync): CompileInput {
  const problems: string[] = [];
  const lists: ListInput[] = config.lists.map((l) => {
    const base = { id: l.id, category: l.category, kind: l.kind, mode: l.mode, overridable: l.overridable };
    if (!(URL_KINDS as readonly string[]).includes(l.kind)) return base;
    if (isUrlSource(l.source)) {
      problems.push(`list "${l.id}": source ${l.source} is a URL; this command reads files only so far (download it to a file and point source at the file)`);
      return base;
    }
    try {
      return { ...base, text: read(l.source) };
    } catch (err) {
      problems.push(`list "${l.id}": cannot read ${l.source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return base;
    }
  });
  if (problems.length) throw new SafespotError('ERR_LIST_READ', `${problems.length} list source(s) could not be read`, { details: problems });
  return {
    lists,
    allow: config.allow,
    profiles: config.profiles.map((p) => ({
      name: p.name,
      clients: p.clients,
      lists: p.lists,
      allow: p.allow,
      safeSearch: p.safeSearch,
      intercept: p.intercept,
    })),
    safeSearch: config.safeSearch,
    intercept: config.intercept,
  };
}
