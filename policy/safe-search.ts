/**
 * SafeSearch enforcement without decryption: connections for a search engine's hosts go to the
 * provider's enforced-safe-search front end, while the guest's SNI / Host header stays as it was.
 * This is what the providers document for networks (a DNS CNAME to the front end); doing it at
 * connect time gives the same result without touching DNS.
 *
 * - Google: every `google.<tld>` / `www.google.<tld>` (ccTLDs and `google.co.xx`, `google.com.xx`)
 *   -> forcesafesearch.google.com
 * - Bing: bing.com, www.bing.com -> strict.bing.com
 * - DuckDuckGo: duckduckgo.com, www.duckduckgo.com -> safe.duckduckgo.com
 * - YouTube: www.youtube.com, m.youtube.com, youtube.com, youtubei.googleapis.com,
 *   youtube.googleapis.com, www.youtube-nocookie.com -> restrictmoderate.youtube.com
 *
 * Pure: plain strings in and out.
 */

const EXACT: ReadonlyMap<string, string> = new Map([
  ['bing.com', 'strict.bing.com'],
  ['www.bing.com', 'strict.bing.com'],
  ['duckduckgo.com', 'safe.duckduckgo.com'],
  ['www.duckduckgo.com', 'safe.duckduckgo.com'],
  ['start.duckduckgo.com', 'safe.duckduckgo.com'],
  ['youtube.com', 'restrictmoderate.youtube.com'],
  ['www.youtube.com', 'restrictmoderate.youtube.com'],
  ['m.youtube.com', 'restrictmoderate.youtube.com'],
  ['youtubei.googleapis.com', 'restrictmoderate.youtube.com'],
  ['youtube.googleapis.com', 'restrictmoderate.youtube.com'],
  ['www.youtube-nocookie.com', 'restrictmoderate.youtube.com'],
]);

export const GOOGLE_SAFE = 'forcesafesearch.google.com';

/**
 * `google.com`, `google.de`, `google.co.uk`, `google.com.au`, `google.cat`, with or without `www.`:
 * the search front ends. Other Google hosts (mail.google.com, accounts.google.com, …) and google.org
 * (not search) are left alone.
 */
const GOOGLE_SEARCH = /^(?:www\.)?google\.(?:com|cat|[a-z]{2}|co\.[a-z]{2}|com\.[a-z]{2})$/;

/** The enforced-safe-search front end for `host`, or null when the host is not a search engine. */
export function safeSearchHost(host: string): string | null {
  let h = host.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  const exact = EXACT.get(h);
  if (exact !== undefined) return exact;
  if (GOOGLE_SEARCH.test(h)) return GOOGLE_SAFE;
  return null;
}
