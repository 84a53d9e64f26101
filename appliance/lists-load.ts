/**
 * From a validated Config to the plain compile input of policy/: read each list's source file and
 * carry the list options, allowlist and profiles across. File sources only for now; https:// sources
 * (download, refresh, last-good copy) come with the list-refresh issue and are refused clearly here.
 * Image hash lists (md5, sha1, sha256, pdq) are read the same way; the `images` config section
 * gives their matching options.
 */
import { readFileSync } from 'node:fs';
import { SafespotError } from '../policy/errors.js';
import type { CompileInput, ListInput } from '../policy/policy.js';
import type { Config } from './config.js';

const isUrlSource = (s: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/** Read every list named by `config` and build the compile input. Throws ERR_LIST_READ listing every unreadable source. */
export function compileInputFromConfig(config: Readonly<Config>, read: (path: string) => Uint8Array = readFileSync): CompileInput {
  const problems: string[] = [];
  const lists: ListInput[] = config.lists.map((l) => {
    const base = { id: l.id, category: l.category, kind: l.kind, mode: l.mode, overridable: l.overridable };
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
    images: { pdqDistance: config.images.pdqDistance, pdqMinQuality: config.images.pdqMinQuality, dihedral: config.images.dihedral },
  };
}
