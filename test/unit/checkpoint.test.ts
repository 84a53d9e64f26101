/**
 * The appliance identity (audit/identity.ts), signed notes (c2sp.org/signed-note) and checkpoints
 * (c2sp.org/tlog-checkpoint, audit/checkpoint.ts): key IDs as the spec computes them, a note signed
 * by one key verifies with it and with no other, any byte changed breaks it, and the parsers refuse
 * every truncation and oddity. The identity file is created 0600 and read back to the same key.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { formatCheckpoint, parseCheckpoint, rowLeaf, LEAF_TAG } from '../../audit/checkpoint.js';
import { generateIdentity, loadOrCreateIdentity, parseVerifierKey, signNote, verifyNote } from '../../audit/identity.js';
import { checkCheckpointNote } from '../../audit/verify.js';

const id = generateIdentity('safespot/venue-1');
const other = generateIdentity('safespot/venue-1');

t.test('the verifier key and key ID are the signed-note ones', async (t) => {
  const expectId = createHash('sha256').update('safespot/venue-1\n').update(Buffer.from([1])).update(id.publicKey).digest().subarray(0, 4);
  t.same(id.keyId, expectId, 'SHA-256(name || 0x0A || 0x01 || key)[:4]');
  t.match(id.verifierKey, /^safespot\/venue-1\+[0-9a-f]{8}\+[A-Za-z0-9+/]{43}[=]{0,1}/);
  const back = parseVerifierKey(`  ${id.verifierKey}\n`);
  t.same(back.publicKey, id.publicKey);
  t.equal(back.fingerprint, id.fingerprint);
  t.equal(id.fingerprint, `sha256:${createHash('sha256').update(id.publicKey).digest('hex')}`);
  // Every malformed key is refused with a reason, never accepted.
  // base64 has '+' of its own: 64 fresh keys (most hold one) all read back.
  let unread = 0;
  for (let i = 0; i < 64; i++) {
    const k = generateIdentity('safespot/k');
    if (!parseVerifierKey(k.verifierKey).publicKey.equals(k.publicKey)) unread++;
  }
  t.equal(unread, 0, 'every verifier key reads back, "+" in its base64 or not');
  const [, name, hex, b64] = /^([^+]*)\+([^+]*)\+(.*)$/.exec(id.verifierKey) as unknown as [string, string, string, string];
  for (const bad of ['', name, `${name}+${hex}`, `${name}+00000000+${b64}`, `a b+${hex}+${b64}`, `${name}+${hex}+${b64.slice(0, -4)}`, `${name}+${hex}+${b64}+x`]) {
    t.throws(() => parseVerifierKey(bad), { code: 'ERR_USAGE' }, JSON.stringify(bad.slice(0, 30)));
  }
  t.throws(() => generateIdentity('has space'), { code: 'ERR_CONFIG_INVALID' });
  t.throws(() => generateIdentity('a+b'), { code: 'ERR_CONFIG_INVALID' });
});

t.test('a signed note verifies with its key only; any change breaks it', async (t) => {
  const note = signNote('hello\nworld\n', id);
  t.match(note, /^hello\nworld\n\n\u2014 safespot\/venue-1 [A-Za-z0-9+/=]+\n$/);
  t.same(verifyNote(note, id), { ok: true, text: 'hello\nworld\n' });
  const byOther = verifyNote(note, other);
  t.equal(byOther.ok, false, 'another key with the same name: its ID differs, so no signature of it');
  // A second signature by an unknown key is ignored; a broken one by this key rejects the note.
  const cosigned = note + signNote('hello\nworld\n', generateIdentity('witness.example/w')).split('\n\n')[1];
  t.equal(verifyNote(cosigned, id).ok, true, 'unknown signers are ignored');
  let broken = 0;
  for (let i = 0; i < note.length; i++) {
    const c = note.charCodeAt(i);
    const changed = note.slice(0, i) + String.fromCharCode(c === 0x41 ? 0x42 : c === 0x0a ? 0x20 : c ^ 1) + note.slice(i + 1);
    if (verifyNote(changed, id).ok) broken++;
  }
  t.equal(broken, 0, `each of the ${note.length} characters changed: never verifies`);
  for (let i = 0; i < note.length; i++) if (verifyNote(note.slice(0, i), id).ok) broken++;
  t.equal(broken, 0, 'no truncation verifies');
  t.equal(verifyNote(`${note}\u0000`, id).ok, false);
  t.equal(verifyNote('x'.repeat(70_000) + note, id).ok, false, 'oversized');
});

t.test('checkpoints: the format, strict parsing, and the origin must be the key name', async (t) => {
  const body = { origin: 'safespot/venue-1', size: 42, root: createHash('sha256').update('r').digest(), time: Date.UTC(2026, 5, 1, 12), reason: 'interval' as const };
  const text = formatCheckpoint(body);
  t.equal(text, `safespot/venue-1\n42\n${body.root.toString('base64')}\ntime 2026-06-01T12:00:00.000Z\nreason interval\n`);
  t.same(parseCheckpoint(text), { ok: true, value: body });
  const note = signNote(text, id);
  t.same(checkCheckpointNote(note, id), { ok: true, value: body });
  const foreign = signNote(formatCheckpoint({ ...body, origin: 'safespot/other' }), id);
  t.match(checkCheckpointNote(foreign, id), { ok: false, reason: /origin/ });
  for (const bad of [
    text.replace('\n42\n', '\n042\n'),
    text.replace('\n42\n', '\n-1\n'),
    text.replace('\n42\n', '\n99999999999999999\n'),
    text.replace('reason interval', 'reason bogus'),
    text.replace('time 2026-06-01T12:00:00.000Z', 'time 2026-06-31T12:00:00.000Z'),
    text.replace(body.root.toString('base64'), body.root.subarray(1).toString('base64')),
    `${text}extra\n`,
    text.slice(0, -1),
  ]) {
    t.equal(parseCheckpoint(bad).ok, false, JSON.stringify(bad.slice(17, 40)));
  }
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => parseCheckpoint(s).ok === false || formatCheckpoint((parseCheckpoint(s) as { value: typeof body }).value) === s));
});

t.test('the leaf bytes of a row: tagged JSON of every column in a fixed order', async (t) => {
  const row = { id: 7, time: 1, kind: 'verdict' as const, listener: 'forward', protocol: 'http', action: 'block', category: 'adult', list: 'a', match: null, detail: null, url: null, client: null, count: 3 };
  t.equal(rowLeaf(row).toString(), `${LEAF_TAG}[7,1,"verdict","forward","http","block","adult","a",null,null,null,null,3]`);
  t.not(rowLeaf(row).toString(), rowLeaf({ ...row, count: 4 }).toString(), 'the count is in the leaf');
  t.not(rowLeaf(row).toString(), rowLeaf({ ...row, id: 8 }).toString(), 'so is the id');
  t.not(rowLeaf({ ...row, detail: '' }).toString(), rowLeaf(row).toString(), 'empty text is not NULL');
});

t.test('the identity file: created 0600 once, read back to the same key, refused when damaged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-identity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = loadOrCreateIdentity(join(dir, 'state'), 'safespot/venue-1');
  t.equal(a.created, true);
  const file = join(dir, 'state', 'identity.json');
  t.equal(statSync(file).mode & 0o777, 0o600, 'only the owner reads the private key');
  const b = loadOrCreateIdentity(join(dir, 'state'), 'safespot/renamed');
  t.equal(b.created, false);
  t.equal(b.identity.verifierKey, a.identity.verifierKey, 'the same key and the name fixed at creation');
  t.equal(verifyNote(signNote('x\n', b.identity), a.identity).ok, true);
  t.notMatch(JSON.stringify(a.identity), /PRIVATE/, 'the private key is not a field of the identity');
  writeFileSync(file, readFileSync(file, 'utf8').replace('"version": 1', '"version": 2'));
  t.throws(() => loadOrCreateIdentity(join(dir, 'state'), 'x'), { code: 'ERR_JOURNAL' });
  writeFileSync(file, 'not json');
  t.throws(() => loadOrCreateIdentity(join(dir, 'state'), 'x'), { code: 'ERR_JOURNAL' });
});
