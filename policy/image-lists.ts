/**
 * The image hash matcher, compiled from parsed lists (image-list-parse.ts has their text form).
 *
 * `ImageMatcher` keeps exact digests sorted in one byte array per kind (binary search) and all PDQ
 * hashes in one HammingIndex; each entry carries the number of its list. It round-trips through
 * typed sections for the policy bundle (`toSections` / `fromSections`).
 */
import { SafespotError } from './errors.js';
import { HammingIndex } from './hamming-index.js';
import { DIGEST_BYTES, HEX, IMAGE_LIST_KINDS, type ExactKind, type ImageListKind, type ListMode, type ParsedImageList } from './image-list-parse.js';
import { pdqHexToWords } from './pdq.js';

/** One list as the matcher takes it. */
export interface ImageListInput {
  readonly id: string;
  readonly category: string;
  readonly mode: ListMode;
  readonly list: ParsedImageList;
}

export interface ImageMatcherOptions {
  /** Largest Hamming distance that counts as a PDQ match (default 31). */
  readonly pdqDistance: number;
  /** Scanned images with a PDQ quality below this are not PDQ-matched (default 50). */
  readonly pdqMinQuality: number;
  /** Also match the eight dihedral variants of the scanned image, when given. */
  readonly dihedral: boolean;
}

/** The hashes of one scanned image. */
export interface ScannedImageHashes {
  readonly md5: string;
  readonly sha1: string;
  readonly sha256: string;
  readonly pdq?: { readonly hash: string; readonly quality: number; readonly dihedral?: readonly string[] };
}

export interface ImageMatch {
  readonly list: string;
  readonly category: string;
  readonly match: ImageListKind;
  /** Hamming distance, for PDQ matches. */
  readonly distance?: number;
  readonly mode: ListMode;
}

interface ListMeta {
  readonly id: string;
  readonly category: string;
  readonly kind: ImageListKind;
  readonly mode: ListMode;
}

/** Sorted digests of one exact kind with the list number of each. */
interface ExactTable {
  readonly digests: Uint8Array;
  readonly lists: Uint16Array;
}

const EXACT_KINDS: readonly ExactKind[] = ['sha256', 'sha1', 'md5'];
const MAX_LISTS = 0xffff;

/** Compiled image lists: exact lookups by binary search, PDQ by the Hamming index. */
export class ImageMatcher {
  readonly options: ImageMatcherOptions;
  private readonly lists: readonly ListMeta[];
  private readonly exact: Readonly<Record<ExactKind, ExactTable>>;
  private readonly pdqLists: Uint16Array;
  private readonly index: HammingIndex;

  private constructor(
    options: ImageMatcherOptions,
    lists: readonly ListMeta[],
    exact: Record<ExactKind, ExactTable>,
    pdq: Uint32Array,
    pdqLists: Uint16Array,
  ) {
    this.options = Object.freeze({ ...options });
    this.lists = lists;
    this.exact = exact;
    this.pdqLists = pdqLists;
    this.index = HammingIndex.build(pdq);
  }

  /**
   * Compile parsed lists. A digest on several lists is kept once per list, enforce lists first, so
   * that a match is attributed to the first enforce list that has it (else the first list), and a
   * caller that restricts the lists (a profile) still finds the digest on the lists it allows.
   */
  static compile(inputs: readonly ImageListInput[], options: ImageMatcherOptions): ImageMatcher {
    if (inputs.length > MAX_LISTS) throw new SafespotError('ERR_LIST_INVALID', `too many image lists (${inputs.length})`);
    checkOptions(options);
    const lists = inputs.map((l) => ({ id: l.id, category: l.category, kind: l.list.kind, mode: l.mode }));
    // Enforce lists first, so that a shared entry is attributed to an enforcing list.
    const order = inputs.map((_, i) => i).sort((a, b) => rank(inputs[a]!.mode) - rank(inputs[b]!.mode) || a - b);
    const exact = {} as Record<ExactKind, ExactTable>;
    for (const kind of EXACT_KINDS) {
      const width = DIGEST_BYTES[kind];
      const rows: Array<{ key: string; at: Uint8Array; list: number }> = [];
      for (const li of order) {
        const l = inputs[li]!.list;
        if (l.kind !== kind || !l.digests) continue;
        const seen = new Set<string>();
        for (let i = 0; i < l.count; i++) {
          const at = l.digests.subarray(i * width, (i + 1) * width);
          const key = Buffer.from(at).toString('hex');
          if (seen.has(key)) continue;
          seen.add(key);
          rows.push({ key, at, list: li });
        }
      }
      // Stable sort: equal digests stay in `order` (enforce lists first).
      rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const digests = new Uint8Array(rows.length * width);
      const owners = new Uint16Array(rows.length);
      rows.forEach((r, i) => {
        digests.set(r.at, i * width);
        owners[i] = r.list;
      });
      exact[kind] = { digests, lists: owners };
    }
    let total = 0;
    for (const li of order) if (inputs[li]!.list.kind === 'pdq') total += inputs[li]!.list.count;
    const pdq = new Uint32Array(total * 8);
    const pdqLists = new Uint16Array(total);
    let n = 0;
    for (const li of order) {
      const l = inputs[li]!.list;
      if (l.kind !== 'pdq' || !l.pdq) continue;
      pdq.set(l.pdq.subarray(0, l.count * 8), n * 8);
      pdqLists.fill(li, n, n + l.count);
      n += l.count;
    }
    return new ImageMatcher(options, lists, exact, pdq, pdqLists);
  }

