import t from 'tap';
import { createHash } from 'node:crypto';
import { SafespotError } from '../../policy/errors.js';
import { parseImageList } from '../../policy/image-list-parse.js';
import { ImageMatcher, type ImageListInput, type ImageMatcherOptions } from '../../policy/image-lists.js';
import { pdqWordsToHex, pdqHexToWords } from '../../policy/pdq.js';

const OPTS: ImageMatcherOptions = { pdqDistance: 31, pdqMinQuality: 50, dihedral: false };
const digest = (alg: string, s: string) => createHash(alg).update(s).digest('hex');
/** Synthetic PDQ hashes: the SHA-256 of a made-up name is 64 hex digits. */
const fakePdq = (s: string) => digest('sha256', `pdq:${s}`);
/** A copy of a PDQ hex with `k` bits flipped, spread over the hash. */
function flip(hex: string, k: number): string {
  const w = pdqHexToWords(hex);
  for (let i = 0; i < k; i++) {
    const bit = (i * 29) % 256;
    w[bit >> 5] = (w[bit >> 5]! ^ (1 << (bit & 31))) >>> 0;
  }
  return pdqWordsToHex(w);
}

t.test('exact list parsing: case, comments, blanks, CRLF, BOM, sum-tool lines, duplicates', async (t) => {
  const a = digest('md5', 'a.test');
  const b = digest('md5', 'b.test');
  const text = `\ufeff# synthetic md5 list\r\n${a.toUpperCase()}\r\n\r\n${b}  some-file.jpg\r\n${a} # again\r\n`;
  const l = parseImageList(text, 'md5');
  t.equal(l.count, 2);
  t.same(l.report, { lines: 5, entries: 2, duplicates: 1, malformed: 0, malformedLines: [], lowQuality: 0 });
  t.equal(Buffer.from(l.digests!).toString('hex'), [a, b].sort().join(''));
});

t.test('table: each kind accepts its width and rejects others', async (t) => {
  const cases: Array<[kind: 'md5' | 'sha1' | 'sha256' | 'pdq', line: string, ok: boolean]> = [
    ['md5', digest('md5', 'x'), true],
    ['md5', digest('sha1', 'x'), false],
    ['sha1', digest('sha1', 'x'), true],
    ['sha1', digest('md5', 'x'), false],
    ['sha256', digest('sha256', 'x'), true],
    ['sha256', digest('sha256', 'x').slice(1), false],
    ['sha256', `${digest('sha256', 'x').slice(1)}g`, false],
    ['pdq', fakePdq('x'), true],
    ['pdq', `${fakePdq('x')},100`, true],
    ['pdq', `${fakePdq('x')},100,file.jpg`, true],
    ['pdq', `${fakePdq('x')},101`, false],
    ['pdq', `${fakePdq('x')},high`, false],
    ['pdq', fakePdq('x').slice(2), false],
  ];
  for (const [kind, line, ok] of cases) {
    const good = kind === 'pdq' ? fakePdq('good') : digest(kind, 'good');
    // Two good lines so one bad line is a minority and only counted.
    const l = parseImageList(`${good}\n${good.replace(/^./, 'f')}\n${line}\n`, kind);
    t.equal(l.report.malformed, ok ? 0 : 1, `${kind} ${line.length} chars ${ok ? 'ok' : 'malformed'}`);
    if (!ok) t.same(l.report.malformedLines, [3]);
  }
});

t.test('pdq quality filter drops and counts low-quality entries', async (t) => {
  const text = [`${fakePdq('a')},100`, `${fakePdq('b')},49`, `${fakePdq('c')},50`, fakePdq('d')].join('\n');
  const l = parseImageList(text, 'pdq', { pdqMinQuality: 50 });
  t.equal(l.count, 3);
  t.equal(l.report.lowQuality, 1);
  const strict = parseImageList(text, 'pdq', { pdqMinQuality: 80 });
  t.equal(strict.count, 2, 'no quality given means kept');
});

t.test('mostly-garbage and empty lists are refused with line numbers only', async (t) => {
  const secret = 'http://secret.test/should-not-leak';
  const text = `${digest('sha1', 'ok')}\n${secret}\nnot a hash\n`;
  try {
    parseImageList(text, 'sha1');
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof SafespotError);
    t.equal((err as SafespotError).code, 'ERR_LIST_INVALID');
    const all = `${(err as Error).message} ${(err as SafespotError).details.join(' ')}`;
    t.match(all, /2, 3/);
    t.notMatch(all, /secret/, 'no line content in the error');
  }
  t.throws(() => parseImageList('# only comments\n\n', 'md5'), { code: 'ERR_LIST_INVALID' });
  t.throws(() => parseImageList('', 'pdq'), { code: 'ERR_LIST_INVALID' });
});

function lists(): ImageListInput[] {
  const md5 = parseImageList(`${digest('md5', 'img-1')}\n`, 'md5');
  const sha1 = parseImageList(`${digest('sha1', 'img-2')}\n`, 'sha1');
  const sha256 = parseImageList(`${digest('sha256', 'img-3')}\n${digest('sha256', 'shared')}\n`, 'sha256');
  const sha256mon = parseImageList(`${digest('sha256', 'shared')}\n${digest('sha256', 'img-4')}\n`, 'sha256');
  const pdq = parseImageList(`${fakePdq('p1')},100\n${fakePdq('p2')},90\n`, 'pdq');
  const pdqMon = parseImageList(`${fakePdq('p3')}\n`, 'pdq');
  return [
    { id: 'mon-sha256', category: 'adult', mode: 'monitor', list: sha256mon },
    { id: 'hot-md5', category: 'csam', mode: 'enforce', list: md5 },
    { id: 'hot-sha1', category: 'csam', mode: 'enforce', list: sha1 },
    { id: 'hot-sha256', category: 'csam', mode: 'enforce', list: sha256 },
    { id: 'hot-pdq', category: 'csam', mode: 'enforce', list: pdq },
    { id: 'mon-pdq', category: 'adult', mode: 'monitor', list: pdqMon },
  ];
}

