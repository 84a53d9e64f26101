/**
 * The policy: lists compiled into one hashed store, an allow store, profiles, and the synchronous
 * `decide`. Compile once (plain values in, no fs), decide cheaply: a decision canonicalises, builds
 * Safe Browsing expressions, hashes each with the allocation-free SHA-256 and looks it up in sorted
 * typed arrays. Host-only decisions come from a bounded cache; the matches of a host's own
 * expressions (`host/` for each suffix) are cached too, so a full-URL decision hashes only its
 * path expressions. Caches live inside a Policy, so swapping the Policy drops them.
 *
 * Verdict order: an enforce match blocks (csam lists first, then list order); otherwise a monitor
 * match gives 'monitor'; an allowlist entry matching any expression of the subject cancels matches
 * of overridable lists only (csam lists are never overridable).
 *
 * Image lists (md5, sha1, sha256, pdq) are not part of this URL policy: compile records them as
 * skipped and leaves their bundle sections to the image side.
 */
import { createHash } from 'node:crypto';
import { canonicalize, canonicalizeHost, type HostKind } from './canonicalize.js';
import { ALLOW_NOTHING_MATCHED, type Decision, type RuleKind, type Subject } from './decision.js';
import { assertNever, SafespotError } from './errors.js';
import { hostExpressions, urlExpressions } from './expressions.js';
import { HashStore, HashStoreBuilder, type StoreArrays } from './hash-store.js';
import { CidrSet, parseIp } from './ip.js';
import { listHost, pageExpression, parseUrlList, URL_KINDS, type ListReport, type UrlListKind } from './lists.js';
import { LruCache } from './lru.js';
import { sha256StringWords } from './sha256.js';

export type ListMode = 'enforce' | 'monitor';

export interface InterceptOptions {
  readonly enabled: boolean;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

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
  readonly lists: readonly ListMeta[];
  /** Lists compile did not put in the URL policy (image kinds), with why. */
  readonly skipped: ReadonlyArray<{ readonly id: string; readonly kind: string; readonly note: string }>;
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
}

export interface ProfileView {
  readonly name: string;
  readonly safeSearch: boolean;
  readonly intercept: InterceptOptions;
}

const RULE_OF_KIND: Record<UrlListKind, RuleKind> = { domains: 'domain', urls: 'url', 'hashed-urls': 'hashed-url' };

const DEFAULT_CACHE = 65_536;
const NO_INTERCEPT: InterceptOptions = Object.freeze({ enabled: false, include: [], exclude: [] });

/** An unparsable URL is blocked: passing what the filter cannot read would be a bypass. */
export const BLOCK_UNPARSABLE_URL: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'none',
  reason: 'URL could not be canonicalised',
});

export const BLOCK_UNPARSABLE_HOST: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'none',
  reason: 'host could not be canonicalised',
});

/** Fail closed: what PolicyHolder answers while no policy is loaded. */
export const BLOCK_NO_POLICY: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'no-policy',
  reason: 'no valid policy is loaded',
});

// ---------------------------------------------------------------------------------------------
// Compile

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
export function compilePolicy(input: CompileInput): Policy {
  return new Policy(compileParts(input));
}

// ---------------------------------------------------------------------------------------------
// Sections: how parts become bytes (the bundle is a container of these) and back.

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
  return out;
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
  return { meta, block: store('B'), allow: store('A') };
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

// ---------------------------------------------------------------------------------------------
// Decide

interface HostMatches {
  readonly block: readonly number[];
  readonly allow: readonly number[];
}
const NO_MATCHES: HostMatches = Object.freeze({ block: [], allow: [] });

interface CompiledProfile {
  readonly view: ProfileView;
  readonly nets: CidrSet;
  /** applies[list] = 1 when the list applies to this profile. */
  readonly applies: Uint8Array;
}

function listDecision(meta: ListMeta, action: 'block' | 'monitor' | 'allow'): Decision {
  const rule = RULE_OF_KIND[meta.kind];
  const what = `"${meta.id}" (${meta.category}, ${rule} entry)`;
  const reason =
    action === 'block'
      ? `listed in ${what}`
      : action === 'monitor'
        ? `would be blocked by monitor-mode list ${what}`
        : `allowlist entry overrides list ${what}`;
  return Object.freeze({ action, category: meta.category, list: meta.id, rule: action === 'allow' ? 'allowlist' : rule, reason });
}

