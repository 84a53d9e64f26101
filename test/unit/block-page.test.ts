/** The block page: language choice, escaping, csam text, reference codes, headers, no personal data. */
import t from 'tap';
import type { Decision } from '../../policy/decision.js';
import { blockPage, connectRefusal, referenceCode } from '../../proxy/block-page.js';
import { escapeHtml, LOCALES, pickLanguage } from '../../proxy/guest-page.js';

const block = (category: string | null, rule: Decision['rule'] = 'domain'): Decision => ({ action: 'block', category, list: 'l', rule, reason: 'r' });
const opts = { contact: 'staff@venue.test', languages: ['en', 'sq'] };

t.test('Accept-Language picks an offered language by q-value', async (t) => {
  const cases: [string | undefined, readonly string[], string][] = [
    [undefined, ['en', 'sq'], 'en'],
    [undefined, ['sq', 'en'], 'sq'],
    ['sq', ['en', 'sq'], 'sq'],
    ['sq-AL,sq;q=0.9,en;q=0.8', ['en', 'sq'], 'sq'],
    ['en;q=0.2, sq;q=0.9', ['en', 'sq'], 'sq'],
    ['de, fr;q=0.9', ['en', 'sq'], 'en'],
    ['de, sq;q=0.1', ['en', 'sq'], 'sq'],
    ['sq;q=0', ['en', 'sq'], 'en'],
    ['*', ['sq', 'en'], 'sq'],
    ['EN-gb', ['sq', 'en'], 'en'],
    ['sq', ['en'], 'en'],
    ['xx', ['xx'], 'en'],
    [';;;,,,q=abc', ['sq', 'en'], 'sq'],
  ];
  for (const [header, offered, want] of cases) t.equal(pickLanguage(header, offered).lang, want, `${header} / ${offered.join(',')}`);
});

t.test('every locale has every string', async (t) => {
  const keys = Object.keys(LOCALES['en']!).sort();
  for (const [lang, s] of Object.entries(LOCALES)) {
    t.same(Object.keys(s).sort(), keys, `${lang} keys`);
    t.same(Object.keys(s.categories).sort(), Object.keys(LOCALES['en']!.categories).sort(), `${lang} categories`);
    t.match(s.contact, /\{contact\}/, `${lang} contact placeholder`);
    t.same(Object.keys(s.upstreamTls).sort(), Object.keys(LOCALES['en']!.upstreamTls).sort(), `${lang} bad-certificate page`);
    t.same(Object.keys(s.upstreamTls.problems).sort(), Object.keys(LOCALES['en']!.upstreamTls.problems).sort(), `${lang} certificate problems`);
    t.match(s.upstreamTls.certFailed, /\{problem\}/, `${lang} problem placeholder`);
  }
});

t.test('the page: status, headers, category, reference, contact', async (t) => {
  const p = blockPage(block('adult'), 'en', opts);
  const html = p.body.toString();
  t.equal(p.status, 403);
  t.equal(p.headers['cache-control'], 'no-store');
  t.equal(p.headers['content-language'], 'en');
  t.equal(p.headers['content-length'], String(p.body.length));
  t.match(p.headers['content-security-policy'], /default-src 'none'/);
  t.match(html, /Adult content/);
  t.match(html, /staff@venue\.test/);
  t.ok(html.includes(p.reference));
  t.match(html, /<html lang="en">/);
  const sq = blockPage(block('adult'), 'sq', opts).body.toString();
  t.match(sq, /Përmbajtje për të rritur/);
  t.match(sq, /<html lang="sq">/);
});

t.test('csam: the hotline splash text, or the configured one', async (t) => {
  const def = blockPage(block('csam'), 'en', opts).body.toString();
  t.match(def, /may contain images of child sexual abuse, as identified by a hotline list/);
  t.match(def, /blocked in error/);
  const custom = blockPage(block('csam'), 'sq', { ...opts, csamText: 'Custom <b>hotline</b> text' }).body.toString();
  t.match(custom, /Custom &lt;b&gt;hotline&lt;\/b&gt; text/);
  t.notMatch(custom, /<b>hotline/);
});

t.test('everything inserted is escaped', async (t) => {
  const p = blockPage(block('<script>alert(1)</script>'), 'en', { ...opts, contact: '"><img src=x onerror=alert(1)>' });
  const html = p.body.toString();
  t.notMatch(html, /<script>|<img/);
  t.match(html, /&lt;script&gt;/);
  t.match(html, /&quot;&gt;&lt;img/);
  t.equal(escapeHtml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;');
});

t.test('no contact configured: tell the venue staff', async (t) => {
  t.match(blockPage(block('adult'), 'en', { ...opts, contact: '' }).body.toString(), /tell the venue staff/);
});

t.test('no policy: 503 with the not-ready text and no category', async (t) => {
  const p = blockPage(block(null, 'no-policy'), 'en', opts);
  t.equal(p.status, 503);
  t.match(p.body.toString(), /Filtering is not ready/);
  t.equal(connectRefusal(block(null, 'no-policy')).status, 503);
});

t.test('reference codes: format, and random (not derived from anything)', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const r = referenceCode();
    t.match(r, /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
    seen.add(r);
  }
  t.equal(seen.size, 200, 'no repeats in 200');
  t.not(blockPage(block('adult'), 'en', opts).reference, blockPage(block('adult'), 'en', opts).reference, 'same request, new reference');
});

t.test('CONNECT refusal text carries only a sanitised category', async (t) => {
  const r = connectRefusal(block('adult\r\nX-Evil: 1'));
  t.equal(r.status, 403);
  t.notMatch(r.body, /[\r]|X-Evil: 1/);
  t.match(r.body, /category adultX-Evil1/);
});
