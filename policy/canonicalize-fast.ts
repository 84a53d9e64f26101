/**
 * The fast path of canonicalize.ts: ordinary already-canonical ASCII URLs and host names, recognised
 * in one scan that finds nothing to change, the result built from slices of the input. Anything
 * else returns null and the general path (canonicalize.ts) decides, so both give the same answer
 * (test/unit/canonicalize.test.ts, "fast path and general path agree", checks that they do).
 */
import { MAX_URL_BYTES, type CanonicalHost } from './host.js';
import type { CanonicalUrl } from './canonicalize.js';

/**
 * Ordinary ASCII `http(s)://host[:port][/path][?query]` that needs no byte work: a host of letters
 * (upper case is lowered here), digits, '-', '_' and single inner dots whose last label does not
 * start with a digit (so not IPv4), an optional decimal port, no user info, no '%', '#', space or
 * control anywhere, no empty, '.' or '..' path segment. Returns null whenever anything else is seen;
 * the general path then decides.
 */
export function fastPath(s: string): CanonicalUrl | null {
  const n = s.length;
  if (n > MAX_URL_BYTES) return null; // ASCII only here, so length = bytes; the general path refuses
  let i: number;
  let scheme: string;
  if (s.startsWith('http://')) {
    i = 7;
    scheme = 'http';
  } else if (s.startsWith('https://')) {
    i = 8;
    scheme = 'https';
  } else return null;
  const hostStart = i;
  let labelStart = i;
  let upper = false;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f) continue;
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      continue;
    }
    if (c === 0x2e) {
      if (i === labelStart) return null;
      labelStart = i + 1;
      continue;
    }
    if (c === 0x2f || c === 0x3f || c === 0x3a) break;
    return null;
  }
  if (i === labelStart) return null; // empty host or trailing dot
  const last = s.charCodeAt(labelStart);
  if (last >= 0x30 && last <= 0x39) return null;
  const hostEnd = i;
  let port: number | null = null;
  if (i < n && s.charCodeAt(i) === 0x3a) {
    let v = 0;
    let digits = 0;
    for (i++; i < n; i++, digits++) {
      const c = s.charCodeAt(i);
      if (c === 0x2f || c === 0x3f) break;
      if (c < 0x30 || c > 0x39 || digits === 5) return null;
      v = v * 10 + (c - 0x30);
    }
    if (v > 65535) return null;
    if (digits > 0 && v !== (scheme === 'http' ? 80 : 443)) port = v;
  }
  const rawHost = s.slice(hostStart, hostEnd);
  const host = upper ? rawHost.toLowerCase() : rawHost;
  // The href is the input itself when nothing before the path changes.
  const prefixSame = !upper && i === hostEnd;
  const pathStart = i;
  let path = '/';
  if (i < n && s.charCodeAt(i) === 0x2f) {
    let segStart = i + 1;
    for (i++; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f || c === 0x25 || c === 0x23) return null;
      if (c === 0x2f || c === 0x3f) {
        const seg = i - segStart;
        if (c === 0x2f && seg === 0) return null;
        if (seg === 1 && s.charCodeAt(segStart) === 0x2e) return null;
        if (seg === 2 && s.charCodeAt(segStart) === 0x2e && s.charCodeAt(segStart + 1) === 0x2e) return null;
        if (c === 0x3f) break;
        segStart = i + 1;
      }
    }
    const seg = i - segStart;
    if (seg === 1 && s.charCodeAt(segStart) === 0x2e) return null;
    if (seg === 2 && s.charCodeAt(segStart) === 0x2e && s.charCodeAt(segStart + 1) === 0x2e) return null;
    path = s.slice(pathStart, i);
  }
  let query: string | null = null;
  if (i < n) {
    // s[i] === '?'
    for (let k = i + 1; k < n; k++) {
      const c = s.charCodeAt(k);
      if (c <= 0x20 || c >= 0x7f || c === 0x25 || c === 0x23) return null;
    }
    query = s.slice(i + 1);
  }
  let href: string;
  if (prefixSame && pathStart < n && s.charCodeAt(pathStart) === 0x2f) href = s;
  else href = `${scheme}://${host}${path}${query === null ? '' : `?${query}`}`;
  return { scheme, host, hostKind: 'name', port, path, query, href };
}

/** Already-canonical host names (optionally `:port`), upper case allowed; else null. */
export function fastHost(s: string): CanonicalHost | null {
  const n = s.length;
  if (n > MAX_URL_BYTES) return null;
  let labelStart = 0;
  let upper = false;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f) continue;
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      continue;
    }
    if (c === 0x2e) {
      if (i === labelStart) return null;
      labelStart = i + 1;
      continue;
    }
    if (c === 0x3a) break;
    return null;
  }
  if (i === labelStart) return null;
  const last = s.charCodeAt(labelStart);
  if (last >= 0x30 && last <= 0x39) return null;
  if (i < n) {
    if (i + 1 === n || n - i > 6) return null;
    for (let k = i + 1; k < n; k++) {
      const c = s.charCodeAt(k);
      if (c < 0x30 || c > 0x39) return null;
    }
    if (Number(s.slice(i + 1)) > 65535) return null;
  }
  const host = i < n ? s.slice(0, i) : s;
  return { host: upper ? host.toLowerCase() : host, hostKind: 'name' };
}