/** A compiled, immutable policy with its own caches. */
export class Policy {
  /** Content hash of the compiled bundle (16 hex digits). */
  readonly version: string;
  readonly lists: ReadonlyArray<{ id: string; category: string; kind: string; entries: number; mode: ListMode; overridable: boolean }>;
  readonly parts: PolicyParts;
  private readonly block: HashStore;
  private readonly allow: HashStore;
  private readonly meta: readonly ListMeta[];
  private readonly profiles: readonly CompiledProfile[];
  private readonly blockDecisions: readonly Decision[];
  private readonly monitorDecisions: readonly Decision[];
  private readonly allowDecisions: readonly Decision[];
  /** Per list: 0 for csam (wins among blocks), 1 otherwise. */
  private readonly rank: Uint8Array;
  private readonly decisions: LruCache<string, Decision>;
  private readonly hostMatches: LruCache<string, HostMatches>;
  private readonly clientProfiles: LruCache<string, number>;
  private readonly scratchBlock: number[] = [];
  private readonly scratchAllow: number[] = [];
  private readonly words = new Uint32Array(8);

  constructor(parts: PolicyParts, version?: string) {
    this.parts = parts;
    const { meta } = parts;
    this.meta = meta.lists;
    this.version = version ?? sectionsVersion(policySections(parts));
    this.block = HashStore.fromArrays(parts.block, meta.lists.length);
    this.allow = HashStore.fromArrays(parts.allow, meta.profiles.length);
    this.lists = meta.lists.map((l) => Object.freeze({ id: l.id, category: l.category, kind: l.kind, entries: l.entries, mode: l.mode, overridable: l.overridable }));
    const index = new Map(meta.lists.map((l, i) => [l.id, i]));
    this.profiles = meta.profiles.map((p) => {
      const applies = new Uint8Array(meta.lists.length);
      if (p.lists === null) applies.fill(1);
      else for (const id of p.lists) if (index.has(id)) applies[index.get(id)!] = 1;
      let nets: CidrSet;
      try {
        nets = CidrSet.parse(p.clients);
      } catch {
        return corrupt(`profile "${p.name}" has an invalid client network`);
      }
      return { view: Object.freeze({ name: p.name, safeSearch: p.safeSearch, intercept: Object.freeze({ ...p.intercept }) }), nets, applies };
    });
    this.blockDecisions = meta.lists.map((l) => listDecision(l, 'block'));
    this.monitorDecisions = meta.lists.map((l) => listDecision(l, 'monitor'));
    this.allowDecisions = meta.lists.map((l) => listDecision(l, 'allow'));
    this.rank = Uint8Array.from(meta.lists, (l) => (l.category === 'csam' ? 0 : 1));
    const size = Math.max(1, meta.cacheSize | 0);
    this.decisions = new LruCache(size);
    this.hostMatches = new LruCache(size);
    this.clientProfiles = new LruCache(Math.min(size, 4096));
  }

  /** The profile of a client (IP address text); undefined or unparsable → the default profile. */
  profileFor(client?: string): ProfileView {
    return this.profiles[this.profileIndex(client)]!.view;
  }

  private profileIndex(client: string | undefined): number {
    if (client === undefined || this.profiles.length === 1) return 0;
    const cached = this.clientProfiles.get(client);
    if (cached !== undefined) return cached;
    const addr = parseIp(client);
    let found = 0;
    if (addr) {
      for (let i = 1; i < this.profiles.length; i++) {
        if (this.profiles[i]!.nets.containsBytes(addr)) {
          found = i;
          break;
        }
      }
    }
    this.clientProfiles.set(client, found);
    return found;
  }

  decide(subject: Subject, client?: string): Decision {
    switch (subject.kind) {
      case 'host':
        return this.decideHost(subject.host, client);
      case 'url':
        return this.decideUrl(subject.url, client);
      default:
        return assertNever(subject, 'subject');
    }
  }

  /** A host alone (SNI, CONNECT authority): its `host/` expressions only. Cached. */
  decideHost(host: string, client?: string): Decision {
    const p = this.profileIndex(client);
    const key = p === 0 ? host : `${p}\u0000${host}`;
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    const c = canonicalizeHost(host);
    const d = c === null ? BLOCK_UNPARSABLE_HOST : this.resolve(this.matchHost(c.host, c.hostKind), NO_MATCHES, p);
    this.decisions.set(key, d);
    return d;
  }

