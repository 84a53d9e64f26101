/**
 * The Hooks over the real policy (policy/policy.ts): each hook times the decision, reports one
 * verdict to the Observer, fails closed when no policy is loaded (block, rule `no-policy`), applies
 * SafeSearch when the client's profile asks for it, and turns the TLS options into decisions:
 *
 * - no SNI: inside a CONNECT the authority is decided instead; on the transparent listener
 *   `noSni: block` refuses (there is no other name to decide on).
 * - ECH: `block` refuses any ClientHello with an encrypted_client_hello extension; `allow-outer`
 *   decides on the outer (public) SNI. Note that Chrome sends a GREASE ECH extension on most
 *   connections, so `block` refuses those too.
 * - CONNECT authority and SNI that differ (domain fronting): both are decided and the stricter
 *   verdict wins; with `blockFronting` the disagreement alone is a block.
 *
 * URLs and client addresses go to the Observer only when recordUrls / recordClients say so.
 *
 * onRequest remembers its verdicts per URL, per profile of the current policy (UrlVerdicts below);
 * every request is still reported.
 *
 * onImage (present only when `scanImage` is given): the injected scanner hashes the body (serve
 * passes sharp decoding + PDQ + exact hashes; proxy/ cannot import appliance/), then the current
 * policy's `decideImage` decides for the client's profile. It reports nothing itself: the image tap
 * counts, because only the tap knows whether the answer came in time.
 */
import { combineObservers } from '../audit/observer.js';
import type { VerdictEvent } from '../audit/observer.js';
import type { Decision } from '../policy/decision.js';
import type { ScannedImageHashes } from '../policy/image-lists.js';
import { interceptChoice } from '../policy/intercept.js';
import { LruCache } from '../policy/lru.js';
import { BLOCK_NO_POLICY, type Policy, type PolicyHolder } from '../policy/policy.js';
import { safeSearchHost } from '../policy/safe-search.js';
import type { ClientHelloInfo, ConnInfo, Hooks, ImageVerdict, Observer, Verdict } from './hooks.js';
import { clientKey } from './limits.js';
import { bareHost } from './route.js';

/**
 * Hashes of an image body: exact hashes always; `pdq` only when the bytes decode as an image
 * (absent = undecodable). Must not throw for bad bytes; runs its heavy work off the event loop.
 */
export type ImageScanner = (bytes: Uint8Array) => Promise<ScannedImageHashes>;

export interface PolicyHookOptions {
  readonly recordUrls: boolean;
  readonly recordClients: boolean;
  readonly blockFronting: boolean;
  readonly noSni: 'block' | 'allow';
  readonly ech: 'block' | 'allow-outer';
  /** The image scanner; absent = no onImage hook (the image tap is off). */
  readonly scanImage?: ImageScanner;
  /** limits.clientIpv6Prefix: an IPv6 client's budget key is its prefix of this length (default 64). */
  readonly clientIpv6Prefix?: number;
}

const BLOCK_NO_SNI: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'none',
  reason: 'the ClientHello names no server (tls.noSni: block)',
});

const BLOCK_ECH: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'none',
  reason: 'encrypted ClientHello refused (tls.ech: block)',
});

const BLOCK_FRONTING: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'none',
  reason: 'CONNECT authority and SNI disagree (tls.blockFronting)',
});

const ALLOW_NO_NAME: Decision = Object.freeze({
  action: 'allow',
  category: null,
  list: null,
  rule: 'none',
  reason: 'no name to decide on (tls.noSni: allow)',
});

const SEVERITY = { block: 2, monitor: 1, allow: 0 } as const;

function stricter(a: Decision, b: Decision): Decision {
  return SEVERITY[b.action] > SEVERITY[a.action] ? b : a;
}


/** The SafeSearch front end for a host (null: none, or no host). */
function safeSearchFor(host: string | null): string | undefined {
  return host === null ? undefined : (safeSearchHost(host) ?? undefined);
}

