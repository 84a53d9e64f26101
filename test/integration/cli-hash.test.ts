/**
 * `safespot hash` as a user runs it: the built binary in a child process, over the reference
 * vectors and over files this test writes to a temporary directory.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { PDQ_VECTORS } from '../helpers/vectors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(ROOT, 'dist', 'appliance', 'cli.js');
const VECTORS = PDQ_VECTORS;
const expected = JSON.parse(readFileSync(join(VECTORS, 'expected.json'), 'utf8')) as {
  vectors: Array<{ file: string; md5: string; sha1: string; sha256: string; pdq: string; quality: number; width: number; height: number; pdq_dihedral?: Record<string, string> }>;
  dihedral_order: string[];
};

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const lines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

t.test('hashes the reference vectors, one JSON line per file, in order', async (t) => {
  const files = expected.vectors.map((v) => join(VECTORS, v.file));
  const r = await run(['hash', ...files]);
  t.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  t.equal(out.length, files.length);
  expected.vectors.forEach((v, i) => {
    const o = out[i]!;
    t.equal(o.file, files[i]);
    t.same(
      { md5: o.md5, sha1: o.sha1, sha256: o.sha256, pdq: o.pdq, quality: o.quality, width: o.width, height: o.height },
      { md5: v.md5, sha1: v.sha1, sha256: v.sha256, pdq: v.pdq, quality: v.quality, width: v.width, height: v.height },
      v.file,
    );
    t.equal(o.lowQuality, v.quality < 50, `${v.file} lowQuality`);
    t.notOk('dihedral' in o, 'no dihedral without --dihedral');
  });
});

t.test('--dihedral prints the eight variants in the documented order', async (t) => {
  const v = expected.vectors.find((x) => x.file.endsWith('bridge-1-original.jpg'))!;
  const r = await run(['hash', '--dihedral', join(VECTORS, v.file)]);
  t.equal(r.code, 0, r.stderr);
  const [o] = lines(r.stdout);
  t.same(o!.dihedral, expected.dihedral_order.map((name) => v.pdq_dihedral![name]));
});

t.test('unreadable and undecodable files give error lines, the rest still hashed, exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-hash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'not an image\n');
  const png = join(dir, 'red.png');
  writeFileSync(png, await sharp({ create: { width: 600, height: 40, channels: 3, background: '#c00' } }).png().toBuffer());
  const missing = join(dir, 'missing.jpg');
  const r = await run(['hash', text, missing, png, dir]);
  t.equal(r.code, 1);
  const out = lines(r.stdout);
  t.equal(out.length, 4);
  t.match(out[0], { file: text, error: 'ERR_IMAGE_DECODE', md5: /^[0-9a-f]{32}$/, sha1: /^[0-9a-f]{40}$/, sha256: /^[0-9a-f]{64}$/ });
  t.notOk('pdq' in out[0]!);
  t.match(out[1], { file: missing, error: 'ENOENT' });
  t.notOk('md5' in out[1]!);
  t.match(out[2], { file: png, width: 600, height: 40, quality: 0, lowQuality: true, pdq: /^[0-9a-f]{64}$/ });
  t.notOk('error' in out[2]!);
  t.match(out[3], { file: dir, error: 'EISDIR' });
});

t.test('usage errors exit 2', async (t) => {
  const none = await run(['hash']);
  t.equal(none.code, 2);
  t.match(none.stderr, /ERR_USAGE/);
  const bad = await run(['hash', '--nope', 'x']);
  t.equal(bad.code, 2);
});