  /** The lists, by list number (the order given to `compile`). */
  get listTable(): ReadonlyArray<{ readonly id: string; readonly category: string; readonly kind: ImageListKind; readonly mode: ListMode }> {
    return this.lists;
  }

  /** Entries per kind (for metrics and `compile` output). */
  get sizes(): Readonly<Record<ImageListKind, number>> {
    return {
      md5: this.exact.md5.lists.length,
      sha1: this.exact.sha1.lists.length,
      sha256: this.exact.sha256.lists.length,
      pdq: this.pdqLists.length,
    };
  }

  /**
   * The best match for an image, or null; with `applies`, only lists whose number n has
   * applies[n] === 1 are considered (a profile's lists). Preference: an enforce list over a
   * monitor list; then an exact match (SHA-256, SHA-1, MD5) over PDQ; then the smallest PDQ distance; then list order.
   */
  match(h: ScannedImageHashes, applies?: Uint8Array): ImageMatch | null {
    let best: ImageMatch | null = null;
    for (const kind of EXACT_KINDS) {
      const li = this.lookupExact(kind, h[kind], applies);
      if (li < 0) continue;
      const m = this.result(li, kind);
      if (m.mode === 'enforce') return m;
      best ??= m;
    }
    const pdq = h.pdq;
    if (!pdq || this.pdqLists.length === 0 || !(pdq.quality >= this.options.pdqMinQuality)) return best;
    const candidates = this.options.dihedral && pdq.dihedral ? [pdq.hash, ...pdq.dihedral] : [pdq.hash];
    let bestPdq: { li: number; d: number } | null = null;
    for (const hex of candidates) {
      let words: Uint32Array;
      try {
        words = pdqHexToWords(hex);
      } catch {
        continue;
      }
      for (const hit of this.index.query(words, this.options.pdqDistance)) {
        const li = this.pdqLists[hit.index]!;
        if (applies !== undefined && applies[li] !== 1) continue;
        if (bestPdq === null || better(this.lists, li, hit.distance, bestPdq.li, bestPdq.d)) bestPdq = { li, d: hit.distance };
      }
    }
    if (bestPdq === null) return best;
    const m = this.result(bestPdq.li, 'pdq', bestPdq.d);
    if (best === null || (best.mode === 'monitor' && m.mode === 'enforce')) return m;
    return best;
  }

  private result(li: number, kind: ImageListKind, distance?: number): ImageMatch {
    const l = this.lists[li]!;
    return distance === undefined
      ? { list: l.id, category: l.category, match: kind, mode: l.mode }
      : { list: l.id, category: l.category, match: kind, distance, mode: l.mode };
  }

