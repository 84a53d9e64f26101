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
 * Image lists (md5, sha1, sha256, pdq) compile into one ImageMatcher that the policy carries
 * (`images`) and that travels in the bundle; `decideImage` decides on the hashes of one image.
 * Image decisions follow the client's profile (its `lists`) and monitor vs enforce; allowlists do
 * not apply to image hashes at all (an allow entry names a site, not a picture, and image lists are
 * hotline lists: never overridable).
 */
import { canonicalize, canonicalizeHost, type HostKind } from './canonicalize.js';
import { compileParts, type CompileInput } from './compile.js';
import { ALLOW_NOTHING_MATCHED, type Decision, type RuleKind, type Subject } from './decision.js';
import { assertNever, SafespotError } from './errors.js';
import { hostExpressions, urlExpressions } from './expressions.js';
import { extraReadings } from './readings.js';
import { HashStore } from './hash-store.js';
import type { ImageListKind } from './image-list-parse.js';
import type { ImageMatch, ImageMatcher, ScannedImageHashes } from './image-lists.js';
import { CidrSet, parseIp } from './ip.js';
import type { UrlListKind } from './lists.js';
import { LruCache } from './lru.js';
import { policySections, sectionsVersion, type InterceptOptions, type ListMeta, type ListMode, type PolicyParts } from './sections.js';
import { sha256StringWords } from './sha256.js';

export { compileParts, type CompileInput, type ListInput, type ProfileInput } from './compile.js';
export {
  type ImageListMeta,
  partsFromSections,
  policySections,
  sectionsVersion,
  type InterceptOptions,
  type ListMeta,
  type ListMode,
  type PolicyMeta,
  type PolicyParts,
  type ProfileMeta,
  type Section,
} from './sections.js';

export interface ProfileView {
  readonly name: string;
  readonly safeSearch: boolean;
  readonly intercept: InterceptOptions;
}

const RULE_OF_KIND: Record<UrlListKind, RuleKind> = { domains: 'domain', urls: 'url', 'hashed-urls': 'hashed-url' };

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

/** The verdict on one image: a Decision, and for a match its kind and (PDQ) Hamming distance. */
export type ImageDecision = Decision & { readonly match?: ImageListKind; readonly distance?: number };

export const ALLOW_NO_IMAGE_MATCH: ImageDecision = Object.freeze({
  action: 'allow',
  category: null,
  list: null,
  rule: 'none',
  reason: 'no image list matched',
});

function imageDecision(m: ImageMatch): ImageDecision {
  const action = m.mode === 'enforce' ? 'block' : 'monitor';
  const how = m.distance === undefined ? `${m.match} match` : `pdq match at distance ${m.distance}`;
  const what = `"${m.list}" (${m.category}, ${how})`;
  const reason = action === 'block' ? `image listed in ${what}` : `image would be blocked by monitor-mode list ${what}`;
  const d = { action, category: m.category, list: m.list, rule: m.match, reason, match: m.match } as const;
  return Object.freeze(m.distance === undefined ? d : { ...d, distance: m.distance });
}

export function compilePolicy(input: CompileInput): Policy {
  return new Policy(compileParts(input));
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
  /** The same for image lists (by image list number); undefined = every image list. */
  readonly imageApplies: Uint8Array | undefined;
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
  /** The compiled image hash lists, or null when the policy has none. */
  readonly images: ImageMatcher | null;
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
    this.images = parts.images;
    const imageLists = meta.images ?? [];
    this.lists = [
      ...meta.lists.map((l) => Object.freeze({ id: l.id, category: l.category, kind: l.kind, entries: l.entries, mode: l.mode, overridable: l.overridable })),
      ...imageLists.map((l) => Object.freeze({ id: l.id, category: l.category, kind: l.kind, entries: l.entries, mode: l.mode, overridable: false })),
    ];
    const index = new Map(meta.lists.map((l, i) => [l.id, i]));
    const imageIndex = new Map(imageLists.map((l, i) => [l.id, i]));
    this.profiles = meta.profiles.map((p) => {
      const applies = new Uint8Array(meta.lists.length);
      let imageApplies: Uint8Array | undefined;
      if (p.lists === null) applies.fill(1);
      else {
        imageApplies = new Uint8Array(imageLists.length);
        for (const id of p.lists) {
          if (index.has(id)) applies[index.get(id)!] = 1;
          if (imageIndex.has(id)) imageApplies[imageIndex.get(id)!] = 1;
        }
      }
      let nets: CidrSet;
      try {
        nets = CidrSet.parse(p.clients);
      } catch {
        throw new SafespotError('ERR_BUNDLE_CORRUPT', `policy: profile "${p.name}" has an invalid client network`);
      }
      return { view: Object.freeze({ name: p.name, safeSearch: p.safeSearch, intercept: Object.freeze({ ...p.intercept }) }), nets, applies, imageApplies };
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

  /**
   * The hashes of one image against the image lists that apply to the client's profile. An
   * enforce match blocks, a monitor match gives 'monitor' (pass and record); allowlists never apply.
   * Not cached: each image is decided once.
   */
  decideImage(h: ScannedImageHashes, client?: string): ImageDecision {
    if (this.images === null) return ALLOW_NO_IMAGE_MATCH;
    const m = this.images.match(h, this.profiles[this.profileIndex(client)]!.imageApplies);
    return m === null ? ALLOW_NO_IMAGE_MATCH : imageDecision(m);
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

  /**
   * A full URL: every Safe Browsing expression, on the canonical form and on every other reading
   * an origin may make (policy/readings.ts); the strictest verdict wins.
   */
  decideUrl(url: string, client?: string): Decision {
    let d = this.decideReading(url, client);
    if (d.action === 'block') return d;
    for (const r of extraReadings(url)) {
      const e = this.decideReading(r, client);
      if (e.action === 'block') return e;
      if (e.action === 'monitor' && d.action === 'allow') d = e;
    }
    return d;
  }

  /** One reading of a URL: every Safe Browsing expression. Not cached (the host part is). */
  private decideReading(url: string, client?: string): Decision {
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

  /** Decide on an image with the current policy; fail closed when there is none. */
  decideImage(h: ScannedImageHashes, client?: string): ImageDecision {
    return this.current === null ? BLOCK_NO_POLICY : this.current.decideImage(h, client);
  }
}
