/**
 * audit/merkle.ts against RFC 9162 / RFC 6962: the reference tree heads and proofs published with
 * Certificate Transparency (leaves "", 00, 10, 2021, …), then every inclusion and consistency proof
 * of every tree up to 64 leaves verifies, and any single bit flipped in a proof, a leaf, a root or
 * an index makes it fail. The streaming Frontier gives the same root as the recursive MTH.
 */
import fc from 'fast-check';
import t from 'tap';
import {
  consistencyProof,
  EMPTY_ROOT,
  Frontier,
  inclusionProof,
  leafHash,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../../audit/merkle.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

// The Certificate Transparency reference inputs and their tree heads (sizes 0..8).
const CT_INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_LEAVES = CT_INPUTS.map(leafHash);
// Reference consistency proofs (first, second, proof).
const CT_CONSISTENCY: Array<[number, number, string[]]> = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];

t.test('hashing: 0x00 leaves, 0x01 nodes, the reference tree heads of sizes 0..8', async (t) => {
  t.equal(hex(EMPTY_ROOT), CT_ROOTS[0], 'the empty tree is SHA-256 of nothing');
  t.equal(hex(rootOf([])), CT_ROOTS[0]);
  for (let n = 1; n <= 8; n++) t.equal(hex(rootOf(CT_LEAVES.slice(0, n))), CT_ROOTS[n], `MTH of ${n}`);
  t.not(hex(leafHash(Buffer.alloc(0))), hex(EMPTY_ROOT), 'a leaf is not the empty tree');
  // A node is not a leaf of its concatenation (the second-preimage defence).
  const [a, b] = [CT_LEAVES[0]!, CT_LEAVES[1]!];
  t.not(hex(nodeHash(a, b)), hex(leafHash(Buffer.concat([a, b]))));
});

t.test('the reference inclusion proof of leaf 0 in 8 and the reference consistency proofs', async (t) => {
  const p = inclusionProof(0, CT_LEAVES).map(hex);
  t.same(p, CT_CONSISTENCY[1]![2], 'leaf 0 of 8: its sibling, then the roots of 2..4 and 4..8');
  t.ok(verifyInclusion(0, 8, CT_LEAVES[0]!, p.map(unhex), unhex(CT_ROOTS[8]!)));
  for (const [m, n, proof] of CT_CONSISTENCY) {
    t.same(consistencyProof(m, CT_LEAVES.slice(0, n)).map(hex), proof, `consistency ${m} → ${n}`);
    t.ok(verifyConsistency(m, n, unhex(CT_ROOTS[m]!), unhex(CT_ROOTS[n]!), proof.map(unhex)), `verifies ${m} → ${n}`);
  }
});

