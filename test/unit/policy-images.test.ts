/**
 * Image hash lists inside the policy: compile (reports, options), `decideImage` by each kind, PDQ
 * near matches at and past the distance bound, profile restriction, monitor mode, allowlists not
 * applying, and the bundle round trip with image sections (and refusal of inconsistent ones).
 * Hashes are of made-up bytes or random; no image content.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { decodeBundle, encodeBundle, readBundleSections } from '../../policy/bundle.js';
import { SafespotError } from '../../policy/errors.js';
import { compilePolicy, PolicyHolder, type CompileInput } from '../../policy/policy.js';

const digest = (alg: 'md5' | 'sha1' | 'sha256', what: string): string => createHash(alg).update(what).digest('hex');
const exact = (what: string) => ({ md5: digest('md5', what), sha1: digest('sha1', what), sha256: digest('sha256', what) });

/** A deterministic pseudo-random PDQ hash (64 hex). */
const pdqOf = (seed: string): string => digest('sha256', `pdq:${seed}`);

/** Flip the first k bits (distinct) of a 64-hex hash, spread over the whole hash. */
function flip(hex: string, k: number): string {
  const nibbles = hex.split('').map((c) => parseInt(c, 16));
  for (let i = 0; i < k; i++) {
    const bit = (i * 37) % 256; // 37 is odd: i -> bit is a bijection on 0..255
    nibbles[bit >> 2]! ^= 1 << (bit & 3);
  }
  return nibbles.map((n) => n.toString(16)).join('');
}

const PHOTO = pdqOf('photo');
const MONITORED = pdqOf('monitored');
const INPUT: CompileInput = {
  lists: [
    { id: 'urls', category: 'adult', kind: 'domains', text: 'adult.test\n' },
    { id: 'hot-md5', category: 'csam', kind: 'md5', text: `# made-up\n${exact('a').md5}\nnot-hex\n${exact('shared').md5}\n` },
    { id: 'hot-sha1', category: 'csam', kind: 'sha1', text: new TextEncoder().encode(`${exact('b').sha1}  file.jpg\n`) },
    { id: 'hot-sha256', category: 'csam', kind: 'sha256', text: `${exact('c').sha256.toUpperCase()}\r\n` },
    { id: 'hot-pdq', category: 'csam', kind: 'pdq', text: `${PHOTO},100,photo.jpg\n${pdqOf('flat')},10\n` },
    { id: 'adult-img', category: 'adult', kind: 'md5', overridable: true, text: `${exact('d').md5}\n${exact('shared').md5}\n` },
    { id: 'watch-pdq', category: 'adult', kind: 'pdq', mode: 'monitor', text: `${MONITORED}\n` },
  ],
  allow: ['adult.test', 'images.test'],
  profiles: [{ name: 'staff', clients: ['10.1.0.0/16'], lists: ['urls', 'adult-img'] }],
};

const policy = compilePolicy(INPUT);

t.test('compile reports image lists with URL lists', async (t) => {
  t.same(
    policy.lists.map((l) => [l.id, l.kind, l.entries, l.mode, l.overridable]),
    [
      ['urls', 'domains', 1, 'enforce', true],
      ['hot-md5', 'md5', 2, 'enforce', false],
      ['hot-sha1', 'sha1', 1, 'enforce', false],
      ['hot-sha256', 'sha256', 1, 'enforce', false],
      ['hot-pdq', 'pdq', 1, 'enforce', false],
      ['adult-img', 'md5', 2, 'enforce', false],
      ['watch-pdq', 'pdq', 1, 'monitor', false],
    ],
    'image lists are in Policy.lists (metrics), never overridable',
  );
  const md5 = policy.parts.meta.images!.find((l) => l.id === 'hot-md5')!;
  t.equal(md5.report.malformed, 1);
  t.same(md5.report.malformedLines, [3], 'malformed lines by number');
  t.equal(policy.parts.meta.images!.find((l) => l.id === 'hot-pdq')!.report.lowQuality, 1, 'quality 10 < 50 dropped');
  t.notOk(JSON.stringify(policy.parts.meta).includes('not-hex'), 'no list content in the metadata');
  t.ok(policy.images, 'the policy carries an ImageMatcher');
  t.same(policy.images!.options, { pdqDistance: 31, pdqMinQuality: 50, dihedral: true }, 'defaults: dihedral variants on');
  const urlOnly = compilePolicy({ lists: [INPUT.lists[0]!] });
  t.equal(urlOnly.images, null, 'no image lists, no matcher');
  t.equal(urlOnly.decideImage({ ...exact('a') }).action, 'allow');
});

