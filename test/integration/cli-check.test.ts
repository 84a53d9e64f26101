/**
 * `safespot compile` and `safespot check` through the built binary, with a temporary config and
 * synthetic lists (a domains list, and a hashed list of made-up URLs hashed here).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { sha256Hex } from '../../policy/sha256.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
const CLI = join(root, 'dist', 'appliance', 'cli.js');

function run(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'safespot-check-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'adult.txt'), '# synthetic\r\n0.0.0.0 adult.test\r\n||blocked.test^\r\nnot a host!\r\n');
const secretUrls = ['made-up-hotline.test/album/1.html', 'made-up-hotline.test/album/2.html'];
writeFileSync(join(dir, 'hotline.txt'), secretUrls.map((u) => sha256Hex(u)).join('\n') + '\n');
// Image lists are compiled too: one made-up digest (the MD5 of text, not of any image).
writeFileSync(join(dir, 'images.md5'), `${createHash('md5').update('made-up image').digest('hex')}\n`);
writeFileSync(
  join(dir, 'safespot.yaml'),
  [
    'lists:',
    '  - { id: hotline, category: csam, kind: hashed-urls, source: hotline.txt, overridable: true }',
    '  - { id: adult, category: adult, kind: domains, source: adult.txt }',
    '  - { id: images, category: csam, kind: md5, source: images.md5 }',
    'allow: [ok.adult.test, made-up-hotline.test]',
    'profiles:',
    '  - { name: staff, clients: ["10.9.0.0/16", "fd00:9::/32"], lists: [hotline] }',
    '',
  ].join('\n'),
);

const INPUT = [
  '{"url": "http://made-up-hotline.test/album/1.html"}',
  '{"host": "www.adult.test"}',
  '{"host": "ok.adult.test"}',
  '{"url": "https://blocked.test/x"}',
  '{"host": "adult.test", "client": "10.9.1.1"}',
  '{"host": "adult.test", "client": "::ffff:10.9.1.1"}',
  '{"url": "http://made-up-hotline.test/album/2.html", "client": "fd00:9::1"}',
  'this is not json',
  '{"url": 5}',
  '{"host": "free.test"}',
].join('\n');

const EXPECTED = [
  { action: 'block', category: 'csam', list: 'hotline', rule: 'hashed-url', profile: 'default' },
  { action: 'block', category: 'adult', list: 'adult', rule: 'domain', profile: 'default' },
  { action: 'allow', category: 'adult', list: 'adult', rule: 'allowlist', profile: 'default' },
  { action: 'block', category: 'adult', list: 'adult', rule: 'domain', profile: 'default' },
  { action: 'allow', list: null, rule: 'none', profile: 'staff' },
  { action: 'allow', list: null, rule: 'none', profile: 'staff' },
  { action: 'block', list: 'hotline', profile: 'staff' },
  { error: /JSON/ },
  { error: /url/ },
  { action: 'allow', category: null, list: null, rule: 'none', reason: 'no list matched', profile: 'default' },
];

type T = import('tap').Test;

function checkOutput(t: T, stdout: string) {
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, EXPECTED.length, 'one output line per input line');
  EXPECTED.forEach((want, i) => t.match(lines[i], want, `line ${i + 1}`));
  t.notOk(stdout.includes('album'), 'no clear text of hashed entries in the reasons');
}

t.test('check --config compiles the lists and answers each line', async (t) => {
  const r = await run(['check', '--config', join(dir, 'safespot.yaml')], INPUT);
  t.equal(r.code, 0, r.stderr);
  checkOutput(t, r.stdout);
});

t.test('compile writes a bundle; check --bundle answers the same', async (t) => {
  const out = join(dir, 'policy.bundle');
  const c = await run(['compile', '--config', join(dir, 'safespot.yaml'), '-o', out]);
  t.equal(c.code, 0, c.stderr);
  t.match(c.stderr, /2 URL list\(s\), 4 entries, 1 malformed line\(s\).*version [0-9a-f]{16}/);
  t.match(c.stderr, /list "adult": 1 malformed line\(s\) skipped \(line 4\)/);
  t.match(c.stderr, /list "images": image list \(md5, enforce\), 1 entries/);
  t.match(c.stderr, /1 image list\(s\) with 1 entries/);
  t.notOk(c.stderr.includes('not a host'), 'malformed line text is not printed');
  t.ok(readFileSync(out).subarray(0, 8).toString() === 'SAFESPOT');
  const r = await run(['check', '--config', join(dir, 'safespot.yaml'), '--bundle', out], INPUT);
  t.equal(r.code, 0, r.stderr);
  checkOutput(t, r.stdout);

  const damaged = readFileSync(out);
  damaged[damaged.length - 40] = damaged[damaged.length - 40]! ^ 1;
  writeFileSync(join(dir, 'damaged.bundle'), damaged);
  const d = await run(['check', '--bundle', join(dir, 'damaged.bundle')], '{"host":"a.test"}\n');
  t.equal(d.code, 1);
  t.match(d.stderr, /ERR_BUNDLE_CORRUPT.*checksum/);
  t.equal(d.stdout, '');
});

t.test('bad config: exit 2 with every problem', async (t) => {
  writeFileSync(join(dir, 'bad.yaml'), 'lists:\n  - { id: Bad Id, category: adult, kind: nope, source: x }\nallow: 3\n');
  const r = await run(['check', '--config', join(dir, 'bad.yaml')], '');
  t.equal(r.code, 2);
  t.match(r.stderr, /lists\.0\.id/);
  t.match(r.stderr, /lists\.0\.kind/);
  t.match(r.stderr, /allow/);
});

t.test('unreadable, URL-sourced or garbage lists are refused clearly', async (t) => {
  writeFileSync(join(dir, 'missing.yaml'), 'lists:\n  - { id: a, category: adult, kind: domains, source: nowhere.txt }\n  - { id: b, category: adult, kind: domains, source: "https://lists.example/b.txt" }\n');
  const r = await run(['compile', '--config', join(dir, 'missing.yaml'), '-o', join(dir, 'x.bundle')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /ERR_LIST_READ/);
  t.match(r.stderr, /list "a": cannot read .*nowhere\.txt: ENOENT/);
  t.match(r.stderr, /list "b": source https:\/\/lists\.example\/b\.txt is a URL/);
  writeFileSync(join(dir, 'garbage.txt'), 'x y z\n!!! !!!\n@@ @@\nok.test\n');
  writeFileSync(join(dir, 'garbage.yaml'), 'lists:\n  - { id: g, category: adult, kind: domains, source: garbage.txt }\n');
  const g = await run(['check', '--config', join(dir, 'garbage.yaml')], '');
  t.equal(g.code, 1);
  t.match(g.stderr, /ERR_LIST_INVALID.*"g".*mostly malformed/);
  const u = await run(['compile', '--config', join(dir, 'safespot.yaml')]);
  t.equal(u.code, 2, 'missing -o is a usage error');
});