  /** The first list (in attribution order) holding `hex` among those `applies` allows, or −1. */
  private lookupExact(kind: ExactKind, hex: string, applies?: Uint8Array): number {
    const width = DIGEST_BYTES[kind];
    if (typeof hex !== 'string' || hex.length !== width * 2 || !HEX.test(hex)) return -1;
    const key = Buffer.from(hex, 'hex');
    const t = this.exact[kind];
    let lo = 0;
    let hi = t.lists.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(t.digests.subarray(mid * width, (mid + 1) * width), key);
      if (c === 0) {
        if (applies === undefined) return firstOfRun(t, width, mid, key);
        let i = firstOf(t, width, mid, key);
        for (; i < t.lists.length && Buffer.compare(t.digests.subarray(i * width, (i + 1) * width), key) === 0; i++) {
          if (applies[t.lists[i]!] === 1) return t.lists[i]!;
        }
        return -1;
      }
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /**
   * Typed sections for the policy bundle: `img.meta` (JSON: options and list table), `img.md5`,
   * `img.sha1`, `img.sha256` (u32 count, sorted digests, u16 list numbers) and `img.pdq` (u32 count,
   * 8 u32 words per hash, u16 list numbers). All integers little-endian. The Hamming index is
   * rebuilt on load (linear time) rather than stored.
   */
  toSections(): Array<{ tag: string; bytes: Uint8Array }> {
    const meta = { version: 1, options: this.options, lists: this.lists };
    const out: Array<{ tag: string; bytes: Uint8Array }> = [{ tag: 'img.meta', bytes: new TextEncoder().encode(JSON.stringify(meta)) }];
    for (const kind of EXACT_KINDS) out.push({ tag: `img.${kind}`, bytes: packTable(this.exact[kind].digests, this.exact[kind].lists) });
    const words = this.index.hashes;
    const raw = new Uint8Array(words.length * 4);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i]!, true);
    out.push({ tag: 'img.pdq', bytes: packTable(raw, this.pdqLists) });
    return out;
  }

  /** Rebuild from `toSections` output. Throws ERR_BUNDLE_CORRUPT on anything inconsistent. */
  static fromSections(sections: Iterable<{ tag: string; bytes: Uint8Array }>): ImageMatcher {
    const byTag = new Map<string, Uint8Array>();
    for (const s of sections) byTag.set(s.tag, s.bytes);
    const metaBytes = byTag.get('img.meta');
    if (!metaBytes) throw corrupt('missing img.meta');
    let meta: { version: number; options: ImageMatcherOptions; lists: ListMeta[] };
    try {
      meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(metaBytes));
    } catch (cause) {
      throw corrupt('img.meta is not JSON', cause);
    }
    if (meta?.version !== 1 || !Array.isArray(meta.lists) || meta.lists.length > MAX_LISTS) throw corrupt('img.meta has an unknown shape');
    try {
      checkOptions(meta.options);
    } catch (cause) {
      throw corrupt('img.meta options are invalid', cause);
    }
    for (const l of meta.lists) {
      if (typeof l?.id !== 'string' || typeof l.category !== 'string' || !IMAGE_LIST_KINDS.includes(l.kind) || (l.mode !== 'enforce' && l.mode !== 'monitor')) {
        throw corrupt('img.meta has a malformed list entry');
      }
    }
    const nLists = meta.lists.length;
    const exact = {} as Record<ExactKind, ExactTable>;
    for (const kind of EXACT_KINDS) exact[kind] = unpackTable(byTag.get(`img.${kind}`), DIGEST_BYTES[kind], nLists, `img.${kind}`);
    const p = unpackTable(byTag.get('img.pdq'), 32, nLists, 'img.pdq');
    const words = new Uint32Array(p.lists.length * 8);
    const view = new DataView(p.digests.buffer, p.digests.byteOffset, p.digests.byteLength);
    for (let i = 0; i < words.length; i++) words[i] = view.getUint32(i * 4, true);
    return new ImageMatcher(meta.options, meta.lists, exact, words, p.lists);
  }
}

/** Index of the first row equal to `key`, given that row `at` is equal to it. */
function firstOf(t: ExactTable, width: number, at: number, key: Uint8Array): number {
  let i = at;
  while (i > 0 && Buffer.compare(t.digests.subarray((i - 1) * width, i * width), key) === 0) i--;
  return i;
}

function firstOfRun(t: ExactTable, width: number, at: number, key: Uint8Array): number {
  return t.lists[firstOf(t, width, at, key)]!;
}

function rank(mode: ListMode): number {
  return mode === 'enforce' ? 0 : 1;
}

function better(lists: readonly ListMeta[], li: number, d: number, bestLi: number, bestD: number): boolean {
  const r = rank(lists[li]!.mode) - rank(lists[bestLi]!.mode);
  if (r !== 0) return r < 0;
  if (d !== bestD) return d < bestD;
  return li < bestLi;
}

function checkOptions(o: ImageMatcherOptions): void {
  const ok =
    o !== null &&
    typeof o === 'object' &&
    Number.isInteger(o.pdqDistance) &&
    o.pdqDistance >= 0 &&
    o.pdqDistance <= 256 &&
    Number.isInteger(o.pdqMinQuality) &&
    o.pdqMinQuality >= 0 &&
    o.pdqMinQuality <= 100 &&
    typeof o.dihedral === 'boolean';
  if (!ok) throw new SafespotError('ERR_LIST_INVALID', 'bad image matcher options');
}

function corrupt(message: string, cause?: unknown): SafespotError {
  return new SafespotError('ERR_BUNDLE_CORRUPT', `image lists: ${message}`, cause === undefined ? undefined : { cause });
}

/** u32 count | count × width bytes | count × u16 list numbers (little-endian). */
function packTable(digests: Uint8Array, lists: Uint16Array): Uint8Array {
  const n = lists.length;
  const out = new Uint8Array(4 + digests.length + n * 2);
  const view = new DataView(out.buffer);
  view.setUint32(0, n, true);
  out.set(digests, 4);
  for (let i = 0; i < n; i++) view.setUint16(4 + digests.length + i * 2, lists[i]!, true);
  return out;
}

function unpackTable(bytes: Uint8Array | undefined, width: number, nLists: number, tag: string): ExactTable {
  if (!bytes) throw corrupt(`missing ${tag}`);
  if (bytes.length < 4) throw corrupt(`${tag} is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, true);
  if (bytes.length !== 4 + n * width + n * 2) throw corrupt(`${tag} has the wrong length`);
  const digests = bytes.slice(4, 4 + n * width);
  const lists = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const li = view.getUint16(4 + n * width + i * 2, true);
    if (li >= nLists) throw corrupt(`${tag} names list ${li} of ${nLists}`);
    lists[i] = li;
  }
  return { digests, lists };
}