t.test('decideImage by each kind', async (t) => {
  const none = { ...exact('unlisted'), pdq: { hash: pdqOf('unlisted'), quality: 100 } };
  const table: Array<[string, Parameters<typeof policy.decideImage>[0], Record<string, unknown>]> = [
    ['md5', { ...exact('a') }, { action: 'block', category: 'csam', list: 'hot-md5', rule: 'md5', match: 'md5' }],
    ['sha1', { ...exact('b') }, { action: 'block', category: 'csam', list: 'hot-sha1', rule: 'sha1', match: 'sha1' }],
    ['sha256 (listed upper case)', { ...exact('c') }, { action: 'block', list: 'hot-sha256', rule: 'sha256', match: 'sha256' }],
    ['pdq exact', { ...none, pdq: { hash: PHOTO, quality: 90 } }, { action: 'block', list: 'hot-pdq', rule: 'pdq', match: 'pdq', distance: 0 }],
    ['overridable adult image list is not allowlisted', { ...exact('d') }, { action: 'block', category: 'adult', list: 'adult-img' }],
    ['shared digest goes to the csam list first', { ...exact('shared') }, { action: 'block', list: 'hot-md5' }],
    ['unlisted', none, { action: 'allow', list: null, rule: 'none' }],
    ['dropped low-quality list entry', { ...none, pdq: { hash: pdqOf('flat'), quality: 100 } }, { action: 'allow' }],
  ];
  for (const [name, h, want] of table) t.match(policy.decideImage(h), want, name);
  const d = policy.decideImage({ ...none, pdq: { hash: PHOTO, quality: 90 } });
  t.match(d.reason, /"hot-pdq" \(csam, pdq match at distance 0\)/);
  t.notOk(d.reason.includes(PHOTO), 'the reason holds no hash');
});

t.test('PDQ near matches: within and past the distance', async (t) => {
  const base = exact('near');
  for (const k of [1, 8, 16, 31]) {
    const d = policy.decideImage({ ...base, pdq: { hash: flip(PHOTO, k), quality: 80 } });
    t.match(d, { action: 'block', list: 'hot-pdq', match: 'pdq', distance: k }, `${k} bits flipped`);
  }
  for (const k of [32, 40, 128]) {
    t.equal(policy.decideImage({ ...base, pdq: { hash: flip(PHOTO, k), quality: 80 } }).action, 'allow', `${k} bits flipped`);
  }
  t.equal(policy.decideImage({ ...base, pdq: { hash: PHOTO, quality: 49 } }).action, 'allow', 'a scanned image of quality < 50 is not PDQ-matched');
  t.equal(policy.decideImage({ ...base, pdq: { hash: 'zz', quality: 100 } }).action, 'allow', 'a bad hash is no match, no throw');
  const tight = compilePolicy({ ...INPUT, images: { pdqDistance: 8 } });
  t.equal(tight.decideImage({ ...base, pdq: { hash: flip(PHOTO, 8), quality: 80 } }).action, 'block', 'pdqDistance 8: 8 bits');
  t.equal(tight.decideImage({ ...base, pdq: { hash: flip(PHOTO, 9), quality: 80 } }).action, 'allow', 'pdqDistance 8: 9 bits');
  const strict = compilePolicy({ ...INPUT, images: { pdqMinQuality: 5 } });
  t.equal(strict.decideImage({ ...base, pdq: { hash: pdqOf('flat'), quality: 100 } }).action, 'block', 'pdqMinQuality 5 keeps the quality-10 entry');
});

