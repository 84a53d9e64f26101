/**
 * Safe Browsing v4 "Suffix/Prefix Expressions"
 * (https://developers.google.com/safe-browsing/v4/urls-hashing, section of that name).
 *
 * Hosts (at most 5): the exact host, then up to four suffixes formed from the last five labels by
 * removing the leading label one at a time, never the top-level label alone. An IP host (v4 or v6)
 * is only itself.
 * Paths (at most 6): the exact path with the query, the exact path without it, then up to four
 * prefixes from the root, each adding one path component with a trailing slash ('/', '/1/', …).
 * Every expression is host + path: no scheme, no port, no user info. Duplicates are left out, so
 * `http://a.b.c/` gives ['a.b.c/', 'b.c/'].
 */
import type { CanonicalUrl, HostKind } from './canonicalize.js';

/** Most host suffixes per URL and most path prefixes (besides the exact path) per URL. */
const MAX_HOST_SUFFIXES = 5;
const MAX_PATH_PREFIXES = 4;

/** The host variants of a canonical host, most specific first. */
function hostVariants(host: string, hostKind: HostKind): string[] {
  const out = [host];
  if (hostKind !== 'name') return out;
  // Dots from the right: the suffix of j labels starts after the j-th dot from the right.
  const dots: number[] = [];
  for (let i = host.length - 1; i >= 0 && dots.length < MAX_HOST_SUFFIXES; i--) {
    if (host.charCodeAt(i) === 0x2e) dots.push(i);
  }
  // With k labels we found min(5, k-1) dots: take j = min(5, k-1) … 2 labels (j = k is the host).
  for (let j = dots.length; j >= 2; j--) out.push(host.slice(dots[j - 1]! + 1));
  return out;
}

/** The path variants of a canonical path and query, most specific first. */
function pathVariants(path: string, query: string | null): string[] {
  const out: string[] = [];
  if (query !== null) out.push(`${path}?${query}`);
  out.push(path);
  if (path !== '/') out.push('/');
  let from = 1;
  for (let added = 1; added < MAX_PATH_PREFIXES; added++) {
    const slash = path.indexOf('/', from);
    if (slash < 0) break;
    const prefix = path.slice(0, slash + 1);
    if (prefix !== path) out.push(prefix);
    from = slash + 1;
  }
  return out;
}

/**
 * The suffix/prefix expressions of a canonical URL: up to 5 host variants × up to 6 path variants
 * (so never more than 30), most specific first.
 */
export function urlExpressions(url: CanonicalUrl): string[] {
  const hosts = hostVariants(url.host, url.hostKind);
  const paths = pathVariants(url.path, url.query);
  const out = new Array<string>(hosts.length * paths.length);
  let k = 0;
  for (const h of hosts) for (const p of paths) out[k++] = h + p;
  return out;
}

/**
 * The expressions for a host-only decision (SNI, CONNECT authority, Host header): the host
 * variants with the path '/'. `host` must be canonical (from canonicalizeHost), e.g.
 * hostExpressions('a.b.c', 'name') → ['a.b.c/', 'b.c/'].
 */
export function hostExpressions(host: string, hostKind: HostKind): string[] {
  const hosts = hostVariants(host, hostKind);
  for (let i = 0; i < hosts.length; i++) hosts[i] = `${hosts[i]}/`;
  return hosts;
}