const LEAVES = Array.from({ length: 64 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
const ROOTS = Array.from({ length: 65 }, (_, n) => rootOf(LEAVES.slice(0, n)));

function flip(b: Uint8Array, bit: number): Buffer {
  const c = Buffer.from(b);
  c[bit >> 3]! ^= 1 << (bit & 7);
  return c;
}

t.test('every inclusion proof of every tree up to 64 leaves verifies; a wrong index, size, leaf or root does not', async (t) => {
  let checked = 0;
  let bad = 0;
  for (let n = 1; n <= 64; n++) {
    for (let i = 0; i < n; i++) {
      const proof = inclusionProof(i, LEAVES.slice(0, n));
      if (!verifyInclusion(i, n, LEAVES[i]!, proof, ROOTS[n]!)) bad++;
      // The same proof for another leaf, index, size or root.
      if (verifyInclusion(i, n, LEAVES[(i + 1) % 64]!, proof, ROOTS[n]!)) bad++;
      if (n > 1 && verifyInclusion((i + 1) % n, n, LEAVES[i]!, proof, ROOTS[n]!)) bad++;
      // The proof of a smaller tree against the bigger tree's head (size and root go together: a
      // checkpoint signs both, so the root of n under the size n + 1 is no claim anyone makes).
      if (n < 64 && verifyInclusion(i, n + 1, LEAVES[i]!, proof, ROOTS[n + 1]!)) bad++;
      if (verifyInclusion(i, n, LEAVES[i]!, proof, ROOTS[n - 1]!)) bad++;
      if (proof.length > 0 && verifyInclusion(i, n, LEAVES[i]!, proof.slice(0, -1), ROOTS[n]!)) bad++;
      if (verifyInclusion(i, n, LEAVES[i]!, [...proof, LEAVES[0]!], ROOTS[n]!)) bad++;
      checked++;
    }
  }
  t.equal(bad, 0, `${checked} proofs: each verifies, none verifies something else`);
  t.notOk(verifyInclusion(0, 0, LEAVES[0]!, [], EMPTY_ROOT), 'nothing is in the empty tree');
  t.notOk(verifyInclusion(-1, 4, LEAVES[0]!, [], ROOTS[4]!));
  t.throws(() => inclusionProof(4, LEAVES.slice(0, 4)), RangeError);
});

t.test('any single bit flipped in an inclusion proof, the leaf or the root fails (all trees up to 64, sampled bits)', async (t) => {
  let bad = 0;
  let tried = 0;
  for (let n = 2; n <= 64; n++) {
    for (let i = 0; i < n; i += 3) {
      const proof = inclusionProof(i, LEAVES.slice(0, n));
      for (let e = 0; e < proof.length; e++) {
        for (const bit of [0, 7, 100, 255, (i * 31 + e * 17) % 256]) {
          const p = proof.slice();
          p[e] = flip(p[e]!, bit);
          tried++;
          if (verifyInclusion(i, n, LEAVES[i]!, p, ROOTS[n]!)) bad++;
        }
      }
      tried += 2;
      if (verifyInclusion(i, n, flip(LEAVES[i]!, i % 256), proof, ROOTS[n]!)) bad++;
      if (verifyInclusion(i, n, LEAVES[i]!, proof, flip(ROOTS[n]!, n % 256))) bad++;
    }
  }
  t.equal(bad, 0, `${tried} flipped proofs, none verifies`);
});

t.test('every consistency proof between all pairs of sizes up to 64 verifies; every bit flip of a proof hash fails', async (t) => {
  let bad = 0;
  let pairs = 0;
  let flips = 0;
  for (let n = 1; n <= 64; n++) {
    for (let m = 0; m <= n; m++) {
      const proof = consistencyProof(m, LEAVES.slice(0, n));
      pairs++;
      if (!verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, proof)) bad++;
      if (m > 0 && m < n) {
        // The wrong first or second root, or sizes.
        if (verifyConsistency(m, n, ROOTS[m - 1]!, ROOTS[n]!, proof)) bad++;
        if (verifyConsistency(m, n, ROOTS[m]!, ROOTS[n - 1]!, proof)) bad++;
        if (m + 1 < n && verifyConsistency(m + 1, n, ROOTS[m + 1]!, ROOTS[n]!, proof)) bad++;
        for (let e = 0; e < proof.length; e++) {
          for (const bit of [0, 255, (m * 7 + n + e) % 256]) {
            const p = proof.slice();
            p[e] = flip(p[e]!, bit);
            flips++;
            if (verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, p)) bad++;
          }
        }
        if (verifyConsistency(m, n, flip(ROOTS[m]!, 3), ROOTS[n]!, proof)) bad++;
        if (verifyConsistency(m, n, ROOTS[m]!, flip(ROOTS[n]!, 3), proof)) bad++;
        if (verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, proof.slice(1))) bad++;
      }
    }
  }
  t.equal(bad, 0, `${pairs} pairs and ${flips} flipped proofs: the right ones verify, nothing else does`);
  t.notOk(verifyConsistency(4, 3, ROOTS[4]!, ROOTS[3]!, []), 'a tree does not extend a bigger one');
  t.notOk(verifyConsistency(3, 3, ROOTS[3]!, ROOTS[4]!, []), 'equal sizes need equal roots');
  t.notOk(verifyConsistency(3, 5, ROOTS[3]!, ROOTS[5]!, []), 'an empty proof proves nothing between different sizes');
});

t.test('a history that was rewritten, not appended to, has no consistency proof', async (t) => {
  // The same 40 leaves with one of the first 20 changed: no proof from the honest tree of 20 to it.
  const edited = LEAVES.slice(0, 40);
  edited[7] = leafHash(Buffer.from('edited'));
  const root40 = rootOf(edited);
  t.notOk(verifyConsistency(20, 40, ROOTS[20]!, root40, consistencyProof(20, edited)), "the edited tree's own proof");
  t.notOk(verifyConsistency(20, 40, ROOTS[20]!, root40, consistencyProof(20, LEAVES.slice(0, 40))), "the honest tree's proof");
});

t.test('Frontier: the streamed root equals MTH at every size, and survives storage', async (t) => {
  const f = new Frontier();
  t.equal(hex(f.root()), hex(EMPTY_ROOT));
  let bad = 0;
  for (let n = 1; n <= 64; n++) {
    f.push(LEAVES[n - 1]!);
    if (hex(f.root()) !== hex(ROOTS[n]!) || f.size !== n) bad++;
    const back = Frontier.fromBytes(f.size, f.toBytes());
    if (hex(back.root()) !== hex(ROOTS[n]!)) bad++;
  }
  t.equal(bad, 0, 'sizes 1..64');
  // Resumed from a stored frontier and continued: the same as streaming from the start.
  const g = Frontier.fromBytes(37, (() => {
    const h = new Frontier();
    for (const l of LEAVES.slice(0, 37)) h.push(l);
    return h.toBytes();
  })());
  for (const l of LEAVES.slice(37)) g.push(l);
  t.equal(hex(g.root()), hex(ROOTS[64]!));
  t.throws(() => new Frontier(3, [LEAVES[0]!]), RangeError, 'a frontier of 3 has two hashes');
  t.throws(() => Frontier.fromBytes(1, Buffer.alloc(31)), RangeError);
});

t.test('property: random leaves, random sizes, Frontier = MTH and proofs verify', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 200 }), fc.nat(), fc.nat(), (data, a, b) => {
      const leaves = data.map(leafHash);
      const n = leaves.length;
      const f = new Frontier();
      for (const l of leaves) f.push(l);
      const root = rootOf(leaves);
      if (!f.root().equals(root)) return false;
      const i = a % n;
      const m = b % (n + 1);
      return (
        verifyInclusion(i, n, leaves[i]!, inclusionProof(i, leaves), root) &&
        verifyConsistency(m, n, rootOf(leaves.slice(0, m)), root, consistencyProof(m, leaves))
      );
    }),
    { numRuns: 300 },
  );
  t.pass('300 random trees');
});
