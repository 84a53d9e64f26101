/**
 * Site tags (issue 21, point 5): a keyed hash of a blocked host, so that a period report can count
 * the distinct sites that were blocked ("150 different blacklisted or adult sites a month") while
 * no host is ever stored in clear text.
 *
 * tag = the first 8 bytes, in hex, of HMAC-SHA-256(key, host), host lower-cased without a port or a
 * trailing dot, in the URL parser's canonical form (IDN as punycode, IPv6 compressed), so that every
 * spelling of one site gives one tag. The key is 32 random bytes made on first start in the state folder
 * (`site-tag.key`, mode 0600, created exclusively like identity.json), and never leaves it: not in
 * the journal, the metrics, a report or a log. Without the key a tag cannot be tested against a
 * guess of a host (a plain SHA-256 of a host could be, by hashing a list of candidate names).
 *
 * Error bound: two distinct hosts share a tag with probability 2^-64 per pair; among n distinct
 * hosts the expected number of colliding pairs is n(n-1)/2^65, about 3e-8 for a million hosts, so
 * the distinct count is exact for any real period in all but a vanishing fraction of cases, and
 * can only undercount. Events kept only in per-minute aggregate rows (journal budget) carry no tag;
 * the report says how many, as the most the distinct count could be short by.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SafespotError } from '../policy/errors.js';

export const SITE_TAG_KEY_FILE = 'site-tag.key';
const KEY_HEX = /^[0-9a-f]{64}$/;

/**
 * The host of a verdict's subject: an absolute URL, `host:port`, `[v6]:port`, a bare name or IPv6
 * address; null when it names none (empty, longer than a name can be, brackets around no address).
 */
export function siteHost(subject: string): string | null {
  let h = subject;
  const scheme = h.indexOf('://');
  if (scheme >= 0) {
    try {
      h = new URL(h).hostname;
    } catch {
      return null;
    }
  }
  let v6 = false;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    h = end > 0 ? h.slice(1, end) : h.slice(1);
    v6 = true;
  } else {
    const colon = h.indexOf(':');
    // One colon: host:port. More: a bare IPv6 address, kept whole.
    if (colon >= 0 && colon === h.lastIndexOf(':')) h = h.slice(0, colon);
    else if (colon >= 0) v6 = true;
  }
  h = h.replace(/\.+$/, '');
  if (h.length === 0 || h.length > 253) return null;
  return canonicalHost(h, v6);
}

/** Characters that would make the URL parser read a host as something else (userinfo, path, port). */
const NOT_A_HOST = /[/?#@\\:%\s[\]]/;

/**
 * One spelling per site, whatever form the subject came in: the WHATWG URL host parser's (the form
 * `new URL()` gives an absolute URL's host): an IDN in Unicode becomes its punycode (UTS 46, so
 * BÜCHER.test, bücher.test and xn--bcher-kva.test are one site), an IPv6 address its compressed
 * lower-case form (RFC 5952), an IPv4 address in another notation dotted decimal. A host the parser
 * refuses, or one with a character it would read as more than a host, is only lower-cased; one that
 * is only dots to the parser ("。") is none.
 */
function canonicalHost(h: string, v6: boolean): string | null {
  const lower = h.toLowerCase();
  // In brackets, or with more than one colon, but no IPv6 address: no host (RFC 3986 §3.2.2).
  if (v6 && !/^[0-9a-f:.]+$/.test(lower)) return null;
  if (!v6 && NOT_A_HOST.test(lower)) return lower;
  try {
    const c = new URL(`http://${v6 ? `[${lower}]` : lower}/`).hostname;
    // The URL parser maps 。 and ． to a dot: a name may end in one only now.
    const host = v6 ? c.slice(1, -1) : c.replace(/\.+$/, '');
    if (host.length === 0) return null;
    return host.length <= 253 ? host : lower;
  } catch {
    return v6 ? null : lower;
  }
}

/** Subjects whose tags a tagger keeps (cleared when full), and the longest subject it keeps. */
export const SITE_TAG_CACHE = { entries: 4096, subjectChars: 512 } as const;

/**
 * A tagger with this key: the tag of a subject's host, or null when it names no host. The tags of
 * recent subjects are kept (at most SITE_TAG_CACHE.entries, the map dropped whole when full; only
 * in memory, where the subjects already are): a blocked site is usually asked for again and again,
 * and each block cost a URL parse and an HMAC (13 % of a TLS refusal's CPU went to the journal's
 * event, half of it here: BENCHMARKS.md, issue 17 point 4).
 */
export function siteTagger(key: Buffer): (subject: string) => string | null {
  if (key.length !== 32) throw new RangeError('a site-tag key is 32 bytes');
  const seen = new Map<string, string | null>();
  return (subject) => {
    const kept = seen.get(subject);
    if (kept !== undefined) return kept;
    const host = siteHost(subject);
    const tag = host === null ? null : createHmac('sha256', key).update(host).digest('hex').slice(0, 16);
    if (subject.length <= SITE_TAG_CACHE.subjectChars) {
      if (seen.size >= SITE_TAG_CACHE.entries) seen.clear();
      seen.set(subject, tag);
    }
    return tag;
  };
}

function readKey(path: string): Buffer {
  const text = readFileSync(path, 'utf8').trim();
  if (!KEY_HEX.test(text)) throw new SafespotError('ERR_JOURNAL', `the site-tag key ${path} is not 64 hex digits`);
  return Buffer.from(text, 'hex');
}

/** The appliance's site-tag key from `dir/site-tag.key`, made there (0600, exclusively) when missing. */
export function loadOrCreateSiteKey(dir: string): { key: Buffer; created: boolean } {
  const path = join(dir, SITE_TAG_KEY_FILE);
  try {
    return { key: readKey(path), created: false };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    // Another process (a worker, a second start) made it first: use theirs.
    if ((err as { code?: string }).code === 'EEXIST') return { key: readKey(path), created: false };
    throw new SafespotError('ERR_JOURNAL', `cannot create the site-tag key ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    writeSync(fd, `${key.toString('hex')}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o600);
  return { key, created: true };
}
