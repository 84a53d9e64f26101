/**
 * The digest of a compile input (policy/compile-digest.ts), which lets serve skip a compile whose
 * input is that of the policy in force: equal for equal inputs however they were built (a list as
 * a string or as its bytes, object keys in any order), different when anything compile reads differs.
 */
import t from 'tap';
import { compileInputDigest, digestOf, digestSection, DIGEST_SECTION } from '../../policy/compile-digest.js';
import { decodeBundleSections, encodeBundle } from '../../policy/bundle.js';
import { compilePolicy, type CompileInput } from '../../policy/policy.js';

const base: CompileInput = {
  lists: [
    { id: 'a', category: 'adult', kind: 'domains', text: 'a.test\n', mode: 'enforce', overridable: true },
    { id: 'h', category: 'csam', kind: 'hashed-urls', text: Buffer.from(`${'ab'.repeat(32)}\n`) },
  ],
  allow: ['ok.test'],
  profiles: [{ name: 'staff', clients: ['10.0.0.0/8'], lists: ['a'], safeSearch: true }],
  safeSearch: false,
  intercept: { enabled: false, include: [], exclude: [] },
  images: { pdqDistance: 31, pdqMinQuality: 50, dihedral: true },
};

t.test('equal inputs, however built, give one digest', async (t) => {
  const d = compileInputDigest(base);
  t.match(d, /^[0-9a-f]{64}$/);
  const asBytes: CompileInput = { ...base, lists: base.lists.map((l) => ({ ...l, text: Buffer.from(l.text as string | Uint8Array) })) };
  t.equal(compileInputDigest(asBytes), d, 'a list as bytes or as a string');
  const reordered: CompileInput = { images: base.images, intercept: base.intercept, safeSearch: false, profiles: base.profiles, allow: base.allow, lists: base.lists.map((l) => ({ text: l.text, kind: l.kind, category: l.category, id: l.id, ...(l.mode ? { mode: l.mode } : {}), ...(l.overridable !== undefined ? { overridable: l.overridable } : {}) })) };
  t.equal(compileInputDigest(reordered), d, 'object keys in another order');
});

t.test('anything compile reads changes the digest', async (t) => {
  const d = compileInputDigest(base);
  const variants: Array<[string, CompileInput]> = [
    ['a list text', { ...base, lists: [{ ...base.lists[0]!, text: 'a.test\nb.test\n' }, base.lists[1]!] }],
    ['one byte of the hashed list', { ...base, lists: [base.lists[0]!, { ...base.lists[1]!, text: Buffer.from(`${'ab'.repeat(31)}ac\n`) }] }],
    ['a list id', { ...base, lists: [{ ...base.lists[0]!, id: 'b' }, base.lists[1]!] }],
    ['a category', { ...base, lists: [{ ...base.lists[0]!, category: 'malware' }, base.lists[1]!] }],
    ['a kind', { ...base, lists: [{ ...base.lists[0]!, kind: 'urls' }, base.lists[1]!] }],
    ['a mode', { ...base, lists: [{ ...base.lists[0]!, mode: 'monitor' }, base.lists[1]!] }],
    ['overridable', { ...base, lists: [{ ...base.lists[0]!, overridable: false }, base.lists[1]!] }],
    ['the list order', { ...base, lists: [base.lists[1]!, base.lists[0]!] }],
    ['the allowlist', { ...base, allow: [] }],
    ['a profile', { ...base, profiles: [{ ...base.profiles![0]!, safeSearch: false }] }],
    ['safeSearch', { ...base, safeSearch: true }],
    ['intercept', { ...base, intercept: { enabled: true, include: [], exclude: [] } }],
    ['an image option', { ...base, images: { ...base.images, pdqDistance: 30 } }],
    ['the cache size', { ...base, cacheSize: 1024 }],
  ];
  const seen = new Set([d]);
  for (const [what, input] of variants) {
    const v = compileInputDigest(input);
    t.not(v, d, what);
    seen.add(v);
  }
  t.equal(seen.size, variants.length + 1, 'every variant has its own digest');
});

t.test('the digest travels in a bundle section and leaves the policy version alone', async (t) => {
  const policy = compilePolicy(base);
  const d = compileInputDigest(base);
  const plain = encodeBundle(policy);
  const withDigest = encodeBundle(policy, [digestSection(d)]);
  const a = decodeBundleSections(plain);
  const b = decodeBundleSections(withDigest);
  t.equal(digestOf(a.sections), null, 'a bundle without the section has no digest');
  t.equal(digestOf(b.sections), d);
  t.equal(b.policy.version, policy.version, 'the version is that of the policy sections alone');
  t.equal(digestOf(new Map([[DIGEST_SECTION, new Uint8Array(31)]])), null, 'a short section is no digest');
});