t.test('dihedral variants match by default (a mirrored or rotated listed image), off only when asked', async (t) => {
  const variants = [pdqOf('v0'), pdqOf('v1'), PHOTO, pdqOf('v3'), pdqOf('v4'), pdqOf('v5'), pdqOf('v6'), pdqOf('v7')];
  const h = { ...exact('rotated'), pdq: { hash: pdqOf('v0'), quality: 100, dihedral: variants } };
  t.match(policy.decideImage(h), { action: 'block', list: 'hot-pdq' }, 'dihedral on by default');
  t.equal(compilePolicy({ ...INPUT, images: { dihedral: false } }).decideImage(h).action, 'allow', 'dihedral: false turns it off');
});

t.test('profiles restrict the image lists but never the csam ones; monitor lists pass and are reported', async (t) => {
  const staff = '10.1.2.3';
  t.equal(policy.profileFor(staff).name, 'staff');
  t.match(policy.decideImage({ ...exact('a') }, staff), { action: 'block', category: 'csam', list: 'hot-md5' }, 'hot-md5 (csam) applies to staff though its lists leave it out');
  t.match(policy.decideImage({ ...exact('d') }, staff), { action: 'block', list: 'adult-img' }, 'adult-img applies');
  t.match(policy.decideImage({ ...exact('shared') }, staff), { action: 'block' }, 'a shared digest is blocked');
  t.match(policy.decideImage({ ...exact('x'), pdq: { hash: PHOTO, quality: 100 } }, staff), { action: 'block', list: 'hot-pdq' }, 'hot-pdq (csam) applies');
  t.equal(policy.decideImage({ ...exact('x'), pdq: { hash: flip(MONITORED, 3), quality: 100 } }, staff).action, 'allow', 'watch-pdq (adult), left out by the profile, does not apply');
  const mon = policy.decideImage({ ...exact('x'), pdq: { hash: flip(MONITORED, 3), quality: 100 } });
  t.match(mon, { action: 'monitor', category: 'adult', list: 'watch-pdq', match: 'pdq', distance: 3 });
  t.match(mon.reason, /monitor-mode/);
  const both = compilePolicy({
    lists: [
      { id: 'mon', category: 'adult', kind: 'md5', mode: 'monitor', text: `${exact('z').md5}\n` },
      { id: 'enf', category: 'malware', kind: 'pdq', text: `${PHOTO}\n` },
    ],
  });
  t.match(both.decideImage({ ...exact('z'), pdq: { hash: flip(PHOTO, 20), quality: 100 } }), { action: 'block', list: 'enf' }, 'an enforce match wins over a monitor match');
  t.match(new PolicyHolder().decideImage({ ...exact('z') }), { action: 'block', rule: 'no-policy' }, 'no policy: fail closed');
});

t.test('URL decisions are unaffected by image lists', async (t) => {
  const urlOnly = compilePolicy({ lists: [INPUT.lists[0]!], allow: INPUT.allow });
  t.same(policy.decideUrl('http://adult.test/x'), urlOnly.decideUrl('http://adult.test/x'));
  t.same(policy.decideUrl('http://adult.test/x'), { action: 'allow', category: 'adult', list: 'urls', rule: 'allowlist', reason: policy.decideUrl('http://adult.test/x').reason });
  t.equal(policy.decideHost('blocked-nothing.test').action, 'allow');
});

t.test('bad image lists are refused with the list id and no content', async (t) => {
  const garbage = 'secret-a\nsecret-b\n' + exact('q').md5 + '\n';
  try {
    compilePolicy({ lists: [{ id: 'broken', category: 'csam', kind: 'md5', text: garbage }] });
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof SafespotError && err.code === 'ERR_LIST_INVALID');
    t.match((err as Error).message, /list "broken": md5 list: 2 of 3 lines are malformed/);
    t.notOk(JSON.stringify([(err as Error).message, (err as SafespotError).details]).includes('secret'));
  }
  t.throws(() => compilePolicy({ lists: [{ id: 'none', category: 'csam', kind: 'pdq' }] }), { code: 'ERR_CONFIG_INVALID' }, 'no text');
  t.throws(() => compilePolicy({ lists: [{ id: 'o', category: 'csam', kind: 'pdq', text: `${PHOTO}\n` }], images: { pdqDistance: -1 } }), { code: 'ERR_CONFIG_INVALID' });
});

