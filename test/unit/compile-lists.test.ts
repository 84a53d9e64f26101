/**
 * The streaming list compile (policy/compile-lists.ts) against the string parser it replaced in
 * compile (parseUrlList, policy/lists.ts, kept as the reference): the same entries in the same order,
 * the same report key for key, the same refusals, on a corpus of edge cases (duplicates, case,
 * trailing and repeated dots, IDN and punycode, IPv4 in every encoding, comments, blank lines, CRLF,
 * a BOM, invalid UTF-8, oversized lines and labels) and on fuzzed lists; and the compiled bundle of
 * the corpus is the same whether the list is given as bytes or as a string, and the same as one
 * built from the reference parser's entries.
 */
import t from 'tap';
import fc from 'fast-check';
import { encodeBundle } from '../../policy/bundle.js';
import { scanUrlList, type EntrySink } from '../../policy/compile-lists.js';
import { SafespotError } from '../../policy/errors.js';
import { HashStoreBuilder } from '../../policy/hash-store.js';
import { parseUrlList, type UrlListKind } from '../../policy/lists.js';
import { compileParts, compilePolicy } from '../../policy/policy.js';
import { sha256StringWords } from '../../policy/sha256.js';

type Entry = readonly [number, number, number];

class Recorder implements EntrySink {
  readonly entries: Entry[] = [];
  add(h0: number, h1: number, len: number): void {
    this.entries.push([h0 >>> 0, h1 >>> 0, len]);
  }
}

/** What the reference parser gives: entries as the old compile added them, and the report. */
function reference(kind: UrlListKind, input: string | Uint8Array): { entries: Entry[]; report: string } | { error: string } {
  let parsed;
  try {
    parsed = parseUrlList(kind, input, 'l');
  } catch (err) {
    if (!(err instanceof SafespotError)) throw err;
    return { error: `${err.code} ${err.message}` };
  }
  const entries: Entry[] = [];
  const words = new Uint32Array(8);
  if (kind === 'hashed-urls') {
    const { hi, lo, len } = parsed.prefixes;
    for (let i = 0; i < hi.length; i++) entries.push([hi[i]!, lo[i]!, len[i]!]);
  } else {
    for (const e of parsed.expressions) {
      sha256StringWords(e, words);
      entries.push([words[0]!, words[1]!, 32]);
    }
  }
  return { entries, report: JSON.stringify(parsed.report) };
}

function streamed(kind: UrlListKind, input: string | Uint8Array): { entries: Entry[]; report: string } | { error: string } {
  const sink = new Recorder();
  let out: { entries: Entry[]; report: string } | { error: string };
  try {
    const report = scanUrlList(kind, input, 'l', sink);
    out = { entries: sink.entries, report: JSON.stringify(report) };
  } catch (err) {
    if (!(err instanceof SafespotError)) throw err;
    out = { error: `${err.code} ${err.message}` };
  }
  // Counting alone (no sink: nothing hashed) gives the same report and the same refusal.
  let counted: string;
  try {
    counted = JSON.stringify(scanUrlList(kind, input, 'l', null));
  } catch (err) {
    if (!(err instanceof SafespotError)) throw err;
    counted = `${err.code} ${err.message}`;
  }
  if (counted !== ('error' in out ? out.error : out.report)) throw new Error(`counting alone differs: ${counted}`);
  return out;
}

const long = (n: number, c = 'a') => c.repeat(n);

const DOMAIN_LINES = [
  'plain.test',
  'plain.test', // duplicate
  'PLAIN.Test', // case: the same entry again
  'Mixed.CASE.test',
  'trailing.dot.test.',
  'trailing.dots.test...',
  '.leading.dot.test',
  'double..dot.test',
  '...',
  '.',
  '-',
  '-lead.test',
  'trail-.test',
  'mid-dash.test',
  'under_score.test',
  '_dmarc.mail.test',
  'xn--bcher-kva.test', // punycode as written
  'bücher.test', // IDN: to punycode in the slow path
  'xn--zz.test',
  'straße.test',
  '1.2.3.4',
  '1.2.3.4.',
  '0x7f.1',
  '0x7F.0.0.1',
  '010.0.0.1',
  '1234',
  '4294967295',
  '4294967296',
  '1.2.3.4.5',
  'dead.beef',
  'cafe.babe.test',
  'abc.def',
  '0xdeadbeef',
  'x',
  'a',
  '9.test',
  '# a comment',
  '! adblock comment',
  '[Adblock Plus 2.0]',
  '',
  '   ',
  '\t',
  'inline.test # comment',
  'inline2.test#not-a-comment',
  '0.0.0.0 hosts.test other.hosts.test',
  '127.0.0.1 localhost',
  '::1 ip6-localhost',
  '0.0.0.0 bad_host!.test',
  '||adblock.test^',
  '||adblock-opts.test^$third-party',
  '*.wild.test',
  '*.',
  ' padded.test ',
  'tab\tsep.test',
  '%41scaped.test',
  'a/b.test',
  'a@b.test',
  'a:b.test',
  '[::1]',
  '[2001:db8::1]',
  `${long(63)}.test`,
  `${long(64)}.test`,
  `${long(60)}.${long(60)}.${long(60)}.${long(60)}.test`, // 249
  `${long(63)}.${long(63)}.${long(63)}.${long(61)}`, // 253
  `${long(63)}.${long(63)}.${long(63)}.${long(62)}`, // 254
  `${long(63)}.${long(63)}.${long(63)}.${long(61)}.....`, // 258 written, 253 canonical
  `${long(63)}.${long(63)}.${long(63)}.${long(61)}${'.'.repeat(7)}`, // 260
  `${long(63)}.${long(63)}.${long(63)}.${long(61)}${'.'.repeat(8)}`, // 261 written
  `${'.'.repeat(255)}short.test`,
  long(300),
  long(5000, 'b'),
  'UPPER.TEST',
  'ÄÖÜ.test',
  '\u00a0nbsp.test',
  'bom\ufeffinside.test',
  'nul\u0000.test',
];