const scanned = (name: string, pdq?: { hash: string; quality: number; dihedral?: string[] }) => ({
  md5: digest('md5', name),
  sha1: digest('sha1', name),
  sha256: digest('sha256', name),
  ...(pdq ? { pdq } : {}),
});

t.test('matcher: table of images and expected matches, also after a section round trip', async (t) => {
  const compiled = ImageMatcher.compile(lists(), OPTS);
  const reloaded = ImageMatcher.fromSections(compiled.toSections());
  // A digest on two lists is kept once per list (a profile may allow only one of them).
  t.same(reloaded.sizes, { md5: 1, sha1: 1, sha256: 4, pdq: 3 });
  const p1 = fakePdq('p1');
  const cases: Array<[string, ReturnType<typeof scanned>, object | null]> = [
    ['md5', scanned('img-1'), { list: 'hot-md5', category: 'csam', match: 'md5', mode: 'enforce' }],
    ['sha1', scanned('img-2'), { list: 'hot-sha1', category: 'csam', match: 'sha1', mode: 'enforce' }],
    ['sha256', scanned('img-3'), { list: 'hot-sha256', category: 'csam', match: 'sha256', mode: 'enforce' }],
    ['shared entry goes to the enforce list', scanned('shared'), { list: 'hot-sha256', category: 'csam', match: 'sha256', mode: 'enforce' }],
    ['monitor-only', scanned('img-4'), { list: 'mon-sha256', category: 'adult', match: 'sha256', mode: 'monitor' }],
    ['pdq exact', scanned('new', { hash: p1, quality: 100 }), { list: 'hot-pdq', category: 'csam', match: 'pdq', distance: 0, mode: 'enforce' }],
    ['pdq at 31', scanned('new', { hash: flip(p1, 31), quality: 100 }), { list: 'hot-pdq', category: 'csam', match: 'pdq', distance: 31, mode: 'enforce' }],
    ['pdq at 32', scanned('new', { hash: flip(p1, 32), quality: 100 }), null],
    ['pdq low quality', scanned('new', { hash: p1, quality: 49 }), null],
    ['monitor pdq', scanned('new', { hash: flip(fakePdq('p3'), 3), quality: 80 }), { list: 'mon-pdq', category: 'adult', match: 'pdq', distance: 3, mode: 'monitor' }],
    ['enforce pdq beats monitor exact', scanned('img-4', { hash: p1, quality: 100 }), { list: 'hot-pdq', category: 'csam', match: 'pdq', distance: 0, mode: 'enforce' }],
    ['nothing', scanned('unlisted', { hash: fakePdq('unlisted'), quality: 100 }), null],
    ['dihedral ignored when off', scanned('new', { hash: fakePdq('z'), quality: 100, dihedral: [p1] }), null],
  ];
  for (const m of [compiled, reloaded]) {
    for (const [name, h, want] of cases) t.same(m.match(h), want, name);
  }
  const dih = ImageMatcher.compile(lists(), { ...OPTS, dihedral: true });
  t.same(dih.match(scanned('new', { hash: fakePdq('z'), quality: 100, dihedral: [fakePdq('y'), flip(p1, 4)] })), {
    list: 'hot-pdq',
    category: 'csam',
    match: 'pdq',
    distance: 4,
    mode: 'enforce',
  });
  const tight = ImageMatcher.compile(lists(), { ...OPTS, pdqDistance: 10 });
  t.equal(tight.match(scanned('new', { hash: flip(p1, 11), quality: 100 })), null, 'configured distance is honoured');
  t.equal(tight.match(scanned('new', { hash: flip(p1, 10), quality: 100 }))?.distance, 10);
});

t.test('fromSections refuses corrupt sections with ERR_BUNDLE_CORRUPT', async (t) => {
  const sections = ImageMatcher.compile(lists(), OPTS).toSections();
  const mutate = (tag: string, f: (b: Uint8Array) => Uint8Array) => sections.map((s) => (s.tag === tag ? { tag, bytes: f(s.bytes) } : s));
  const bad: Array<[string, Array<{ tag: string; bytes: Uint8Array }>]> = [
    ['missing meta', sections.filter((s) => s.tag !== 'img.meta')],
    ['missing pdq', sections.filter((s) => s.tag !== 'img.pdq')],
    ['meta not JSON', mutate('img.meta', () => new TextEncoder().encode('{nope'))],
    ['truncated table', mutate('img.sha256', (b) => b.subarray(0, b.length - 1))],
    ['list number out of range', mutate('img.md5', (b) => Uint8Array.from([...b.subarray(0, b.length - 2), 0xff, 0xff]))],
  ];
  for (const [name, s] of bad) t.throws(() => ImageMatcher.fromSections(s), { code: 'ERR_BUNDLE_CORRUPT' }, name);
});
