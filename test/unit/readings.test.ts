/**
 * Readings an origin may make (policy/readings.ts): a table of targets → extra readings, and the
 * policy blocking a listed page under every reading (finding 12 a/b/d).
 */
import t from 'tap';
import { compilePolicy } from '../../policy/policy.js';
import { extraReadings } from '../../policy/readings.js';

t.test('targets → extra readings', async (t) => {
  const table: [string, string[]][] = [
    ['http://site.test/secret/page.html', []],
    ['http://site.test/secret/page.html?a=%41', []],
    ['http://site.test/%3F/../secret/page.html', ['http://site.test/secret/page.html']],
    ['http://site.test/x%3F/../secret/page.html', ['http://site.test/secret/page.html']],
    ['http://page.test/secret/page.html/.', ['http://page.test/secret/page.html']],
    ['http://site.test/SECRET/PAGE.HTML', ['http://site.test/secret/page.html']],
    ['http://site.test/A/x', ['http://site.test/a/x']],
    ['http://site.test//secret//page.html', ['http://site.test/secret/page.html']],
    ['http://site.test/secret/./page.html', ['http://site.test/secret/page.html']],
    ['http://site.test/x/%2e%2e/secret/page.html', ['http://site.test/secret/page.html']],
    ['http://site.test/x\\..\\secret\\page.html', ['http://site.test/secret/page.html']],
    ['http://site.test/secret/', []],
    ['http://site.test/a%2Fb?q', ['http://site.test/a/b?q']],
  ];
  for (const [url, want] of table) t.same(extraReadings(url), want, url);
  t.same(extraReadings('http://site.test/SECRET/', false), [], 'no case-folding when off');
});

t.test('a listed page is blocked under every reading', async (t) => {
  const policy = compilePolicy({
    lists: [{ id: 'p', category: 'malware', kind: 'urls', text: 'http://site.test/secret/page.html\n' }],
  });
  for (const url of [
    'http://site.test/secret/page.html',
    'http://site.test/%3F/../secret/page.html',
    'http://site.test/%253F/../secret/page.html',
    'http://site.test/x%3F/../secret/page.html',
    'http://site.test/secret/page.html/.',
    'http://site.test/SECRET/PAGE.HTML',
    'http://site.test//secret//page.html',
    'http://site.test/x/%2e%2e/secret/page.html',
  ]) {
    t.equal(policy.decideUrl(url).action, 'block', url);
  }
  t.equal(policy.decideUrl('http://site.test/other.html').action, 'allow');
});