function joined(lines: readonly string[], eol: string, last = true): string {
  return lines.join(eol) + (last ? eol : '');
}

t.test('domains corpus: entries, report and order are those of the reference parser', async (t) => {
  for (const eol of ['\n', '\r\n']) {
    for (const last of [true, false]) {
      const text = joined(DOMAIN_LINES, eol, last);
      for (const input of [text, Buffer.from(text, 'utf8'), `\ufeff${text}`, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)])]) {
        const want = reference('domains', input);
        t.ok(!('error' in want) && want.entries.length > 40, 'the corpus compiles');
        t.same(streamed('domains', input), want, `eol ${JSON.stringify(eol)}, final eol ${last}, ${typeof input}`);
      }
    }
  }
  // Line by line: each corpus line among good ones, so a wrong verdict on any one line shows alone.
  for (const line of DOMAIN_LINES) {
    const text = `good1.test\n${line}\r\ngood2.test\n`;
    t.same(streamed('domains', text), reference('domains', text), JSON.stringify(line.slice(0, 40)));
  }
});

t.test('invalid UTF-8, lone CRs and odd breaks read as the reference reads them', async (t) => {
  const chunks = [
    Buffer.from('ok.test\n'),
    Buffer.from([0xff, 0x2e, 0x74, 0x65, 0x73, 0x74, 0x0a]), // \xff.test
    Buffer.from([0xc3, 0x0a]), // a truncated sequence before the LF
    Buffer.from([0xe2, 0x82, 0x0d, 0x0a]),
    Buffer.from('a\rb.test\n'),
    Buffer.from('cr.test\r\r\n'),
    Buffer.from([0xef, 0xbb, 0xbf]), // a BOM on a line of its own, not at the start
    Buffer.from('after-bom.test\n\n\n'),
    Buffer.from('end.test'),
  ];
  for (const kind of ['domains', 'urls', 'hashed-urls'] as const) {
    const input = Buffer.concat(kind === 'hashed-urls' ? [...chunks, Buffer.from(`\n${'ab'.repeat(32)}\n${'AB'.repeat(32)}\n`)] : chunks);
    t.same(streamed(kind, input), reference(kind, input), kind);
  }
});

t.test('urls and hashed-urls corpora', async (t) => {
  const urls = [
    'http://a.test/',
    'a.test/x?y=1',
    'HTTP://A.TEST/Path',
    'https://a.test:8443/p#frag',
    'http://a.test/%2e%2e/x',
    '# comment',
    '',
    'http://a b.test/',
    'http://bücher.test/ü',
    'not a url at all',
    'http://1.2.3.4/',
    `http://a.test/${long(20000)}`,
    'http://a.test/',
  ];
  for (const eol of ['\n', '\r\n']) {
    const text = joined(urls, eol);
    t.same(streamed('urls', text), reference('urls', text), `urls ${JSON.stringify(eol)}`);
  }
  const full = 'ab'.repeat(32);
  const hashed = [
    full,
    full, // duplicate
    full.toUpperCase(),
    full.slice(0, 8),
    full.slice(0, 10),
    full.slice(0, 14),
    full.slice(0, 16),
    full.slice(0, 18),
    full.slice(0, 9), // odd
    full.slice(0, 6), // short
    `${full}ab`, // 66
    `${full.slice(0, 62)}zz`,
    `  ${full.slice(0, 20)}  `,
    `\t${full.slice(0, 24)}`,
    '# c',
    '! c',
    '',
    'ffffffffffffffff',
    '0000000080000000',
  ];
  for (const eol of ['\n', '\r\n']) {
    const text = joined(hashed, eol, false);
    const want = reference('hashed-urls', text);
    t.ok(!('error' in want), 'the hashed corpus compiles');
    t.same(streamed('hashed-urls', text), want, `hashed ${JSON.stringify(eol)}`);
  }
});

