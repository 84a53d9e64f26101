/**
 * Safe Browsing v4 suffix/prefix expressions: the official examples and hash vectors (read from
 * ../shared/vectors at run time), and the exact count limits (5 hosts × 6 paths).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { canonicalize, canonicalizeHost, type CanonicalUrl } from '../../policy/canonicalize.js';
import { hostExpressions, urlExpressions } from '../../policy/expressions.js';
import { SAFE_BROWSING_VECTORS } from '../helpers/vectors.js';

interface ExprVector {
  kind: 'expressions';
  id: string;
  url: string;
  expressions: string[];
  derived_sha256_hex: Record<string, string>;
}
interface HashVector {
  kind: 'hash';
  id: string;
  input?: string;
  input_repeat?: { char: string; count: number };
  sha256_hex?: string;
  prefix_hex: string;
  prefix_bits: number;
}

const all = JSON.parse(readFileSync(SAFE_BROWSING_VECTORS, 'utf8')) as Array<{ kind: string }>;
const exprVectors = all.filter((v): v is ExprVector => v.kind === 'expressions');
const hashVectors = all.filter((v): v is HashVector => v.kind === 'hash');
const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

function exprs(url: string): string[] {
  const c = canonicalize(url);
  if (c === null) throw new Error(`${url} does not canonicalise`);
  return urlExpressions(c);
}

t.test('official expression examples (as sets)', async (t) => {
  t.equal(exprVectors.length, 3);
  for (const v of exprVectors) {
    const got = exprs(v.url);
    t.same([...got].sort(), [...v.expressions].sort(), `${v.id} ${v.url}`);
    t.equal(new Set(got).size, got.length, `${v.id}: no duplicates`);
    t.ok(got.length <= 30, `${v.id}: at most 30`);
    for (const [e, hex] of Object.entries(v.derived_sha256_hex)) t.equal(sha256(e), hex, `${v.id}: SHA-256 of ${e}`);
  }
});

t.test('official hash vectors', async (t) => {
  t.equal(hashVectors.length, 3);
  for (const v of hashVectors) {
    const input = v.input ?? v.input_repeat!.char.repeat(v.input_repeat!.count);
    const hex = sha256(input);
    if (v.sha256_hex) t.equal(hex, v.sha256_hex, `${v.id} full hash`);
    t.equal(hex.slice(0, v.prefix_bits / 4), v.prefix_hex, `${v.id} ${v.prefix_bits}-bit prefix`);
  }
});

t.test('host variants: exact host plus the last 5..2 labels', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['localhost', ['localhost']],
    ['b.c', ['b.c']],
    ['a.b.c', ['a.b.c', 'b.c']],
    ['a.b.c.d', ['a.b.c.d', 'b.c.d', 'c.d']],
    ['a.b.c.d.e', ['a.b.c.d.e', 'b.c.d.e', 'c.d.e', 'd.e']],
    ['a.b.c.d.e.f', ['a.b.c.d.e.f', 'b.c.d.e.f', 'c.d.e.f', 'd.e.f', 'e.f']],
    ['a.b.c.d.e.f.g', ['a.b.c.d.e.f.g', 'c.d.e.f.g', 'd.e.f.g', 'e.f.g', 'f.g']],
  ];
  for (const [host, want] of cases) {
    t.same(hostExpressions(host, 'name'), want.map((h) => `${h}/`), host);
  }
  const many = `${'x.'.repeat(200)}y.test`;
  t.same(hostExpressions(many, 'name'), [`${many}/`, 'x.x.x.y.test/', 'x.x.y.test/', 'x.y.test/', 'y.test/'], 'very many labels: 5 hosts');
  t.same(hostExpressions('1.2.3.4', 'ipv4'), ['1.2.3.4/'], 'IPv4 only itself');
  t.same(hostExpressions('[2001:db8::1]', 'ipv6'), ['[2001:db8::1]/'], 'IPv6 only itself');
  const h = canonicalizeHost('WWW.Example.TEST:443');
  t.same(h && hostExpressions(h.host, h.hostKind), ['www.example.test/', 'example.test/'], 'from canonicalizeHost');
});

t.test('path variants and exact counts', async (t) => {
  t.same(exprs('http://a.test/'), ['a.test/'], 'root only');
  t.same(exprs('http://a.test/?'), ['a.test/?', 'a.test/'], 'bare ? kept as its own expression');
  t.same(exprs('http://a.test/?x=1'), ['a.test/?x=1', 'a.test/'], 'root with query');
  t.same(exprs('http://a.test/1/'), ['a.test/1/', 'a.test/'], 'directory path');
  t.same(exprs('http://a.test/1/2/3/4/5/6.html?q=1'), [
    'a.test/1/2/3/4/5/6.html?q=1',
    'a.test/1/2/3/4/5/6.html',
    'a.test/',
    'a.test/1/',
    'a.test/1/2/',
    'a.test/1/2/3/',
  ], 'long path: exact ± query, then 4 prefixes from the root');
  t.same(exprs('http://a.test/1/2/3/'), ['a.test/1/2/3/', 'a.test/', 'a.test/1/', 'a.test/1/2/'], 'exact path equal to the 4th prefix is not repeated');
  t.same(exprs('http://a.test/1/2/3/4/'), ['a.test/1/2/3/4/', 'a.test/', 'a.test/1/', 'a.test/1/2/', 'a.test/1/2/3/'], 'five components');

  const max = exprs('http://a.b.c.d.e.f.g.h/1/2/3/4/5/6.html?q=1');
  t.equal(max.length, 30, 'the maximum is exactly 30');
  t.equal(new Set(max).size, 30, 'all distinct');
  t.equal(exprs('http://a.b.c.d.e.f/1/2/3/4/5/6.html?q=1').length, 30, 'six labels: 5 hosts');
  t.equal(exprs('http://a.b.c.d.e/1/2/3/4/5/6.html?q=1').length, 24, 'five labels: 4 hosts × 6 paths');
  t.equal(exprs('http://1.2.3.4/1/2/3/4/5/6.html?q=1').length, 6, 'IP host: 1 host × 6 paths');
  t.equal(exprs('http://[::1]:8080/1/2.html').length, 3, 'IPv6 host');
});

t.test('no scheme, port or user info in expressions', async (t) => {
  const got = exprs('HTTPS://user:pw@WWW.Example.TEST:8443/A/b?c#d');
  t.same(got, ['www.example.test/A/b?c', 'www.example.test/A/b', 'www.example.test/', 'www.example.test/A/', 'example.test/A/b?c', 'example.test/A/b', 'example.test/', 'example.test/A/']);
  for (const e of got) t.notMatch(e, /:\/\/|8443|user|pw/, e);
});

t.test('works on any CanonicalUrl-shaped value', async (t) => {
  const url: CanonicalUrl = { scheme: 'http', host: 'a.b.test', hostKind: 'name', port: null, path: '/x', query: null, href: 'http://a.b.test/x' };
  t.same(urlExpressions(url), ['a.b.test/x', 'a.b.test/', 'b.test/x', 'b.test/']);
});
