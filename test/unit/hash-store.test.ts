/** The compact hashed store: full 64-bit entries, short 4..7-byte prefixes, several lists, validation. */
import fc from 'fast-check';
import t from 'tap';
import { HashStore, HashStoreBuilder, type StoreArrays } from '../../policy/hash-store.js';
import { sha256StringWords } from '../../policy/sha256.js';

const words = (s: string): [number, number] => {
  const w = new Uint32Array(8);
  sha256StringWords(s, w);
  return [w[0]!, w[1]!];
};

function lookup(store: HashStore, h0: number, h1: number): number[] {
  const out: number[] = [];
  store.lookup(h0, h1, out);
  return out.sort((a, b) => a - b);
}

t.test('full entries: hits, misses, duplicates, several lists', async (t) => {
  const b = new HashStoreBuilder();
  b.beginList(0);
  for (const e of ['a.test/', 'b.test/', 'a.test/']) b.add(...words(e));
  const r0 = b.endList();
  t.same(r0, { entries: 2, duplicates: 1 });
  b.beginList(1);
  for (const e of ['b.test/', 'c.test/x']) b.add(...words(e));
  b.endList();
  const store = b.build(2);
  t.equal(store.size, 4);
  const table: Array<[string, number[]]> = [
    ['a.test/', [0]],
    ['b.test/', [0, 1]],
    ['c.test/x', [1]],
    ['c.test/', []],
    ['d.test/', []],
  ];
  for (const [e, want] of table) t.same(lookup(store, ...words(e)), want, e);
  t.ok(store.byteLength >= 4 * 10, 'byteLength counts the arrays');
});

t.test('short prefixes match on their own bytes only', async (t) => {
  const [h0, h1] = words('short.test/');
  const b = new HashStoreBuilder();
  b.beginList(0);
  b.add(h0, h1, 4);
  b.endList();
  b.beginList(1);
  b.add(h0, h1, 6);
  b.endList();
  const store = b.build(2);
  t.same(lookup(store, h0, h1), [0, 1], 'both match the full digest');
  t.same(lookup(store, h0, (h1 ^ 0x000000ff) >>> 0), [0, 1], 'byte 7 differs: both still match');
  t.same(lookup(store, h0, (h1 ^ 0x0000ff00) >>> 0), [0, 1], 'byte 6 differs: both still match (6 bytes = 0..5)');
  t.same(lookup(store, h0, (h1 ^ 0x00ff0000) >>> 0), [0], 'byte 5 differs: only the 4-byte entry matches');
  t.same(lookup(store, (h0 ^ 1) >>> 0, h1), [], 'byte 3 differs: nothing');
  t.throws(() => {
    const x = new HashStoreBuilder();
    x.beginList(0);
    x.add(1, 2, 3);
  }, RangeError);
});

t.test('extremes of the key space and an empty store', async (t) => {
  const b = new HashStoreBuilder();
  b.beginList(0);
  const keys: Array<[number, number]> = [[0, 0], [0xffffffff, 0xffffffff], [0x80000000, 1], [0x7fffffff, 0xffffffff]];
  for (const [h, l] of keys) b.add(h, l);
  b.endList();
  const store = b.build(1);
  for (const [h, l] of keys) t.same(lookup(store, h, l), [0], `${h}:${l}`);
  t.same(lookup(store, 0, 1), []);
  const empty = new HashStoreBuilder().build(0);
  t.equal(empty.size, 0);
  t.same(lookup(empty, 0, 0), []);
});

t.test('property: a store finds exactly what was added', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(3), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 300 }), fc.integer({ min: 0, max: 0xffffffff }), (entries, probe) => {
      const b = new HashStoreBuilder();
      const want = new Map<string, Set<number>>();
      for (let list = 0; list < 4; list++) {
        b.beginList(list);
        for (const [l, h, lo] of entries) {
          if (l !== list) continue;
          b.add(h, lo);
          const k = `${h}:${lo}`;
          if (!want.has(k)) want.set(k, new Set());
          want.get(k)!.add(list);
        }
        b.endList();
      }
      const store = b.build(4);
      for (const [k, lists] of want) {
        const [h, lo] = k.split(':').map(Number) as [number, number];
        if (lookup(store, h, lo).join() !== [...lists].sort().join()) return false;
      }
      return want.has(`${probe}:${probe}`) || lookup(store, probe, probe).length === 0;
    }),
    { numRuns: 200 },
  );
  t.pass('200 random stores');
});

t.test('fromArrays refuses inconsistent arrays', async (t) => {
  const ok: StoreArrays = {
    hi: Uint32Array.of(1, 2),
    lo: Uint32Array.of(0, 0),
    list: Uint16Array.of(0, 0),
    shortHi: Uint32Array.of(5),
    shortLo: Uint32Array.of(0xff000000),
    shortLen: Uint8Array.of(5),
    shortList: Uint16Array.of(0),
  };
  t.equal(HashStore.fromArrays(ok, 1).size, 3);
  const bad: Array<[string, Partial<StoreArrays>, number]> = [
    ['unsorted', { hi: Uint32Array.of(2, 1) }, 1],
    ['length mismatch', { lo: Uint32Array.of(0) }, 1],
    ['list out of range', { list: Uint16Array.of(0, 1) }, 1],
    ['short length 8', { shortLen: Uint8Array.of(8) }, 1],
    ['bits beyond length', { shortLo: Uint32Array.of(0xff00ff00) }, 1],
  ];
  for (const [name, patch, lists] of bad) {
    t.throws(() => HashStore.fromArrays({ ...ok, ...patch }, lists), { name: 'SafespotError', code: 'ERR_BUNDLE_CORRUPT' }, name);
  }
});