/** URLs longer than this are decided every time (rarely repeated; they would dominate the cache's memory). */
const URL_VERDICT_MAX_LENGTH = 1024;
/** Verdicts kept per profile: up to twice this many (policy/lru.ts). */
const URL_VERDICTS_PER_PROFILE = 4096;

/**
 * onRequest's verdicts per URL, per profile of the current policy: a URL's verdict is a pure
 * function of the policy, the client's profile and the URL (policy.decideUrl, then the profile's
 * SafeSearch), so a URL asked for again (a page's assets, every guest's same front page) is decided
 * once. Dropped whole when the policy is swapped. Memory: at most 2 × 4,096 URLs of at most 1,024
 * characters per profile (~8 MiB at worst). The URLs stay in this process's memory only, as the
 * requests themselves do: never written anywhere (hashed lists stay hashed; nothing is logged).
 */
class UrlVerdicts {
  private policy: Policy | null = null;
  private readonly byProfile = new Map<object, LruCache<string, Verdict>>();

  of(policy: Policy, profile: object): LruCache<string, Verdict> {
    if (policy !== this.policy) {
      this.policy = policy;
      this.byProfile.clear();
    }
    let c = this.byProfile.get(profile);
    if (c === undefined) {
      c = new LruCache(URL_VERDICTS_PER_PROFILE);
      this.byProfile.set(profile, c);
    }
    return c;
  }
}

/** Host of an absolute http URL, or null. */
function urlHost(url: string): string | null {
  try {
    return new URL(url).hostname;
  } catch {
    return null;
  }
}

