/** The SafeSearch table: which hosts go to which enforced-safe-search front end. */
import t from 'tap';
import { safeSearchHost } from '../../policy/safe-search.js';

t.test('search hosts map to their safe front ends; others are left alone', async (t) => {
  const cases: [string, string | null][] = [
    ['www.google.com', 'forcesafesearch.google.com'],
    ['google.com', 'forcesafesearch.google.com'],
    ['www.google.al', 'forcesafesearch.google.com'],
    ['google.de', 'forcesafesearch.google.com'],
    ['www.google.co.uk', 'forcesafesearch.google.com'],
    ['www.google.com.au', 'forcesafesearch.google.com'],
    ['WWW.GOOGLE.COM.', 'forcesafesearch.google.com'],
    ['www.google.cat', 'forcesafesearch.google.com'],
    ['bing.com', 'strict.bing.com'],
    ['www.bing.com', 'strict.bing.com'],
    ['duckduckgo.com', 'safe.duckduckgo.com'],
    ['www.duckduckgo.com', 'safe.duckduckgo.com'],
    ['youtube.com', 'restrictmoderate.youtube.com'],
    ['www.youtube.com', 'restrictmoderate.youtube.com'],
    ['m.youtube.com', 'restrictmoderate.youtube.com'],
    ['youtubei.googleapis.com', 'restrictmoderate.youtube.com'],
    ['youtube.googleapis.com', 'restrictmoderate.youtube.com'],
    ['mail.google.com', null],
    ['accounts.google.com', null],
    ['google.org', null],
    ['forcesafesearch.google.com', null],
    ['strict.bing.com', null],
    ['notgoogle.com', null],
    ['google.com.evil.test', null],
    ['images.example.test', null],
    ['', null],
  ];
  for (const [host, want] of cases) t.equal(safeSearchHost(host), want, host || '(empty)');
});