  /** A full URL: every Safe Browsing expression. Not cached (the host part is). */
  decideUrl(url: string, client?: string): Decision {
    const p = this.profileIndex(client);
    const c = canonicalize(url);
    if (c === null) return BLOCK_UNPARSABLE_URL;
    const host = this.matchHost(c.host, c.hostKind);
    const block = this.scratchBlock;
    const allow = this.scratchAllow;
    block.length = 0;
    allow.length = 0;
    const words = this.words;
    for (const e of urlExpressions(c)) {
      // `suffix/` expressions are the host's own, already in `host` (cached).
      if (e.indexOf('/') === e.length - 1) continue;
      sha256StringWords(e, words);
      this.block.lookup(words[0]!, words[1]!, block);
      this.allow.lookup(words[0]!, words[1]!, allow);
    }
    return this.resolve(host, { block, allow }, p);
  }

  /** Matches of a canonical host's `host/` expressions, cached by host. */
  private matchHost(host: string, kind: HostKind): HostMatches {
    const cached = this.hostMatches.get(host);
    if (cached !== undefined) return cached;
    const block: number[] = [];
    const allow: number[] = [];
    const words = this.words;
    const exprs = kind === 'name' ? withDeepSuffixes(host, hostExpressions(host, kind)) : hostExpressions(host, kind);
    for (const e of exprs) {
      sha256StringWords(e, words);
      this.block.lookup(words[0]!, words[1]!, block);
      this.allow.lookup(words[0]!, words[1]!, allow);
    }
    const m = block.length === 0 && allow.length === 0 ? NO_MATCHES : { block, allow };
    this.hostMatches.set(host, m);
    return m;
  }

  /** The verdict for matched list numbers and allow sets, under profile p. Allocates nothing. */
  private resolve(a: HostMatches, b: HostMatches, p: number): Decision {
    const profile = this.profiles[p]!;
    const allowed = hasAllow(a.allow, p) || hasAllow(b.allow, p);
    let enforce = -1;
    let monitor = -1;
    let overridden = -1;
    for (let pass = 0; pass < 2; pass++) {
      const matches = pass === 0 ? a.block : b.block;
      for (let i = 0; i < matches.length; i++) {
        const li = matches[i]!;
        if (profile.applies[li] !== 1) continue;
        const m = this.meta[li]!;
        if (allowed && m.overridable) {
          if (overridden < 0 || li < overridden) overridden = li;
        } else if (m.mode === 'enforce') {
          if (enforce < 0 || this.before(li, enforce)) enforce = li;
        } else if (monitor < 0 || this.before(li, monitor)) monitor = li;
      }
    }
    if (enforce >= 0) return this.blockDecisions[enforce]!;
    if (monitor >= 0) return this.monitorDecisions[monitor]!;
    if (overridden >= 0) return this.allowDecisions[overridden]!;
    return ALLOW_NOTHING_MATCHED;
  }

  /** csam lists first, then configuration order. */
  private before(x: number, y: number): boolean {
    const rx = this.rank[x]!;
    const ry = this.rank[y]!;
    return rx < ry || (rx === ry && x < y);
  }
}

function hasAllow(sets: readonly number[], p: number): boolean {
  for (let i = 0; i < sets.length; i++) if (sets[i] === 0 || sets[i] === p) return true;
  return false;
}

/**
 * Safe Browsing looks up the full host and its last five components and shorter; a domain entry
 * with six or more labels would then never match its subdomains. For host expressions only we add
 * the suffixes in between, so a `domains` entry always covers every subdomain.
 */
function withDeepSuffixes(host: string, exprs: readonly string[]): readonly string[] {
  const labels = host.split('.');
  if (labels.length <= 6) return exprs;
  const out = [...exprs];
  for (let k = labels.length - 1; k >= 6; k--) {
    const e = `${labels.slice(labels.length - k).join('.')}/`;
    if (!out.includes(e)) out.push(e);
  }
  return out;
}

/** Holds the current policy; `swap` replaces it atomically (one reference), dropping its caches. */
export class PolicyHolder {
  current: Policy | null = null;

  swap(next: Policy): void {
    this.current = next;
  }

  /** Decide with the current policy; fail closed when there is none. */
  decide(subject: Subject, client?: string): Decision {
    return this.current === null ? BLOCK_NO_POLICY : this.current.decide(subject, client);
  }
}