t.test('refusals: the same code and message', async (t) => {
  const cases: Array<[UrlListKind, string]> = [
    ['domains', ''],
    ['domains', '# only comments\n\n'],
    ['domains', 'a b c\n%%%\n!!!x y\nok.test\n'],
    ['urls', 'a b\nc d\n'],
    ['hashed-urls', 'zz\nyy\nabcdabcd\n'],
    ['hashed-urls', '\ufeff'],
  ];
  for (const [kind, text] of cases) {
    const want = reference(kind, text);
    t.ok('error' in want, `${kind} ${JSON.stringify(text)} is refused`);
    t.same(streamed(kind, text), want);
  }
  t.throws(() => scanUrlList('md5' as UrlListKind, 'x', 'l', new Recorder()), { code: 'ERR_LIST_INVALID' });
});

t.test('fuzz: random lists from an alphabet of the edge bytes give the reference result', async (t) => {
  const piece = fc.oneof(
    fc.constantFrom('a', 'Z', '0', '1', '9', 'x', 'f', '.', '..', '-', '_', '\n', '\r\n', '\r', ' ', '\t', '#', '!', '[', '*.', '||', '^', '%', '/', ':', '@', 'ü', '\ufeff', 'xn--', '0x', '0.0.0.0 ', 'test', 'localhost'),
    fc.string({ maxLength: 6 }),
  );
  for (const kind of ['domains', 'urls', 'hashed-urls'] as const) {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), (parts) => {
        const text = `good.test\n${'ab'.repeat(16)}\n${parts.join('')}`;
        const a = streamed(kind, text);
        const b = reference(kind, text);
        return JSON.stringify(a) === JSON.stringify(b);
      }),
      { numRuns: 1500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => JSON.stringify(streamed(kind, bytes)) === JSON.stringify(reference(kind, bytes))),
      { numRuns: 500 },
    );
  }
  t.pass('1,500 texts and 500 byte strings per kind agree');
});

t.test('the compiled bundle: bytes or string alike, and equal to one built from the reference entries', async (t) => {
  const text = joined(DOMAIN_LINES, '\r\n');
  const hashedText = `${'ab'.repeat(32)}\n${'cd'.repeat(4)}\n${'ef'.repeat(6)}\n`;
  const input = (domains: string | Uint8Array) => ({
    lists: [
      { id: 'd', category: 'adult', kind: 'domains', text: domains },
      { id: 'h', category: 'csam', kind: 'hashed-urls', text: hashedText },
      { id: 'u', category: 'malware', kind: 'urls', text: 'http://a.test/x\nhttp://b.test/\n' },
    ],
    allow: ['ok.test'],
  });
  const fromString = encodeBundle(compilePolicy(input(text)));
  const fromBytes = encodeBundle(compilePolicy(input(Buffer.from(text))));
  t.ok(Buffer.from(fromString).equals(Buffer.from(fromBytes)), 'same bundle bytes from a string and from bytes');

  // The block store as the old compile built it: the reference parser's entries, list by list.
  const parts = compileParts(input(Buffer.from(text)));
  const builder = new HashStoreBuilder();
  ['domains', 'hashed-urls', 'urls'].forEach((kind, i) => {
    const r = reference(kind as UrlListKind, input(text).lists[i]!.text);
    if ('error' in r) throw new Error(r.error);
    builder.beginList(i);
    for (const [h0, h1, len] of r.entries) builder.add(h0, h1, len);
    builder.endList();
  });
  const want = builder.build(3).arrays;
  for (const k of ['hi', 'lo', 'list', 'shortHi', 'shortLo', 'shortLen', 'shortList'] as const) {
    t.same([...parts.block[k]], [...want[k]], `block.${k}`);
  }
  t.same(parts.meta.lists.map((l) => JSON.stringify(l.report)), ['domains', 'hashed-urls', 'urls'].map((kind, i) => {
    const r = reference(kind as UrlListKind, input(text).lists[i]!.text);
    return 'error' in r ? r.error : r.report;
  }), 'the reports in META');
});

t.test('a refused list leaves the builder usable for the next (every refusal reported)', async (t) => {
  t.throws(
    () => compilePolicy({ lists: [{ id: 'bad1', category: 'adult', kind: 'domains', text: '%%%\n' }, { id: 'good', category: 'adult', kind: 'domains', text: 'a.test\n' }, { id: 'bad2', category: 'adult', kind: 'urls', text: 'a b\n' }] }),
    { code: 'ERR_LIST_INVALID', message: /2 lists refused/ },
  );
});