export function createPolicyHooks(holder: PolicyHolder, rawObserver: Observer, opts: PolicyHookOptions): Hooks {
  // A failing observer must not turn into a failed (blocked) decision.
  const observer = combineObservers(rawObserver);
  const clientIpv6Prefix = opts.clientIpv6Prefix ?? 64;
  const report = (
    conn: ConnInfo,
    protocol: 'connect' | 'tls' | 'http' | 'https',
    decision: Decision,
    started: number,
    subject: string,
  ): void => {
    const event: VerdictEvent = {
      listener: conn.selftest ? 'selftest' : conn.listener,
      protocol,
      action: decision.action,
      category: decision.category,
      list: decision.list,
      durationSeconds: (performance.now() - started) / 1000,
    };
    if (opts.recordUrls) event.url = subject;
    // Blocks only (allows never): the journal keeps a keyed hash of it, to count distinct sites.
    if (decision.action === 'block' || decision.action === 'monitor') event.site = subject;
    if (opts.recordClients) event.client = conn.client;
    else event.budgetKey = clientKey(conn.client, clientIpv6Prefix);
    observer.verdict(event);
  };

  /** SafeSearch front end for an allowed connection to `host`, when the client's profile enforces it. */
  const safeSearch = (decision: Decision, host: string | null, client: string): string | undefined => {
    const policy = holder.current;
    if (decision.action === 'block' || host === null || policy === null) return undefined;
    if (!policy.profileFor(client).safeSearch) return undefined;
    return safeSearchHost(host) ?? undefined;
  };

  const urlVerdicts = new UrlVerdicts();

  const verdict = (decision: Decision, connectHost: string | undefined): Verdict =>
    connectHost === undefined ? { decision } : { decision, connectHost };

  /** The same without counting (a CONNECT authority; its ClientHello is counted). */
  const interceptsQuietly = (policy: Policy, client: string, host: string): boolean => interceptChoice(policy.profileFor(client).intercept, host).intercept;

  /** Whether the client's profile intercepts this connection (every name it carries must qualify). */
  const intercepts = (policy: Policy, client: string, names: ReadonlyArray<string | null>): boolean => {
    const opts = policy.profileFor(client).intercept;
    if (!opts.enabled) return false;
    for (const n of names) {
      if (n === null) continue;
      if (!interceptChoice(opts, n).intercept) {
        observer.interception?.('excluded');
        return false;
      }
    }
    return names.some((n) => n !== null);
  };

  const scanImage = opts.scanImage;
  const onImage = scanImage
    ? async (img: { bytes: Uint8Array }, conn: ConnInfo): Promise<ImageVerdict> => {
        const h = await scanImage(img.bytes);
        const result = h.pdq === undefined ? 'undecodable' : 'scanned';
        const policy = holder.current;
        if (policy === null) return { decision: BLOCK_NO_POLICY, result };
        const d = policy.decideImage(h, conn.client);
        const v: ImageVerdict = { decision: d, result };
        if (d.match === undefined) return v;
        return d.distance === undefined ? { ...v, match: d.match } : { ...v, match: d.match, distance: d.distance };
      }
    : undefined;

  return {
    ...(onImage ? { onImage } : {}),
    onConnect(target, conn) {
      const started = performance.now();
      const policy = holder.current;
      const decision = policy === null ? BLOCK_NO_POLICY : policy.decideHost(target.host, conn.client);
      report(conn, 'connect', decision, started, `${target.host}:${target.port}`);
      const v = verdict(decision, safeSearch(decision, target.host, conn.client));
      // Only a block uses it (the page is then shown over TLS); interception proper is decided on the SNI.
      return decision.action === 'block' && policy !== null && interceptsQuietly(policy, conn.client, target.host) ? { ...v, intercept: true } : v;
    },

    onClientHello(hello: ClientHelloInfo, conn, connectHost) {
      const started = performance.now();
      const policy = holder.current;
      let decision: Decision;
      let name: string | null = hello.sni;
      if (policy === null) decision = BLOCK_NO_POLICY;
      else if (hello.ech && opts.ech === 'block') decision = BLOCK_ECH;
      else if (hello.sni === null) {
        name = connectHost ?? null;
        if (name !== null) decision = policy.decideHost(name, conn.client);
        else decision = opts.noSni === 'block' ? BLOCK_NO_SNI : ALLOW_NO_NAME;
      } else {
        decision = policy.decideHost(hello.sni, conn.client);
        if (connectHost !== undefined && bareHost(connectHost) !== hello.sni) {
          decision = stricter(decision, policy.decideHost(connectHost, conn.client));
          if (opts.blockFronting && decision.action !== 'block') decision = BLOCK_FRONTING;
          observer.fronting?.(decision.action === 'block' ? 'block' : 'allow');
        }
      }
      report(conn, 'tls', decision, started, name ?? '');
      const v = verdict(decision, safeSearch(decision, name, conn.client));
      const names = connectHost !== undefined && hello.sni !== null ? [hello.sni, bareHost(connectHost)] : [name];
      return policy !== null && intercepts(policy, conn.client, names) ? { ...v, intercept: true } : v;
    },

    onRequest(url, conn) {
      const started = performance.now();
      const policy = holder.current;
      if (policy === null) {
        report(conn, url.startsWith('https:') ? 'https' : 'http', BLOCK_NO_POLICY, started, url);
        return verdict(BLOCK_NO_POLICY, undefined);
      }
      const profile = policy.profileFor(conn.client);
      const cache = urlVerdicts.of(policy, profile);
      let v = url.length <= URL_VERDICT_MAX_LENGTH ? cache.get(url) : undefined;
      if (v === undefined) {
        const decision = policy.decideUrl(url, conn.client);
        // The URL's host is parsed only for a profile that enforces SafeSearch.
        v = verdict(decision, decision.action !== 'block' && profile.safeSearch ? safeSearchFor(urlHost(url)) : undefined);
        if (url.length <= URL_VERDICT_MAX_LENGTH) cache.set(url, v);
      }
      report(conn, url.startsWith('https:') ? 'https' : 'http', v.decision, started, url);
      return v;
    },
  };
}
