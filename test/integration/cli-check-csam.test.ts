/**
 * csam lists apply to every profile (issue 22, finding 14): a profile whose `lists` leave the csam
 * list out still gets it, while another list it leaves out stays out. Through the built `safespot
 * check`, with synthetic domains lists.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
const CLI = join(root, 'dist', 'appliance', 'cli.js');

function check(config: string, lines: object[]): Promise<{ code: number | null; verdicts: Array<{ action: string; list: string | null }>; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'check', '--config', config], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code, stderr, verdicts: stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; list: string | null }) }),
    );
    child.stdin.end(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  });
}

const dir = mkdtempSync(join(tmpdir(), 'safespot-csam-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'enf.txt'), 'x.test\n');
writeFileSync(join(dir, 'adult.txt'), 'adult.test\n');
writeFileSync(join(dir, 'mon.txt'), 'mon.test\n');
const config = join(dir, 'safespot.yaml');
writeFileSync(
  config,
  [
    'lists:',
    '  - { id: enf, category: csam, kind: domains, source: enf.txt }',
    '  - { id: adult, category: adult, kind: domains, source: adult.txt }',
    '  - { id: mon, category: malware, kind: domains, source: mon.txt }',
    'profiles:',
    '  - { name: staff, clients: [10.1.0.0/16], lists: [mon] }',
    '',
  ].join('\n'),
);

t.test('a profile that leaves the csam list out still gets it; other lists it leaves out stay out', async (t) => {
  const r = await check(config, [
    { host: 'x.test', client: '10.1.2.3' },
    { host: 'adult.test', client: '10.1.2.3' },
    { host: 'mon.test', client: '10.1.2.3' },
    { host: 'x.test', client: '192.168.1.1' },
  ]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.verdicts.length, 4);
  t.equal(r.verdicts[0]?.action, 'block', 'csam host blocked for the staff profile');
  t.equal(r.verdicts[0]?.list, 'enf');
  t.equal(r.verdicts[1]?.action, 'allow', 'the adult list the profile left out stays out');
  t.equal(r.verdicts[2]?.action, 'block', "the profile's own list applies");
  t.equal(r.verdicts[3]?.action, 'block', 'the default profile blocks the csam host too');
});
