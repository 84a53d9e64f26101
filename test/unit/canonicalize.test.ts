/**
 * Safe Browsing v4 canonicalisation: every official vector (read from ../shared/vectors at run time)
 * and hand-written edge cases for what the vectors do not cover.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { canonicalize, canonicalizeBytes, canonicalizeHost, MAX_URL_BYTES } from '../../policy/canonicalize.js';
import { SAFE_BROWSING_VECTORS } from '../helpers/vectors.js';

interface CanonVector {
  kind: 'canonicalization';
  id: string;
  input: string;
  canonical: string;
  input_bytes_hex?: string;
}

const vectorsFile = SAFE_BROWSING_VECTORS;
const vectors = (JSON.parse(readFileSync(vectorsFile, 'utf8')) as Array<{ kind: string }>).filter(
  (v): v is CanonVector => v.kind === 'canonicalization',
);

t.test('every official canonicalisation vector', async (t) => {
  t.equal(vectors.length, 33, 'the shared file holds the 33 vectors');
  for (const v of vectors) {
    // A vector given as raw bytes (0x80 is a byte, not U+0080) goes through the byte entry point.
    const got = v.input_bytes_hex ? canonicalizeBytes(Buffer.from(v.input_bytes_hex, 'hex')) : canonicalize(v.input);
    t.equal(got?.href, v.canonical, `${v.id} ${JSON.stringify(v.input)}`);
    if (!v.input_bytes_hex) t.equal(canonicalize(v.canonical)?.href, v.canonical, `${v.id} canonical form is a fixed point`);
  }
});

interface Case {
  readonly input: string;
  readonly href: string | null;
  readonly host?: string;
  readonly hostKind?: 'name' | 'ipv4' | 'ipv6';
  readonly port?: number | null;
  readonly path?: string;
  readonly query?: string | null;
  readonly note: string;
}

const CASES: readonly Case[] = [
  { input: '', href: null, note: 'empty' },
  { input: ' \t\r\n ', href: null, note: 'only whitespace' },
  { input: 'http://', href: null, note: 'scheme without host' },
  { input: 'http://.../', href: null, note: 'host of dots only' },
  { input: 'http://user:pass@www.example.test/x', href: 'http://www.example.test/x', note: 'user info dropped' },
  { input: 'http://a@b@c.example.test/', href: 'http://c.example.test/', host: 'c.example.test', note: 'the last @ ends the user info' },
  { input: 'http://www.example.test:8080/', href: 'http://www.example.test/', port: 8080, note: 'explicit port kept aside, not in href' },
  { input: 'http://www.example.test:80/', href: 'http://www.example.test/', port: null, note: 'default http port is null' },
  { input: 'https://www.example.test:443/', href: 'https://www.example.test/', port: null, note: 'default https port is null' },
  { input: 'https://www.example.test:80/', href: 'https://www.example.test/', port: 80, note: 'http port on https is explicit' },
  { input: 'http://www.example.test:/', href: 'http://www.example.test/', port: null, note: 'empty port' },
  { input: 'http://www.example.test:0080/', href: 'http://www.example.test/', port: null, note: 'port with leading zeros' },
  { input: 'http://www.example.test:65536/', href: null, note: 'port out of range' },
  { input: 'http://www.example.test:8o/', href: null, note: 'port not decimal' },
  { input: 'javascript:alert(1)', href: null, note: 'not a hierarchical URL: "alert(1)" is no port' },
  { input: 'HTTPS://WWW.EXAMPLE.TEST/A', href: 'https://www.example.test/A', note: 'upper-case scheme and host lowered, path kept' },
  { input: 'HtTp://x.test', href: 'http://x.test/', note: 'mixed-case scheme' },
  { input: 'ftp://files.example.test/a', href: 'ftp://files.example.test/a', note: 'other schemes kept' },
  { input: '//x.test/a', href: 'http://x.test/a', note: 'scheme-relative' },
  { input: 'http:///x.test/', href: 'http://x.test/', note: 'extra slashes after the scheme are skipped' },
  { input: 'http://x.test./', href: 'http://x.test/', note: 'trailing dot' },
  { input: 'http://..x..test../', href: 'http://x.test/', note: 'leading, inner and trailing dot runs' },
  { input: 'http://x.test/%00', href: 'http://x.test/%00', note: '%00 stays escaped' },
  { input: 'http://%00.test/', href: 'http://%00.test/', hostKind: 'name', note: 'NUL in a host' },
  { input: 'http://x.test/%ff%fe', href: 'http://x.test/%FF%FE', note: 'non-UTF-8 escapes kept as bytes, upper-case hex' },
  { input: 'http://x.test/%c3%a9', href: 'http://x.test/%C3%A9', note: 'UTF-8 escape' },
  { input: 'http://x.test/é', href: 'http://x.test/%C3%A9', note: 'a raw non-ASCII character is its UTF-8 bytes' },
  { input: 'http://x.test/😀', href: 'http://x.test/%F0%9F%98%80', note: 'astral character' },
  { input: 'http://x.test/\ud800', href: 'http://x.test/%EF%BF%BD', note: 'lone surrogate becomes U+FFFD' },
  { input: 'http://x.test/a b', href: 'http://x.test/a%20b', note: 'inner space escaped' },
  { input: 'http://x.test/%7e%41', href: 'http://x.test/~A', note: 'unreserved escapes are unescaped' },
  { input: 'http://x.test/%2541', href: 'http://x.test/A', note: 'double escape resolves fully' },
  { input: 'http://x.test/a%2Fb', href: 'http://x.test/a/b', note: 'escaped slash becomes a slash' },
  { input: 'http://x.test/a%2F..%2Fb', href: 'http://x.test/b', note: 'escaped dot segments are resolved after unescaping' },
  { input: 'http://x.test/a/./b/../../c', href: 'http://x.test/c', note: 'dot segments' },
  { input: 'http://x.test/../../a', href: 'http://x.test/a', note: '.. above the root' },
  { input: 'http://x.test/a/.', href: 'http://x.test/a/', note: 'trailing /.' },
  { input: 'http://x.test/a/b/..', href: 'http://x.test/a/', note: 'trailing /..' },
  { input: 'http://x.test/a//b///', href: 'http://x.test/a/b/', note: 'slash runs' },
  { input: 'http://x.test/a/..b/.c', href: 'http://x.test/a/..b/.c', note: 'dots inside names are not segments' },
  { input: 'http://x.test?q', href: 'http://x.test/?q', path: '/', query: 'q', note: 'query without a path' },
  { input: 'http://x.test/p?', href: 'http://x.test/p?', query: '', note: 'bare ?' },
  { input: 'http://x.test/p', href: 'http://x.test/p', query: null, note: 'no query' },
  { input: 'http://x.test/p?a=%26b&c=%2523#f', href: 'http://x.test/p?a=&b&c=%23', query: 'a=&b&c=%23', note: 'query unescaped, # re-escaped' },
  { input: 'http://x.test/p?a/../b//c', href: 'http://x.test/p?a/../b//c', note: 'no path rules in the query' },
  { input: 'http://x.test/a%3Fb', href: 'http://x.test/a?b', path: '/a', query: 'b', note: 'unescaped ? starts the query (spec unescapes before splitting)' },
  { input: 'http://x.test/a%3Fb?c', href: 'http://x.test/a?b?c', path: '/a', query: 'b?c', note: 'unescaped ? in front of a query' },
  { input: 'http://x.test/.%3F', href: 'http://x.test/?', path: '/', query: '', note: 'dot segment before an unescaped ?' },
  { input: 'http://x.test/%23', href: 'http://x.test/%23', note: 'escaped # is not a fragment' },
  { input: 'http://x.test/#', href: 'http://x.test/', note: 'empty fragment' },
  { input: 'http://x.test#f', href: 'http://x.test/', note: 'fragment right after the host' },
  { input: 'http://a%2fb.test/', href: 'http://a%2Fb.test/', host: 'a%2Fb.test', note: 'a slash in the host stays escaped' },
  { input: 'http://a%3a80.test/', href: 'http://a%3A80.test/', port: null, note: 'a colon in the host stays escaped' },
  { input: 'http://a%40b.test/', href: 'http://a%40b.test/', note: 'an @ in the host stays escaped' },
  // IPv4 in its many forms.
  { input: 'http://1.2.3.4/', href: 'http://1.2.3.4/', hostKind: 'ipv4', note: 'dotted decimal' },
  { input: 'http://0x7f.0.0.1/', href: 'http://127.0.0.1/', hostKind: 'ipv4', note: 'hex part' },
  { input: 'http://0X7F.0.0.1/', href: 'http://127.0.0.1/', hostKind: 'ipv4', note: 'upper-case hex prefix' },
  { input: 'http://0177.0.0.01/', href: 'http://127.0.0.1/', hostKind: 'ipv4', note: 'octal parts' },
  { input: 'http://127.1/', href: 'http://127.0.0.1/', hostKind: 'ipv4', note: 'two parts' },
  { input: 'http://1.2.3/', href: 'http://1.2.0.3/', hostKind: 'ipv4', note: 'three parts' },
  { input: 'http://1.2.772/', href: 'http://1.2.3.4/', hostKind: 'ipv4', note: 'last part fills two bytes' },
  { input: 'http://0x7f000001/', href: 'http://127.0.0.1/', hostKind: 'ipv4', note: 'one hex integer' },
  { input: 'http://4294967295/', href: 'http://255.255.255.255/', hostKind: 'ipv4', note: 'largest integer' },
  { input: 'http://4294967296/', href: 'http://4294967296/', hostKind: 'name', note: 'beyond 32 bits is not IPv4' },
  { input: 'http://1.2.3.256/', href: 'http://1.2.3.256/', hostKind: 'name', note: 'part out of range is not IPv4' },
  { input: 'http://1.2.3.4.5/', href: 'http://1.2.3.4.5/', hostKind: 'name', note: 'five parts is not IPv4' },
  { input: 'http://08.1.1.1/', href: 'http://08.1.1.1/', hostKind: 'name', note: 'bad octal is not IPv4' },
  { input: 'http://1.2.3.4./', href: 'http://1.2.3.4/', hostKind: 'ipv4', note: 'trailing dot on IPv4' },
  { input: 'http://%31%32%37.1/', href: 'http://127.0.0.1/', hostKind: 'ipv4', note: 'escaped IPv4' },
  { input: 'http://1.2.3.4:8443/x', href: 'http://1.2.3.4/x', hostKind: 'ipv4', port: 8443, note: 'IPv4 with port' },
  // IPv6.
  { input: 'http://[2001:0db8:0000::1]/', href: 'http://[2001:db8::1]/', hostKind: 'ipv6', note: 'v5 example: leading zeros' },
  { input: 'http://[2001:DB8:0:0:1:0:0:1]/', href: 'http://[2001:db8::1:0:0:1]/', hostKind: 'ipv6', note: 'first longest zero run' },
  { input: 'http://[2001:db8:0:1:1:1:1:1]/', href: 'http://[2001:db8:0:1:1:1:1:1]/', hostKind: 'ipv6', note: 'a single zero word is not ::' },
  { input: 'http://[::1]:8080/a', href: 'http://[::1]/a', hostKind: 'ipv6', port: 8080, note: 'loopback with port' },
  { input: 'http://[::]/', href: 'http://[::]/', hostKind: 'ipv6', note: 'unspecified' },
  { input: 'http://[1::]/', href: 'http://[1::]/', hostKind: 'ipv6', note: 'trailing ::' },
  { input: 'http://[::ffff:1.2.3.4]/', href: 'http://1.2.3.4/', hostKind: 'ipv4', note: 'IPv4-mapped becomes IPv4' },
  { input: 'http://[::ffff:102:304]/', href: 'http://1.2.3.4/', hostKind: 'ipv4', note: 'IPv4-mapped in hex' },
  { input: 'http://[64:ff9b::1.2.3.4]/', href: 'http://1.2.3.4/', hostKind: 'ipv4', note: 'NAT64 becomes IPv4' },
  { input: 'http://[fe80::1%25eth0]/', href: 'http://[fe80::1]/', hostKind: 'ipv6', note: 'zone id dropped' },
  { input: 'http://[::1/', href: null, note: 'unclosed bracket' },
  { input: 'http://[::1]x/', href: null, note: 'junk after the bracket' },
  { input: 'http://[not:an:address]/', href: null, note: 'bracketed but not IPv6' },
  { input: 'http://[1:2:3:4:5:6:7:8:9]/', href: null, note: 'nine words' },
  // IDN.
  { input: 'http://bücher.test/', href: 'http://xn--bcher-kva.test/', note: 'IDN to punycode' },
  { input: 'http://B%C3%BCCHER.test/', href: 'http://xn--bcher-kva.test/', note: 'escaped, upper-case IDN' },
  { input: 'http://xn--bcher-kva.test/', href: 'http://xn--bcher-kva.test/', note: 'punycode stays' },
  { input: 'http://%ff.test/', href: 'http://%FF.test/', note: 'non-UTF-8 host bytes stay escaped' },
];

t.test('hand-written edge cases', async (t) => {
  for (const c of CASES) {
    const got = canonicalize(c.input);
    t.equal(got?.href ?? null, c.href, `${c.note}: ${JSON.stringify(c.input)}`);
    if (got === null) continue;
    if (c.host !== undefined) t.equal(got.host, c.host, `${c.note}: host`);
    if (c.hostKind !== undefined) t.equal(got.hostKind, c.hostKind, `${c.note}: hostKind`);
    if (c.port !== undefined) t.equal(got.port, c.port, `${c.note}: port`);
    if (c.path !== undefined) t.equal(got.path, c.path, `${c.note}: path`);
    if (c.query !== undefined) t.equal(got.query, c.query, `${c.note}: query`);
    t.equal(got.href, `${got.scheme}://${got.host}${got.path}${got.query === null ? '' : `?${got.query}`}`, `${c.note}: href is made of its parts`);
  }
});

t.test('fast path and general path agree', async (t) => {
  // Inputs the fast path takes, and the same URLs forced through the general path by a tab
  // (which is removed) — both must give identical results.
  const urls = [
    'http://www.example.test/a/b/c.html?x=1',
    'https://a.test',
    'http://a.test?q=1',
    'http://a-b_c.test/a.b/.c/d..?x?y/../z',
    'http://a.test/~!$&\'()*+,;=:@[]\\^`{|}',
    'http://WWW.Example.TEST:8080/a?b',
    'http://a.test:80/x',
    'https://a.test:443',
    'https://a.test:80?q',
    'http://a.test:/x',
    'http://A.test?x',
    'http://a.test:00080/',
  ];
  for (const u of urls) {
    const fast = canonicalize(u);
    const general = canonicalize(`${u.slice(0, 4)}\t${u.slice(4)}`);
    t.ok(fast, `${u} canonicalises`);
    t.same(general, fast, `${u}: same result both ways`);
  }
});

t.test('size bounds', async (t) => {
  const longPath = `http://x.test/${'a/'.repeat(4000)}`;
  t.equal(canonicalize(longPath)?.path.length, 8001, 'an 8 KB path is fine');
  const atLimit = `http://x.test/${'a'.repeat(MAX_URL_BYTES - 'http://x.test/'.length)}`;
  t.ok(canonicalize(atLimit), 'exactly MAX_URL_BYTES is accepted');
  t.equal(canonicalize(`${atLimit}a`), null, 'one byte more is refused');
  t.equal(canonicalize(`http://x.test/${'é'.repeat(MAX_URL_BYTES / 2)}`), null, 'the limit counts UTF-8 bytes');
  t.equal(canonicalize('x'.repeat(10_000_000)), null, 'a huge string is refused without work');
  t.ok(canonicalize(`\t${atLimit}\n`), 'TAB/CR/LF do not count');
  const deep = canonicalize(`http://x.test/${'%25'.repeat(5000)}41`);
  t.equal(deep?.path, `/${'%25'.repeat(4999)}A`, 'a deep escape chain is unescaped in one pass');
  const chain = `http://x.test/%${'25'.repeat(8000)}`;
  t.equal(canonicalize(chain)?.path, '/%25', 'the %252525… chain needs no quadratic passes');
  const manyLabels = `http://${'a.'.repeat(5000)}test/`;
  t.equal(canonicalize(manyLabels)?.host.length, 10004, 'very many labels are kept');
  t.equal(canonicalize(`http://x.test/${'../'.repeat(5000)}a`)?.path, '/a', 'many .. segments');
});

t.test('never throws on odd inputs', async (t) => {
  const odd = ['\u0000', '%', '%%', '%zz', 'http://%', 'http://[', 'http://]', 'http://@', 'http://:80', 'http://?', 'http://#', '::::', '[::1]', '\uffff', '\ud83d', 'http://x.test:99999999999999999999/', 'http://0x/', 'http://0x.0x.0x.0x/'];
  for (const s of odd) t.doesNotThrow(() => canonicalize(s), JSON.stringify(s));
  t.equal(canonicalize(null as unknown as string), null, 'not a string');
  t.equal(canonicalizeBytes(new Uint8Array(0)), null, 'no bytes');
  t.equal(canonicalize('http://0x/')?.host, '0.0.0.0', '"0x" alone is zero, as in WHATWG');
});

t.test('canonicalizeHost', async (t) => {
  const cases: Array<[string, string | null, string?]> = [
    ['www.example.test', 'www.example.test', 'name'],
    ['WWW.Example.TEST', 'www.example.test', 'name'],
    ['www.example.test:443', 'www.example.test', 'name'],
    ['www.example.test.', 'www.example.test', 'name'],
    ['  www.example.test ', 'www.example.test', 'name'],
    ['www.example.test:', 'www.example.test', 'name'],
    ['www.example.test:99999', null],
    ['www.example.test:x', null],
    ['1.2.3.4', '1.2.3.4', 'ipv4'],
    ['1.2.3.4:443', '1.2.3.4', 'ipv4'],
    ['3279880203', '195.127.0.11', 'ipv4'],
    ['[::1]:443', '[::1]', 'ipv6'],
    ['[2001:0DB8::1]', '[2001:db8::1]', 'ipv6'],
    ['2001:db8::1', '[2001:db8::1]', 'ipv6'],
    ['[::ffff:1.2.3.4]:443', '1.2.3.4', 'ipv4'],
    ['bücher.test', 'xn--bcher-kva.test', 'name'],
    ['', null],
    ['.', null],
    ['a b.test', null],
    ['a.test/x', null],
    ['user@a.test', null],
    ['a.test?x', null],
    ['a.test#x', null],
    ['[::1', null],
    ['[::1]:x', null],
  ];
  for (const [input, host, kind] of cases) {
    const got = canonicalizeHost(input);
    t.equal(got?.host ?? null, host, JSON.stringify(input));
    if (kind !== undefined) t.equal(got?.hostKind, kind, `${JSON.stringify(input)} kind`);
  }
  t.equal(canonicalizeHost('x'.repeat(10_000_000)), null, 'huge input refused');
  t.equal(canonicalizeHost(`${'a:'.repeat(MAX_URL_BYTES)}`), null, 'a long colon string is no IPv6');
});
