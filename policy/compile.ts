/**
 * Compile: plain inputs (list texts, allow entries, profiles, options) into PolicyParts. No fs: the
 * appliance reads the files (appliance/lists-load.ts). Every URL list is parsed, each entry hashed
 * and added to one store; allow entries go to a second store keyed by profile. Image lists are
 * recorded as skipped (they are the image side's). Problems of the inputs are collected and thrown
 * together as ERR_CONFIG_INVALID; a list that is mostly garbage throws ERR_LIST_INVALID.
 */
import { SafespotError } from './errors.js';
import { HashStoreBuilder } from './hash-store.js';
import { CidrSet } from './ip.js';
import { listHost, pageExpression, parseUrlList, URL_KINDS, type UrlListKind } from './lists.js';
import type { InterceptOptions, ListMeta, ListMode, PolicyParts, ProfileMeta } from './sections.js';
import { sha256StringWords } from './sha256.js';

/** One list as compile gets it: the config entry and its text (bytes or string). */
export interface ListInput {
  readonly id: string;
  readonly category: string;
  readonly kind: string;
  readonly mode?: ListMode;
  /** Default true; ignored (false) for category csam. */
  readonly overridable?: boolean;
  /** The list body; image kinds may leave it out. */
  readonly text?: string | Uint8Array;
}

export interface ProfileInput {
  readonly name: string;
  readonly clients: readonly string[];
  /** List ids that apply; absent = all lists. */
  readonly lists?: readonly string[];
  /** Added to the top-level allowlist for this profile's clients. */
  readonly allow?: readonly string[];
  readonly safeSearch?: boolean;
  readonly intercept?: InterceptOptions;
}

export interface CompileInput {
  readonly lists: readonly ListInput[];
  readonly allow?: readonly string[];
  readonly profiles?: readonly ProfileInput[];
  readonly safeSearch?: boolean;
  readonly intercept?: InterceptOptions;
  /** Entries of each decision cache (default 65,536). */
  readonly cacheSize?: number;
}

const DEFAULT_CACHE = 65_536;
const NO_INTERCEPT: InterceptOptions = Object.freeze({ enabled: false, include: [], exclude: [] });

function configError(problems: string[]): never {
  throw new SafespotError('ERR_CONFIG_INVALID', `policy: ${problems.length} problem(s)`, { details: problems });
}

/** The expression of an allow entry: a domain (`host/`) or a URL (its page expression). */
function allowExpression(entry: string): string | null {
  const text = entry.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || text.includes('/')) return pageExpression(text);
  const host = listHost(text.startsWith('*.') ? text.slice(2) : text);
  return host ? `${host}/` : null;
}

const WORDS = new Uint32Array(8);

function addExpressions(builder: HashStoreBuilder, list: number, expressions: readonly string[]) {
  builder.beginList(list);
  for (const e of expressions) {
    sha256StringWords(e, WORDS);
    builder.add(WORDS[0]!, WORDS[1]!, 32);
  }
  return builder.endList();
}

/** Compile plain inputs into the parts of a policy. Throws SafespotError (ERR_LIST_INVALID, ERR_CONFIG_INVALID). */
export function compileParts(input: CompileInput): PolicyParts {
  const problems: string[] = [];
  const lists: ListMeta[] = [];
  const skipped: Array<{ id: string; kind: string; note: string }> = [];
  const block = new HashStoreBuilder();
  const urlListIds = new Set<string>();
  const allIds = new Set<string>();
  for (const l of input.lists) {
    allIds.add(l.id);
    if (!(URL_KINDS as readonly string[]).includes(l.kind)) {
      skipped.push({ id: l.id, kind: l.kind, note: `image list (${l.kind}): matched by the image side, not compiled into the URL policy` });
      continue;
    }
    if (lists.length >= 0xffff) problems.push(`too many URL lists (at most 65535)`);
    if (l.text === undefined) {
      problems.push(`list "${l.id}" has no text`);
      continue;
    }
    const kind = l.kind as UrlListKind;
    const parsed = parseUrlList(kind, l.text, l.id);
    const number = lists.length;
    let added;
    if (kind === 'hashed-urls') {
      const { hi, lo, len } = parsed.prefixes;
      block.beginList(number);
      for (let i = 0; i < hi.length; i++) block.add(hi[i]!, lo[i]!, len[i]!);
      added = block.endList();
    } else {
      added = addExpressions(block, number, parsed.expressions);
    }
    urlListIds.add(l.id);
    lists.push({
      id: l.id,
      category: l.category,
      kind,
      entries: added.entries,
      duplicates: added.duplicates,
      mode: l.mode ?? 'enforce',
      // Hotline (csam) lists can never be overridden, whatever the configuration says.
      overridable: l.category === 'csam' ? false : (l.overridable ?? true),
      report: parsed.report,
    });
  }

  const allow = new HashStoreBuilder();
  let allowEntries = 0;
  const allowSet = (p: number, entries: readonly string[], where: string) => {
    const exprs: string[] = [];
    entries.forEach((entry, i) => {
      const e = allowExpression(entry);
      if (e === null) problems.push(`${where}.${i}: "${entry.slice(0, 200)}" is neither a domain nor a URL`);
      else exprs.push(e);
    });
    allowEntries += addExpressions(allow, p, exprs).entries;
  };
  const top = {
    safeSearch: input.safeSearch ?? false,
    intercept: input.intercept ?? NO_INTERCEPT,
  };
  const profiles: ProfileMeta[] = [{ name: 'default', clients: [], lists: null, ...top }];
  allowSet(0, input.allow ?? [], 'allow');
  (input.profiles ?? []).forEach((p, i) => {
    for (const c of p.clients) {
      try {
        CidrSet.parse([c]);
      } catch (err) {
        problems.push(`profiles.${i}.clients: ${(err as Error).message}`);
      }
    }
    for (const id of p.lists ?? []) if (!allIds.has(id)) problems.push(`profiles.${i}.lists: no list has id "${id}"`);
    allowSet(i + 1, p.allow ?? [], `profiles.${i}.allow`);
    profiles.push({
      name: p.name,
      clients: [...p.clients],
      lists: p.lists ? p.lists.filter((id) => urlListIds.has(id)) : null,
      safeSearch: p.safeSearch ?? top.safeSearch,
      intercept: p.intercept ?? top.intercept,
    });
  });
  if (profiles.length > 0xffff) problems.push('too many profiles');
  if (problems.length) configError(problems);
  return {
    meta: { lists, skipped, profiles, allowEntries, cacheSize: input.cacheSize ?? DEFAULT_CACHE },
    block: block.build(lists.length).arrays,
    allow: allow.build(profiles.length).arrays,
  };
}

/** Compile plain inputs into a Policy. */
