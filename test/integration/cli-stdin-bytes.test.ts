/**
 * `safespot canonicalize` and `safespot expressions` read stdin as bytes (issue 19): the built
 * binary, fed the official Safe Browsing vectors as raw bytes, gives their canonical forms, the byte
 * 0x80 included; with --json a string's characters are UTF-8 and U+DC80–U+DCFF stand for raw bytes.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { runCli } from '../helpers/appliance.js';
import { SAFE_BROWSING_VECTORS } from '../helpers/vectors.js';

interface Vector {
  kind: string;
  id: string;
  input: string;
  canonical: string;
  input_bytes_hex?: string;
}

const vectors = (JSON.parse(readFileSync(SAFE_BROWSING_VECTORS, 'utf8')) as Vector[]).filter((v) => v.kind === 'canonicalization');
/** The bytes a vector stands for: `input_bytes_hex` where the vector gives it, else the UTF-8 of `input`. */
const vectorBytes = (v: Vector): Buffer => (v.input_bytes_hex !== undefined ? Buffer.from(v.input_bytes_hex, 'hex') : Buffer.from(v.input, 'utf8'));
/** The same bytes as a --json string: ASCII as is, each byte 0x80–0xFF as U+DC80–U+DCFF (surrogateescape). */
const surrogateEscaped = (b: Buffer): string => [...b].map((x) => String.fromCharCode(x < 0x80 ? x : 0xdc00 + x)).join('');

t.test('canonicalize: every official vector as raw bytes on stdin, one per line', async (t) => {
  t.equal(vectors.length, 33, 'the shared file holds the 33 canonicalization vectors');
  t.ok(
    vectors.some((v) => v.input_bytes_hex === '687474703a2f2f01802e636f6d2f'),
    'among them http://\\x01\\x80.com/ given as bytes',
  );
  // A vector holding CR or LF cannot be one line of plain input; --json below carries it.
  const lines = vectors.filter((v) => !/[\r\n]/.test(v.input));
  t.equal(lines.length, 32, 'only the TAB/CR/LF vector is left to --json');
  const input = Buffer.concat(lines.flatMap((v) => [vectorBytes(v), Buffer.from('\n')]));
  const r = await runCli(['canonicalize'], input);
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.same(r.stdout.split('\n').slice(0, -1), lines.map((v) => v.canonical));
  t.match(r.stdout, /^http:\/\/%01%80\.com\/$/m, 'the byte 0x80 is %80, not the %EF%BF%BD of a UTF-8 decode');
});

t.test('canonicalize --json: every official vector, raw bytes as U+DC80–U+DCFF', async (t) => {
  const input = vectors.map((v) => JSON.stringify(surrogateEscaped(vectorBytes(v)))).join('\n');
  const r = await runCli(['canonicalize', '--json'], `${input}\n`);
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.same(
    r.stdout.split('\n').slice(0, -1),
    vectors.map((v) => JSON.stringify(v.canonical)),
  );
});

t.test('canonicalize --json: characters up to U+00FF are their UTF-8 bytes; other lone surrogates and non-UTF-8 lines are errors', async (t) => {
  const lines = [
    '"http://\\u0001\\u0080.com/"', // U+0080 is the text character: C2 80
    '"http://a.test/caf\u00e9\u00ff"', // é and ÿ as typed text: C3 A9, C3 BF
    '"http://a.test/\\ud800"', // a high surrogate alone stands for no byte
    '"http://a.test/\\udc7f"', // below U+DC80: no byte either
    '"http://a.test/\\ud83d\\ude00"', // a pair is one character (U+1F600), F0 9F 98 80
  ];
  const input = Buffer.concat([Buffer.from(`${lines.join('\n')}\n`), Buffer.from([0x22, 0x80, 0x22, 0x0a])]);
  const r = await runCli(['canonicalize', '--json'], input);
  t.equal(r.code, 0);
  t.equal(r.stdout, '"http://%01%C2%80.com/"\n"http://a.test/caf%C3%A9%C3%BF"\nnull\nnull\n"http://a.test/%F0%9F%98%80"\nnull\n');
  t.equal(
    r.stderr,
    'safespot canonicalize: line 3: a lone surrogate outside U+DC80-U+DCFF stands for no byte\n' +
      'safespot canonicalize: line 4: a lone surrogate outside U+DC80-U+DCFF stands for no byte\n' +
      'safespot canonicalize: line 6: not a JSON string\n',
  );
});

t.test('canonicalize: CRLF and a line straddling pipe chunks, many times over', async (t) => {
  const v = vectors.find((x) => x.input_bytes_hex !== undefined)!;
  const count = 20_000; // ~300 KB: several pipe reads, so some lines and CRLF pairs are cut between chunks
  const one = Buffer.concat([vectorBytes(v), Buffer.from('\r\n')]);
  const r = await runCli(['canonicalize'], Buffer.concat(Array.from({ length: count }, () => one)));
  t.equal(r.code, 0);
  t.equal(r.stdout, `${v.canonical}\n`.repeat(count));
});

t.test('expressions reads bytes too, plain and --json', async (t) => {
  const plain = await runCli(['expressions'], Buffer.from('http://\x80.test/a/\n', 'latin1'));
  t.equal(plain.code, 0);
  t.equal(plain.stdout, '["%80.test/a/","%80.test/"]\n');
  const json = await runCli(['expressions', '--json'], '"http://\\udc80.test/a/"\n"http://\\u0080.test/"\n');
  t.equal(json.code, 0);
  t.equal(json.stdout, '["%80.test/a/","%80.test/"]\n["%C2%80.test/"]\n');
  t.equal(json.stderr, '');
});
