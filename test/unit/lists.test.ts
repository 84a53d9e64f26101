/** URL list parsers: every accepted line shape, the refusals, and arbitrary bytes (fast-check). */
import fc from 'fast-check';
import t from 'tap';
import { SafespotError } from '../../policy/errors.js';
import { parseUrlList, type UrlListKind } from '../../policy/lists.js';
import { sha256Hex } from '../../policy/sha256.js';

t.test('domains: line shapes', async (t) => {
  const table: Array<[string, string, string[]]> = [
    ['plain', 'blocked.test\n', ['blocked.test/']],
    ['upper case and trailing dot', 'Blocked.TEST.\n', ['blocked.test/']],
    ['hosts file, several names, inline comment', '0.0.0.0 a.test b.test # ads\n', ['a.test/', 'b.test/']],
    ['hosts file 127.0.0.1 and ::', '127.0.0.1 c.test\n:: d.test\n', ['c.test/', 'd.test/']],
    ['hosts boilerplate skipped', '127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n0.0.0.0 e.test\n', ['e.test/']],
    ['adblock', '||adult.test^\n||f.test\n', ['adult.test/', 'f.test/']],
    ['wildcard', '*.g.test\n', ['g.test/']],
    ['comments and blanks', '# hash\n! bang\n[Adblock Plus 2.0]\n\n   \nh.test\n', ['h.test/']],
    ['CRLF', 'i.test\r\nj.test\r\n', ['i.test/', 'j.test/']],
    ['IDN to punycode', 'bücher.test\n', ['xn--bcher-kva.test/']],
    ['IPv4 literal', '10.1.2.3\n', ['10.1.2.3/']],
    ['no final newline', 'k.test', ['k.test/']],
  ];
  for (const [name, text, want] of table) {
    const r = parseUrlList('domains', text, 'd');
    t.same(r.expressions, want, name);
    t.equal(r.report.malformed, 0, `${name}: nothing malformed`);
  }
});

t.test('domains: BOM as bytes and as a string', async (t) => {
  const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('bom.test\r\n')]);
  t.same(parseUrlList('domains', bytes).expressions, ['bom.test/']);
  t.same(parseUrlList('domains', '\ufeffbom.test\n').expressions, ['bom.test/']);
});

t.test('malformed lines are counted with line numbers, never quoted', async (t) => {
  const text = 'a.test\nnot a host!\nb.test\n||c.test^$third-party\nexample .test\nd.test\ne.test\n';
  const r = parseUrlList('domains', text, 'mixed');
  t.same(r.expressions, ['a.test/', 'b.test/', 'd.test/', 'e.test/']);
  t.equal(r.report.malformed, 3);
  t.same(r.report.malformedLines, [2, 4, 5]);
  t.equal(r.report.lines, 7);
});

t.test('urls: page expressions', async (t) => {
  const table: Array<[string, string[]]> = [
    ['http://blocked.test/a/b.html?x=1', ['blocked.test/a/b.html?x=1']],
    ['https://Blocked.test:8443/a/../c', ['blocked.test/c']],
    ['blocked.test/page', ['blocked.test/page']],
    ['blocked.test', ['blocked.test/']],
    ['http://user@blocked.test/%7Ex#frag', ['blocked.test/~x']],
  ];
  for (const [line, want] of table) t.same(parseUrlList('urls', `${line}\n`).expressions, want, line);
  const r = parseUrlList('urls', '# c\nhttp://a.test/\nhttp://a b.test/\nhttp://ok.test/x\n');
  t.equal(r.report.malformed, 1);
  t.same(r.report.malformedLines, [3]);
});

t.test('hashed-urls: full and prefix entries', async (t) => {
  const full = sha256Hex('made-up.test/secret/page.html');
  const text = `${full}\r\n${full.slice(0, 8).toUpperCase()}\n${full.slice(0, 12)}\n${full.slice(0, 16)}\n# comment\n\n`;
  const r = parseUrlList('hashed-urls', text, 'h');
  t.equal(r.report.entries, 4);
  t.equal(r.report.shortPrefixes, 2);
  t.same([...r.prefixes.len], [32, 4, 6, 8]);
  t.equal(r.prefixes.hi[0], parseInt(full.slice(0, 8), 16));
  t.equal(r.prefixes.lo[0], parseInt(full.slice(8, 16), 16));
  t.equal(r.prefixes.lo[2], parseInt(`${full.slice(8, 12)}0000`, 16));
  t.equal(r.expressions.length, 0);
  const bad = parseUrlList('hashed-urls', `${full}\n${full}\nabc\n${full.slice(0, 9)}\n${full}z\n${full}\n${full}\n`, 'h2');
  t.equal(bad.report.malformed, 3, 'too short, odd length, not hex');
  t.same(bad.report.malformedLines, [3, 4, 5]);
});

t.test('mostly garbage or empty lists are refused with ERR_LIST_INVALID', async (t) => {
  const secret = 'f'.repeat(63) + 'g';
  const cases: Array<[UrlListKind, string, RegExp]> = [
    ['domains', '', /no valid entry/],
    ['domains', '# only comments\n', /no valid entry/],
    ['domains', 'a.test\nx y z\n!!!\n@@\n', /mostly malformed/],
    ['urls', 'http://\nhttp://a b\nok.test\n', /no valid entry|mostly malformed/],
    ['hashed-urls', `${secret}\n${secret}\nabcdef12\n`, /mostly malformed: 2 of 3/],
  ];
  for (const [kind, text, msg] of cases) {
    try {
      parseUrlList(kind, text, 'the-list');
      t.fail(`${kind} ${JSON.stringify(text)} was accepted`);
    } catch (err) {
      t.ok(err instanceof SafespotError && err.code === 'ERR_LIST_INVALID', `${kind}: code`);
      t.match((err as Error).message, msg);
      t.match((err as Error).message, /"the-list"/);
      t.notMatch((err as Error).message, /ffffffff/, 'no list text in the message');
    }
  }
});

t.test('property: arbitrary bytes never throw anything but SafespotError', async (t) => {
  for (const kind of ['domains', 'urls', 'hashed-urls'] as const) {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        try {
          const r = parseUrlList(kind, bytes);
          return r.report.entries > 0;
        } catch (err) {
          return err instanceof SafespotError;
        }
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), fc.constantFrom('0.0.0.0 ', '||', '^', '\r\n', '\n', '#', 'a.test', 'http://', '/', '%', '[::1]')), { maxLength: 40 }), (parts) => {
        try {
          parseUrlList(kind, parts.join(''));
          return true;
        } catch (err) {
          return err instanceof SafespotError;
        }
      }),
      { numRuns: 300 },
    );
  }
  t.pass('no crash');
});
