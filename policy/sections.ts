/**
 * What a compiled policy is made of (PolicyParts: plain metadata and the typed arrays of two hashed
 * stores), and how those parts become the typed sections of a bundle and back. The container
 * (magic, section table, checksum) is bundle.ts; this file knows only the policy's own sections.
 */
import { createHash } from 'node:crypto';
import { SafespotError } from './errors.js';
import type { StoreArrays } from './hash-store.js';
import type { ImageListKind, ImageListReport } from './image-list-parse.js';
import { ImageMatcher } from './image-lists.js';
import type { ListReport, UrlListKind } from './lists.js';

export type ListMode = 'enforce' | 'monitor';

export interface InterceptOptions {
  readonly enabled: boolean;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

/** What a compiled list is, as verdicts, metrics and `compile` report it. */
export interface ListMeta {
  readonly id: string;
  readonly category: string;
  readonly kind: UrlListKind;
  /** Entries kept in the store (duplicates dropped). */
  readonly entries: number;
  readonly duplicates: number;
  readonly mode: ListMode;
  readonly overridable: boolean;
  readonly report: ListReport;
}

/** What a compiled image hash list is (md5, sha1, sha256, pdq). Image lists are never overridable. */
export interface ImageListMeta {
  readonly id: string;
  readonly category: string;
  readonly kind: ImageListKind;
  /** Entries kept (duplicates and low-quality PDQ hashes dropped). */
  readonly entries: number;
  readonly duplicates: number;
  readonly mode: ListMode;
  readonly report: ImageListReport;
}

export interface ProfileMeta {
  readonly name: string;
  readonly clients: readonly string[];
  /** null = every list. */
  readonly lists: readonly string[] | null;
  readonly safeSearch: boolean;
  readonly intercept: InterceptOptions;
}

/** The plain-value part of a compiled policy (the bundle's META section, as JSON). */
export interface PolicyMeta {
  /** URL lists; list number = index (the hashed stores' list numbers). */
  readonly lists: readonly ListMeta[];
  /** Image hash lists; list number = index (the ImageMatcher's list numbers). Absent in old bundles. */
  readonly images?: readonly ImageListMeta[];
  /** Index 0 is the default profile (the top level of the config). */
  readonly profiles: readonly ProfileMeta[];
  readonly allowEntries: number;
  readonly cacheSize: number;
}

/** Everything a Policy is made of; the bundle stores exactly this. */
export interface PolicyParts {
  readonly meta: PolicyMeta;
  /** List number = index in meta.lists. */
  readonly block: StoreArrays;
  /** "List" number = profile index: 0 holds the top-level allowlist, p the profile's own. */
  readonly allow: StoreArrays;
  /** The compiled image lists, or null when the policy has none. */
  readonly images: ImageMatcher | null;
}

/**
 * Bundle tags of the ImageMatcher's sections (its own names are longer than a bundle tag's four
 * characters). Written only when the policy has image lists, so a URL-only policy keeps its bytes.
 */
const IMAGE_TAGS: Readonly<Record<string, string>> = {
  'img.meta': 'IMET',
  'img.md5': 'IMD5',
  'img.sha1': 'ISH1',
  'img.sha256': 'IS32',
  'img.pdq': 'IPDQ',
};

export interface Section {
  /** Four ASCII characters. */
  readonly tag: string;
  readonly bytes: Uint8Array;
}

const STORE_FIELDS = ['hi', 'lo', 'list', 'shortHi', 'shortLo', 'shortLen', 'shortList'] as const;
const FIELD_TAGS: Record<(typeof STORE_FIELDS)[number], string> = {
  hi: 'hi__',
  lo: 'lo__',
  list: 'ls__',
  shortHi: 'shi_',
  shortLo: 'slo_',
  shortLen: 'sln_',
  shortList: 'sls_',
};

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The sections of a policy, in bundle order: META (JSON), then block (B) and allow (A) store arrays. */
export function policySections(parts: PolicyParts): Section[] {
  const out: Section[] = [{ tag: 'META', bytes: new TextEncoder().encode(JSON.stringify(parts.meta)) }];
  for (const [prefix, store] of [['B', parts.block], ['A', parts.allow]] as const) {
    for (const f of STORE_FIELDS) out.push({ tag: `${prefix}${FIELD_TAGS[f].slice(0, 3)}`, bytes: bytesOf(store[f]) });
  }
  if (parts.images) {
    for (const s of parts.images.toSections()) {
      const tag = IMAGE_TAGS[s.tag];
      if (tag === undefined) throw new SafespotError('ERR_INTERNAL', `image section ${s.tag} has no bundle tag`);
      out.push({ tag, bytes: s.bytes });
    }
  }
  return out;
}

/** The image matcher from bundle sections (null when META names no image list). */
function imagesFromSections(meta: PolicyMeta, sections: ReadonlyMap<string, Uint8Array>): ImageMatcher | null {
  const lists = meta.images ?? [];
  if (!Array.isArray(lists)) corrupt('META images has the wrong shape');
  // Without image lists in META, sections with these tags are a caller's extra sections: not ours.
  if (lists.length === 0) return null;
  const own = Object.entries(IMAGE_TAGS).map(([name, tag]) => ({ tag: name, bytes: sections.get(tag) ?? corrupt(`section ${tag} is missing`) }));
  const matcher = ImageMatcher.fromSections(own);
  const table = matcher.listTable;
  const same =
    table.length === lists.length &&
    table.every((l, i) => {
      const m = lists[i];
      return m !== undefined && m.id === l.id && m.kind === l.kind && m.category === l.category && m.mode === l.mode;
    });
  if (!same) corrupt('image sections disagree with the image lists in META');
  return matcher;
}

function corrupt(why: string): never {
  throw new SafespotError('ERR_BUNDLE_CORRUPT', `policy bundle: ${why}`);
}

/** Typed-array view onto section bytes (no copy when aligned). */
function view<T>(bytes: Uint8Array, size: number, make: (b: ArrayBufferLike, off: number, n: number) => T): T {
  if (bytes.byteLength % size !== 0) corrupt(`a section of ${bytes.byteLength} bytes is not a multiple of ${size}`);
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return make(b.buffer, b.byteOffset, b.byteLength / size);
}

/** Parts from sections (by tag); views, not copies. Throws ERR_BUNDLE_CORRUPT. */
export function partsFromSections(sections: ReadonlyMap<string, Uint8Array>): PolicyParts {
  const get = (tag: string): Uint8Array => sections.get(tag) ?? corrupt(`section ${tag} is missing`);
  let meta: PolicyMeta;
  try {
    meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(get('META'))) as PolicyMeta;
  } catch (err) {
    if (err instanceof SafespotError) throw err;
    return corrupt('META section is not JSON');
  }
  if (!meta || !Array.isArray(meta.lists) || !Array.isArray(meta.profiles) || meta.profiles.length < 1) corrupt('META section has the wrong shape');
  const store = (prefix: string): StoreArrays => {
    const t = (f: (typeof STORE_FIELDS)[number]) => get(`${prefix}${FIELD_TAGS[f].slice(0, 3)}`);
    const u32 = (f: (typeof STORE_FIELDS)[number]) => view(t(f), 4, (b, o, n) => new Uint32Array(b, o, n));
    const u16 = (f: (typeof STORE_FIELDS)[number]) => view(t(f), 2, (b, o, n) => new Uint16Array(b, o, n));
    return {
      hi: u32('hi'),
      lo: u32('lo'),
      list: u16('list'),
      shortHi: u32('shortHi'),
      shortLo: u32('shortLo'),
      shortLen: new Uint8Array(t('shortLen')),
      shortList: u16('shortList'),
    };
  };
  return { meta, block: store('B'), allow: store('A'), images: imagesFromSections(meta, sections) };
}

/** Content hash over the sections (tag, length, bytes): the policy version. */
export function sectionsVersion(sections: readonly Section[]): string {
  const h = createHash('sha256');
  const len = new Uint8Array(4);
  for (const s of sections) {
    h.update(s.tag);
    new DataView(len.buffer).setUint32(0, s.bytes.byteLength);
    h.update(len);
    h.update(s.bytes);
  }
  return h.digest('hex').slice(0, 16);
}