t.test('bundle round trip carries the image lists', async (t) => {
  const bytes = encodeBundle(policy);
  const { sections } = readBundleSections(bytes);
  for (const tag of ['IMET', 'IMD5', 'ISH1', 'IS32', 'IPDQ']) t.ok(sections.has(tag), `section ${tag}`);
  const loaded = decodeBundle(bytes);
  t.equal(loaded.version, policy.version);
  t.same(loaded.lists, policy.lists);
  t.same(loaded.images!.options, policy.images!.options);
  const probes = [
    { ...exact('a') },
    { ...exact('b') },
    { ...exact('c') },
    { ...exact('shared') },
    { ...exact('x'), pdq: { hash: flip(PHOTO, 30), quality: 70 } },
    { ...exact('x'), pdq: { hash: flip(MONITORED, 2), quality: 70 } },
    { ...exact('x'), pdq: { hash: pdqOf('nothing'), quality: 70 } },
  ];
  for (const client of [undefined, '10.1.0.9']) {
    for (const h of probes) t.same(loaded.decideImage(h, client), policy.decideImage(h, client), `${h.md5.slice(0, 6)} ${client}`);
  }
  const urlOnly = compilePolicy({ lists: [INPUT.lists[0]!] });
  t.not(urlOnly.version, policy.version, 'image lists change the version');
  t.notOk(readBundleSections(encodeBundle(urlOnly)).sections.has('IMET'), 'a URL-only bundle has no image sections');
  const changed = compilePolicy({ ...INPUT, lists: INPUT.lists.map((l) => (l.id === 'hot-pdq' ? { ...l, text: `${pdqOf('other')}\n` } : l)) });
  t.not(changed.version, policy.version, 'a changed image list changes the version');
});

t.test('inconsistent or corrupt image sections are refused', async (t) => {
  const refused = (bytes: Uint8Array, why: RegExp, name: string) =>
    t.throws(() => decodeBundle(bytes), { code: 'ERR_BUNDLE_CORRUPT', message: why }, name);
  const meta = policy.parts.meta;
  const renamed = { ...meta, images: meta.images!.map((l, i) => (i === 0 ? { ...l, id: 'someone-else' } : l)) };
  refused(encodeBundle({ ...policy.parts, meta: renamed }), /disagree/, 'META and IMET disagree');
  refused(encodeBundle({ ...policy.parts, images: null }), /section IMET is missing/, 'image sections missing');
  const fewer = { ...meta, images: meta.images!.slice(1) };
  refused(encodeBundle({ ...policy.parts, meta: fewer }), /disagree/, 'a list missing from META');
  // A section of the right tags but garbage content, with a valid checksum.
  const { sections } = readBundleSections(encodeBundle(policy));
  const extra = [...sections].filter(([tag]) => tag.startsWith('I')).map(([tag, b]) => ({ tag, bytes: tag === 'IPDQ' ? b.subarray(0, b.length - 2) : b }));
  refused(encodeBundle({ ...policy.parts, images: null }, extra), /img.pdq has the wrong length/, 'a truncated IPDQ section');
  const bad = extra.map((s) => (s.tag === 'IMD5' ? { tag: s.tag, bytes: Uint8Array.from([...s.bytes.subarray(0, s.bytes.length - 2), 0xff, 0xff]) } : s));
  refused(encodeBundle({ ...policy.parts, images: null }, bad), /names list 65535/, 'a digest naming a list that does not exist');
  const bytes = encodeBundle(policy);
  const at = bytes.length - 60; // inside the last (image) section
  const flipped = bytes.slice();
  flipped[at]! ^= 1;
  refused(flipped, /checksum/, 'a flipped byte');
});
