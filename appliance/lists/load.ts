/**
 * From a validated Config to the plain compile input of policy/: read each list's source file and
 * carry the list options, allowlist and profiles across. File sources only for now; https:// sources
 * (download, refresh, last-good copy) come with the list-refresh issue and are refused clearly here.
 * Image hash lists (md5, sha1, sha256, pdq) are read the same way; the `images` config section
 * gives their matching options.
 */
import { SafespotError } from '../../policy/errors.js';
import type { CompileInput, ListInput } from '../../policy/policy.js';
import type { Config } from '../config.js';
import { readListFile } from './builtin.js';

const isUrlSource = (s: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/** Read every list named by `config` and build the compile input. Throws ERR_LIST_READ listing every unreadable source. */
export function compileInputFromConfig(config: Readonly<Config>, read: (path: string) => Uint8Array = readListFile): CompileInput {
  const problems: string[] = [];
  const bodies = new Map<string, Uint8Array>();
  for (const l of config.lists) {
    if (isUrlSource(l.source)) {
      problems.push(`list "${l.id}": source ${l.source} is a URL; this command reads files only (serve downloads URL sources; point source at a downloaded file here)`);
      continue;
    }
    try {
      bodies.set(l.id, read(l.source));
    } catch (err) {
      problems.push(`list "${l.id}": cannot read ${l.source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (problems.length) throw new SafespotError('ERR_LIST_READ', `${problems.length} list source(s) could not be read`, { details: problems });
  return compileInputFromBodies(config, bodies);
}

/**
 * The compile input from list bodies already in hand (serve's refresher fetched and verified them),
 * by list id. A configured list without a body is an error: a policy never silently misses a list.
 */
export function compileInputFromBodies(config: Readonly<Config>, bodies: ReadonlyMap<string, Uint8Array>): CompileInput {
  const missing = config.lists.filter((l) => !bodies.has(l.id)).map((l) => `list "${l.id}" has no body yet`);
  if (missing.length) throw new SafespotError('ERR_LIST_READ', `${missing.length} list(s) missing`, { details: missing });
  const lists: ListInput[] = config.lists.map((l) => ({
    id: l.id,
    category: l.category,
    kind: l.kind,
    mode: l.mode,
    overridable: l.overridable,
    text: bodies.get(l.id)!,
  }));
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
    // Only the policy's part (upstreamCa is the proxy's, and must not change the bundle version).
    intercept: { enabled: config.intercept.enabled, include: config.intercept.include, exclude: config.intercept.exclude },
    images: { pdqDistance: config.images.pdqDistance, pdqMinQuality: config.images.pdqMinQuality, dihedral: config.images.dihedral },
  };
}
