/** The policy bundle: round trip, zero-copy views, extra sections, and refusal of every corruption. */
import t from 'tap';
import { decodeBundle, encodeBundle, readBundleSections } from '../../policy/bundle.js';
import { SafespotError } from '../../policy/errors.js';
import { compilePolicy } from '../../policy/policy.js';
import { sha256Hex } from '../../policy/sha256.js';

const policy = compilePolicy({
  lists: [
    { id: 'h', category: 'csam', kind: 'hashed-urls', text: `${sha256Hex('made-up.test/p')}\n${sha256Hex('short.test/').slice(0, 10)}\n` },
    { id: 'd', category: 'adult', kind: 'domains', mode: 'monitor', text: 'adult.test\n' },
  ],
  allow: ['ok.adult.test'],
  profiles: [{ name: 'staff', clients: ['10.0.0.0/8'], lists: ['h'] }],
});

const probes: Array<[string, string | undefined]> = [
  ['http://made-up.test/p', undefined],
  ['http://short.test/x', undefined],
  ['http://adult.test/', undefined],
  ['http://ok.adult.test/', undefined],
  ['http://adult.test/', '10.1.1.1'],
  ['http://other.test/', undefined],
];

t.test('round trip keeps version, lists, profiles and every decision', async (t) => {
  const bytes = encodeBundle(policy);
  t.same(encodeBundle(policy), bytes, 'deterministic');
  const loaded = decodeBundle(bytes);
  t.equal(loaded.version, policy.version);
  t.same(loaded.lists, policy.lists);
  for (const [url, client] of probes) t.same(loaded.decideUrl(url, client), policy.decideUrl(url, client), `${url} ${client}`);
  t.equal(loaded.profileFor('10.2.3.4').name, 'staff');
  t.equal(loaded.parts.block.hi.buffer, bytes.buffer, 'store arrays are views onto the bundle bytes');
});

t.test('a misaligned copy still loads', async (t) => {
  const bytes = encodeBundle(policy);
  const host = new Uint8Array(bytes.length + 3);
  host.set(bytes, 3);
  const loaded = decodeBundle(host.subarray(3));
  t.equal(loaded.decideUrl('http://made-up.test/p').action, 'block');
});

t.test('extra sections travel with the bundle', async (t) => {
  const img = new Uint8Array([1, 2, 3, 4, 5]);
  const bytes = encodeBundle(policy, [{ tag: 'IMD5', bytes: img }]);
  const { sections, version } = readBundleSections(bytes);
  t.same([...sections.get('IMD5')!], [1, 2, 3, 4, 5]);
  t.equal(version, policy.version);
  t.equal(decodeBundle(bytes).decideUrl('http://made-up.test/p').action, 'block');
  t.throws(() => encodeBundle(policy, [{ tag: 'META', bytes: img }]), /twice/);
});

const refused = (fn: () => unknown): boolean => {
  try {
    fn();
    return false;
  } catch (err) {
    return err instanceof SafespotError && err.code === 'ERR_BUNDLE_CORRUPT';
  }
};

t.test('every single-byte flip and every truncation is refused', async (t) => {
  const small = compilePolicy({ lists: [{ id: 'd', category: 'adult', kind: 'domains', text: 'a.test\n' }] });
  const bytes = encodeBundle(small);
  let flips = 0;
  for (let i = 0; i < bytes.length; i++) {
    const copy = bytes.slice();
    copy[i] = copy[i]! ^ 0x01;
    if (refused(() => decodeBundle(copy))) flips++;
    else t.fail(`flip at byte ${i} was accepted`);
  }
  t.equal(flips, bytes.length, `${bytes.length} flips refused`);
  let cuts = 0;
  for (let n = 0; n < bytes.length; n++) {
    if (refused(() => decodeBundle(bytes.subarray(0, n)))) cuts++;
    else t.fail(`truncation to ${n} bytes was accepted`);
  }
  t.equal(cuts, bytes.length, `${bytes.length} truncations refused`);
  const longer = new Uint8Array(bytes.length + 8);
  longer.set(bytes);
  t.ok(refused(() => decodeBundle(longer)), 'trailing bytes refused');
});

t.test('refusals say why', async (t) => {
  const bytes = encodeBundle(policy);
  t.throws(() => decodeBundle(new TextEncoder().encode('hello world, this is not a bundle at all!!! '.repeat(3))), { code: 'ERR_BUNDLE_CORRUPT', message: /not a safespot policy bundle/ });
  t.throws(() => decodeBundle(bytes.subarray(0, bytes.length - 1)), { message: /truncated/ });
  const flipped = bytes.slice();
  flipped[100] = flipped[100]! ^ 0xff;
  t.throws(() => decodeBundle(flipped), { message: /checksum/ });
  const v2 = bytes.slice();
  v2[8] = 2;
  t.throws(() => decodeBundle(v2), { message: /format version 2/ });
});
