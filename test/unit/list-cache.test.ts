/** The last-good list cache: round trip, atomic replacement, corrupt entries detected and ignored. */
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListCache } from '../../appliance/lists/cache.js';

const root = mkdtempSync(join(tmpdir(), 'safespot-list-cache-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function fresh(): { cache: ListCache; dir: string; warnings: string[] } {
  const warnings: string[] = [];
  const state = join(root, `state-${n++}`);
  const cache = ListCache.forStateDir(state, { warn: (m) => warnings.push(m) });
  return { cache, dir: join(state, 'lists'), warnings };
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const info = { entries: 2, fetchedAt: 1_700_000_000_000, source: 'https://lists.test/a.txt', etag: '"v1"', lastModified: 'Tue, 14 Nov 2023 22:13:20 GMT' };

t.test('write then read gives the same body and metadata; files are private', async (t) => {
  const { cache, dir, warnings } = fresh();
  t.equal(await cache.read('a'), null, 'nothing cached yet');
  const body = enc('one.blocked.test\ntwo.blocked.test\n');
  const meta = await cache.write('a', body, info);
  t.equal(meta.sha256, sha(body));
  t.equal(meta.bytes, body.length);
  t.equal(meta.checkedAt, info.fetchedAt, 'checkedAt defaults to fetchedAt');
  const got = await cache.read('a');
  t.ok(got);
  t.same(Buffer.from(got!.body), Buffer.from(body));
  t.same(got!.meta, meta);
  t.same(readdirSync(dir).sort(), ['a.json', `a.${sha(body).slice(0, 16)}.body`].sort());
  t.equal(statSync(join(dir, 'a.json')).mode & 0o777, 0o600);
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.same(warnings, []);
});

t.test('a new write replaces the old copy and removes its body', async (t) => {
  const { cache, dir } = fresh();
  await cache.write('a', enc('v1\n'), info);
  const v2 = enc('v2.blocked.test\n');
  await cache.write('a', v2, { ...info, entries: 1, etag: '"v2"' });
  const got = await cache.read('a');
  t.same(Buffer.from(got!.body), Buffer.from(v2));
  t.equal(got!.meta.etag, '"v2"');
  t.equal(readdirSync(dir).filter((f) => f.endsWith('.body')).length, 1, 'one body left');
});

t.test('a crash between body and metadata leaves the previous copy readable; leftovers are cleaned later', async (t) => {
  const { cache, dir, warnings } = fresh();
  const v1 = enc('v1.blocked.test\n');
  await cache.write('a', v1, info);
  // The state a crash leaves: the new body renamed into place, the new metadata only a temp file.
  const v2 = enc('v2.blocked.test\n');
  writeFileSync(join(dir, `a.${sha(v2).slice(0, 16)}.body`), v2);
  writeFileSync(join(dir, 'a.json.tmp-999-deadbeef'), '{"half":');
  writeFileSync(join(dir, `a.${sha(v2).slice(0, 16)}.body.tmp-999-cafebabe`), 'partial');
  const got = await cache.read('a');
  t.same(Buffer.from(got!.body), Buffer.from(v1), 'still the old version, verified');
  t.same(warnings, []);
  const v3 = enc('v3.blocked.test\n');
  await cache.write('a', v3, info);
  t.same(readdirSync(dir).sort(), ['a.json', `a.${sha(v3).slice(0, 16)}.body`].sort(), 'orphans and temp files removed');
});

t.test('lists whose ids share a prefix keep their own files', async (t) => {
  const { cache } = fresh();
  await cache.write('a', enc('a\n'), info);
  await cache.write('a.b', enc('ab\n'), info);
  await cache.write('a', enc('a2\n'), info);
  t.equal(Buffer.from((await cache.read('a.b'))!.body).toString(), 'ab\n');
  t.equal(Buffer.from((await cache.read('a'))!.body).toString(), 'a2\n');
});

t.test('touch records a 304: new check time and validators, same body', async (t) => {
  const { cache } = fresh();
  const body = enc('x.blocked.test\n');
  await cache.write('a', body, info);
  const after = await cache.touch('a', { checkedAt: info.fetchedAt + 60_000, etag: '"v1b"' });
  t.equal(after?.checkedAt, info.fetchedAt + 60_000);
  const got = await cache.read('a');
  t.equal(got!.meta.etag, '"v1b"');
  t.equal(got!.meta.lastModified, info.lastModified, 'unchanged validator kept');
  t.equal(got!.meta.fetchedAt, info.fetchedAt);
  t.same(Buffer.from(got!.body), Buffer.from(body));
  t.equal(await cache.touch('none', { checkedAt: 1 }), null, 'nothing to touch');
});

t.test('corrupt metadata is detected and ignored with a clear message', async (t) => {
  const body = enc('x.blocked.test\n');
  const table: Array<[string, (meta: Record<string, unknown>) => string, RegExp]> = [
    ['not JSON', () => '{"format":1,', /not JSON/],
    ['an array', () => '[]', /not an object|unknown format/],
    ['unknown format', (m) => JSON.stringify({ ...m, format: 2 }), /unknown format/],
    ['another id', (m) => JSON.stringify({ ...m, id: 'b' }), /names another list/],
    ['bad sha256', (m) => JSON.stringify({ ...m, sha256: 'zz' }), /sha256/],
    ['sha256 of other bytes', (m) => JSON.stringify({ ...m, sha256: sha(enc('other')) }), /cannot be read|does not match/],
    ['negative entries', (m) => JSON.stringify({ ...m, entries: -1 }), /entries/],
    ['missing source', (m) => JSON.stringify({ ...m, source: undefined }), /source/],
    ['wrong size', (m) => JSON.stringify({ ...m, bytes: 3 }), /does not match/],
  ];
  for (const [name, damage, why] of table) {
    const { cache, dir, warnings } = fresh();
    const meta = await cache.write('a', body, info);
    writeFileSync(join(dir, 'a.json'), damage(meta as unknown as Record<string, unknown>));
    t.equal(await cache.read('a'), null, `${name}: not used`);
    t.equal(warnings.length, 1, `${name}: one warning`);
    t.match(warnings[0] ?? '', why, `${name}: says why`);
    t.match(warnings[0] ?? '', /ignoring the cached copy/, `${name}: says what happens`);
  }
});

t.test('a corrupt, truncated or missing body is detected and ignored', async (t) => {
  const body = enc('one.blocked.test\ntwo.blocked.test\n');
  const table: Array<[string, (path: string) => void, RegExp]> = [
    ['one byte flipped', (p) => {
      const b = readFileSync(p);
      b[3] = b[3]! ^ 0x20;
      writeFileSync(p, b);
    }, /does not match/],
    ['truncated', (p) => writeFileSync(p, readFileSync(p).subarray(0, 5)), /does not match/],
    ['empty', (p) => writeFileSync(p, ''), /does not match/],
    ['deleted', (p) => unlinkSync(p), /cannot be read \(ENOENT\)/],
  ];
  for (const [name, damage, why] of table) {
    const { cache, dir, warnings } = fresh();
    const meta = await cache.write('a', body, info);
    damage(join(dir, `a.${meta.sha256.slice(0, 16)}.body`));
    t.equal(await cache.read('a'), null, `${name}: not used`);
    t.match(warnings.join('\n'), why, `${name}: says why`);
  }
});

t.test('ids that could escape the folder are refused', async (t) => {
  const { cache } = fresh();
  for (const id of ['../x', 'A', '', '.hidden', 'a/b']) {
    await t.rejects(cache.read(id), /invalid list id/, JSON.stringify(id));
  }
});

t.test('parallel writes of one id leave one whole, verified copy', async (t) => {
  const { cache, dir, warnings } = fresh();
  const bodies = Array.from({ length: 6 }, (_, i) => enc(`v${i}.blocked.test\n`.repeat(100 + i)));
  await Promise.all(bodies.map((b, i) => cache.write('a', b, { ...info, entries: 100 + i })));
  const got = await cache.read('a');
  t.ok(got, 'readable');
  t.ok(bodies.some((b) => Buffer.from(b).equals(Buffer.from(got!.body))), 'one of the written bodies');
  t.equal(got!.meta.entries, 100 + bodies.findIndex((b) => Buffer.from(b).equals(Buffer.from(got!.body))), 'metadata of that body');
  t.notOk(readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temp files left');
  t.same(warnings, []);
});
