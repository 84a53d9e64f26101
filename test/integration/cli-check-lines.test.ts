/**
 * `safespot check` reads its input in chunks and answers each chunk's lines in one write (issue 23:
 * a write per verdict was a tenth of its time with 100,000 hosts). The line ends stay node:readline's
 * (LF, CRLF, a lone CR), wherever a chunk boundary falls; an answer still comes as soon as its line
 * has arrived (a caller writing one line and waiting is answered), and a last line without LF counts.
 * Through the built binary, a real pipe each way.
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

const dir = mkdtempSync(join(tmpdir(), 'safespot-check-lines-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'adult.txt'), 'adult.test\ncaf\u00e9.test\n');
const config = join(dir, 'safespot.yaml');
writeFileSync(config, `lists:\n  - { id: adult, category: adult, kind: domains, source: adult.txt }\nstate: { dir: ${join(dir, 'state')} }\n`);

interface Child {
  write(s: string | Buffer): void;
  end(): void;
  /** Resolves once stdout holds at least `n` lines. */
  lines(n: number): Promise<string[]>;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function start(): Child {
  const p = spawn(process.execPath, [CLI, 'check', '--config', config], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: { n: number; resolve: (l: string[]) => void }[] = [];
  const got = (): string[] => stdout.split('\n').filter((l) => l !== '');
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const w of [...waiters]) {
      if (got().length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(got());
      }
    }
  });
  p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return {
    write: (s) => p.stdin.write(s),
    end: () => p.stdin.end(),
    lines: (n) => (got().length >= n ? Promise.resolve(got()) : new Promise((resolve) => waiters.push({ n, resolve }))),
    done,
  };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const actions = (lines: string[]): string[] => lines.map((l) => (JSON.parse(l) as { action?: string; error?: string }).action ?? 'error');

t.test('each line is answered once it has arrived, before stdin ends', async (t) => {
  const c = start();
  c.write('{"host": "www.adult.test"}\n');
  t.same(actions(await c.lines(1)), ['block'], 'the first answer comes while stdin is still open');
  c.write('{"host": "other.test"}\n');
  t.same(actions(await c.lines(2)), ['block', 'allow'], 'and the second after it');
  c.end();
  const r = await c.done;
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.split('\n').filter(Boolean).length, 2, 'nothing answered twice');
});

t.test('line ends split across chunks: CRLF, lone CR, UTF-8 sequences, a last line without LF', async (t) => {
  const c = start();
  // A CRLF whose CR ends one chunk and LF starts the next: one answer, no error for the empty rest.
  c.write('{"host": "a.adult.test"}\r');
  await pause(50);
  c.write('\n{"host": "b.test"}\r{"host": "c.adult.test"}\r\n');
  await c.lines(3);
  // A multi-byte character cut in two by a chunk boundary (é = c3 a9): decoded whole.
  const bytes = Buffer.from('{"host": "www.caf\u00e9.test"}\n', 'utf8');
  const cut = bytes.indexOf(0xc3) + 1;
  c.write(bytes.subarray(0, cut));
  await pause(50);
  c.write(bytes.subarray(cut));
  await c.lines(4);
  c.write('\n\n   \n'); // blank lines: no answer
  c.write('not json\n');
  c.write('{"host": "www.adult.test"}'); // no LF at the end
  c.end();
  const r = await c.done;
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean);
  // www.café.test is blocked only if its split é was decoded whole (else it is two U+FFFD).
  t.same(actions(lines), ['block', 'allow', 'block', 'block', 'error', 'block']);
});

t.test('10,000 lines in one write: every one answered, in order', async (t) => {
  const c = start();
  const n = 10_000;
  let input = '';
  for (let i = 0; i < n; i++) input += JSON.stringify({ host: i % 3 === 0 ? `h${i}.adult.test` : `h${i}.test` }) + (i % 2 ? '\r\n' : '\n');
  c.write(input);
  c.end();
  const r = await c.done;
  t.equal(r.code, 0, r.stderr);
  const got = actions(r.stdout.split('\n').filter(Boolean));
  t.equal(got.length, n);
  t.same(got, Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 'block' : 'allow')));
});
