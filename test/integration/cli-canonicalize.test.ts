/**
 * `safespot canonicalize` and `safespot expressions` as a user runs them: the built binary, lines on
 * stdin, exact stdout, stderr notes with line numbers, exit statuses.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const CLI = fileURLToPath(new URL('../../appliance/cli.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], stdin: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

t.test('canonicalize: one canonical URL per line, empty line for what cannot be canonicalised', async (t) => {
  const input = ['http://www.GOOgle.com/', 'http://host/%25%32%35', 'www.google.com', 'http://', 'HTTPS://a.b.test:443/x/../y?q#f'].join('\n');
  const r = await runCli(['canonicalize'], `${input}\n`);
  t.equal(r.code, 0);
  t.equal(r.stdout, 'http://www.google.com/\nhttp://host/%25\nhttp://www.google.com/\n\nhttps://a.b.test/y?q\n');
  t.equal(r.stderr, 'safespot canonicalize: line 4: cannot be canonicalised\n');
});

t.test('canonicalize reads CRLF lines and a last line without newline', async (t) => {
  const r = await runCli(['canonicalize'], 'http://a.test/x\r\nhttp://b.test');
  t.equal(r.code, 0);
  t.equal(r.stdout, 'http://a.test/x\nhttp://b.test/\n');
});

t.test('canonicalize --json: JSON strings in and out', async (t) => {
  const lines = [JSON.stringify('http://www.google.com/foo\tbar\rbaz\n2'), JSON.stringify('http://\u0001.com/'), '42', 'not json', JSON.stringify('')];
  const r = await runCli(['canonicalize', '--json'], `${lines.join('\n')}\n`);
  t.equal(r.code, 0);
  t.equal(r.stdout, '"http://www.google.com/foobarbaz2"\n"http://%01.com/"\nnull\nnull\nnull\n');
  t.equal(
    r.stderr,
    'safespot canonicalize: line 3: not a JSON string\nsafespot canonicalize: line 4: not a JSON string\nsafespot canonicalize: line 5: cannot be canonicalised\n',
  );
});

t.test('expressions: a JSON array per line', async (t) => {
  const r = await runCli(['expressions'], 'http://a.b.c/1/2.html?param=1\nhttp://1.2.3.4/1/\n\n');
  t.equal(r.code, 0);
  t.equal(
    r.stdout,
    '["a.b.c/1/2.html?param=1","a.b.c/1/2.html","a.b.c/","a.b.c/1/","b.c/1/2.html?param=1","b.c/1/2.html","b.c/","b.c/1/"]\n' +
      '["1.2.3.4/1/","1.2.3.4/"]\n' +
      'null\n',
  );
  t.equal(r.stderr, 'safespot expressions: line 3: cannot be canonicalised\n');
});

t.test('expressions --json', async (t) => {
  const r = await runCli(['expressions', '--json'], `${JSON.stringify('http://x.test/a b')}\n"oops\n`);
  t.equal(r.code, 0);
  t.equal(r.stdout, '["x.test/a%20b","x.test/"]\nnull\n');
  t.equal(r.stderr, 'safespot expressions: line 2: not a JSON string\n');
});

t.test('bad usage exits 2', async (t) => {
  for (const cmd of ['canonicalize', 'expressions']) {
    const r = await runCli([cmd, '--bogus'], '');
    t.equal(r.code, 2, `${cmd} --bogus`);
    t.match(r.stderr, /ERR_USAGE/, `${cmd} names the error`);
    t.equal(r.stdout, '', `${cmd} prints nothing on stdout`);
    const p = await runCli([cmd, 'positional'], '');
    t.equal(p.code, 2, `${cmd} with a positional argument`);
  }
});

t.test('empty input gives empty output', async (t) => {
  const r = await runCli(['canonicalize'], '');
  t.equal(r.code, 0);
  t.equal(r.stdout, '');
});
