/**
 * Compile: plain inputs (list texts, allow entries, profiles, options) into PolicyParts. No fs: the
 * appliance reads the files (appliance/lists/load.ts). Every URL list is parsed, each entry hashed
 * and added to one store; allow entries go to a second store keyed by profile. Image hash lists
 * (md5, sha1, sha256, pdq) are parsed with parseImageList and compiled into one ImageMatcher. Problems
 * of the inputs are collected and thrown together as ERR_CONFIG_INVALID; a list that is mostly
 * garbage throws ERR_LIST_INVALID.
 */
import { SafespotError } from './errors.js';
import { HashStoreBuilder } from './hash-store.js';
import { IMAGE_LIST_KINDS, parseImageList, type ImageListKind } from './image-list-parse.js';
import { ImageMatcher, type ImageListInput, type ImageMatcherOptions } from './image-lists.js';
import { CidrSet } from './ip.js';
import { countLines, scanUrlList } from './compile-lists.js';
import { listHost, pageExpression, URL_KINDS, type UrlListKind } from './lists.js';
import type { ImageListMeta, InterceptOptions, ListMeta, ListMode, PolicyParts, ProfileMeta } from './sections.js';
import { sha256StringWords } from './sha256.js';

/** One list as compile gets it: the config entry and its text (bytes or string). */
export interface ListInput {
  readonly id: string;
  readonly category: string;
  readonly kind: string;
  readonly mode?: ListMode;
  /** Default true; ignored (false) for category csam. */
  readonly overridable?: boolean;
  /** The list body (every kind, image lists included). */
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
  /** Image matching options (config `images`); defaults: distance 31, quality 50, dihedral variants on (a mirror or rotation of a listed image matches). */
  readonly images?: Partial<ImageMatcherOptions>;
}

const IMAGE_DEFAULTS: ImageMatcherOptions = Object.freeze({ pdqDistance: 31, pdqMinQuality: 50, dihedral: true });

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
  const images: ImageListMeta[] = [];
  const imageInputs: ImageListInput[] = [];
  const imageOptions: ImageMatcherOptions = { ...IMAGE_DEFAULTS, ...input.images };
  const block = new HashStoreBuilder();
  const allIds = new Set<string>();
  // Every refused list is reported, not only the first (an operator fixes them all in one go).
  const refused: SafespotError[] = [];
  const refuse = (err: unknown): void => {
    if (!(err instanceof SafespotError) || err.code !== 'ERR_LIST_INVALID') throw err;
    refused.push(err);
  };
  // csam lists apply to every profile, whatever its `lists` say: certification never lifts the
  // CSAM block, so a profile may add or leave out other lists but never these.
  const csamIds: string[] = [];
  for (const l of input.lists) {
    allIds.add(l.id);
    if (l.category === 'csam') csamIds.push(l.id);
    if ((IMAGE_LIST_KINDS as readonly string[]).includes(l.kind)) {
      if (l.text === undefined) problems.push(`list "${l.id}" has no text`);
      else {
        try {
          compileImageList(l, l.kind as ImageListKind, l.text, imageOptions, images, imageInputs);
        } catch (err) {
          refuse(err);
        }
      }
      continue;
    }
    if (!(URL_KINDS as readonly string[]).includes(l.kind)) {
      problems.push(`list "${l.id}": unknown kind "${l.kind}"`);
      continue;
    }
    if (lists.length >= 0xffff) problems.push(`too many URL lists (at most 65535)`);
    if (l.text === undefined) {
      problems.push(`list "${l.id}" has no text`);
      continue;
    }
    const kind = l.kind as UrlListKind;
    // Streaming: the list's bytes are hashed line by line into a table sized once by its line
    // count; no array of lines or expressions is ever made (compile-lists.ts).
    block.beginList(lists.length, countLines(l.text));
    let report;
    try {
      report = scanUrlList(kind, l.text, l.id, block);
    } catch (err) {
      block.abortList();
      refuse(err);
      continue;
    }
    const added = block.endList();
    lists.push({
      id: l.id,
      category: l.category,
      kind,
      entries: added.entries,
      duplicates: added.duplicates,
      mode: l.mode ?? 'enforce',
      // Hotline (csam) lists can never be overridden, whatever the configuration says.
      overridable: l.category === 'csam' ? false : (l.overridable ?? true),
      report,
    });
  }

  if (refused.length === 1) throw refused[0]!;
  if (refused.length > 1) {
    const details = refused.flatMap((e) => [e.message, ...e.details.map((d) => `  ${d}`)]);
    throw new SafespotError('ERR_LIST_INVALID', `${refused.length} lists refused`, { details });
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
      // URL and image list ids alike; each side picks its own.
      lists: p.lists ? [...new Set([...p.lists.filter((id) => allIds.has(id)), ...csamIds])] : null,
      safeSearch: p.safeSearch ?? top.safeSearch,
      intercept: p.intercept ?? top.intercept,
    });
  });
  if (profiles.length > 0xffff) problems.push('too many profiles');
  if (images.length > 0xffff) problems.push('too many image lists (at most 65535)');
  if (problems.length) configError(problems);
  let matcher: ImageMatcher | null = null;
  if (imageInputs.length > 0) {
    try {
      matcher = ImageMatcher.compile(imageInputs, imageOptions);
    } catch (err) {
      if (err instanceof SafespotError && err.code === 'ERR_LIST_INVALID') configError([`images: ${err.message}`]);
      throw err;
    }
  }
  return {
    meta: { lists, images, profiles, allowEntries, cacheSize: input.cacheSize ?? DEFAULT_CACHE },
    block: block.build(lists.length).arrays,
    allow: allow.build(profiles.length).arrays,
    images: matcher,
  };
}

/**
 * Parse one image list into `metas` and `inputs` (same index = image list number). A list that is
 * mostly garbage throws ERR_LIST_INVALID naming the list (never its content).
 */
function compileImageList(
  l: ListInput,
  kind: ImageListKind,
  text: string | Uint8Array,
  options: ImageMatcherOptions,
  metas: ImageListMeta[],
  inputs: ImageListInput[],
): void {
  // Non-UTF-8 bytes become U+FFFD and so a malformed line, like any other bad line.
  const body = typeof text === 'string' ? text : new TextDecoder('utf-8').decode(text);
  let list;
  try {
    list = parseImageList(body, kind, { pdqMinQuality: options.pdqMinQuality });
  } catch (err) {
    if (err instanceof SafespotError) {
      throw new SafespotError(err.code, `list "${l.id}": ${err.message}`, { details: err.details });
    }
    throw err;
  }
  const mode = l.mode ?? 'enforce';
  metas.push({ id: l.id, category: l.category, kind, entries: list.count, duplicates: list.report.duplicates, mode, report: list.report });
  inputs.push({ id: l.id, category: l.category, mode, list });
}

/** Compile plain inputs into a Policy. */
