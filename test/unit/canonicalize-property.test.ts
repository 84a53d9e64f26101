/**
 * Property tests for canonicalisation and expressions (fast-check, bounded runs): never throws,
 * idempotent, at most 30 expressions, never a scheme in an expression.
 */
import fc from 'fast-check';
import t from 'tap';
import { canonicalize, canonicalizeBytes, canonicalizeHost } from '../../policy/canonicalize.js';
import { hostExpressions, urlExpressions } from '../../policy/expressions.js';

const RUNS = 2000;

/** Pieces that make URLs interesting: escapes, dots, slashes, brackets, odd bytes. */
const piece = fc.oneof(
  fc.constantFrom('%', '%2', '%25', '%2e', '%2E', '%2f', '%3F', '%23', '%00', '%ff', '%C3%A9', '%5B', '%40', '%3A', '%20'),
  fc.constantFrom('.', '..', '/', '//', '/./', '/../', '?', '#', '@', ':', '[', ']', '\\', ' ', '\t', '\n', '\r'),
  fc.constantFrom('a', 'B', '0', '1', '7', '9', '0x', '255', '256', 'ü', 'é', '😀', '\u0000', '\u007f', '\u0080', 'xn--'),
  fc.constantFrom('::', 'ffff', '64:ff9b', '1.2.3.4', 'www', 'test', 'example', '80', '65536'),
);
const chunk = fc.array(piece, { maxLength: 12 }).map((a) => a.join(''));
const urlLike = fc
  .record({
    scheme: fc.constantFrom('', 'http://', 'https://', 'HTTP://', 'ftp://', '//', 'http:', 'x-y+z.w://'),
    userinfo: fc.constantFrom('', 'u@', 'u:p@', '@'),
    host: chunk,
    port: fc.constantFrom('', ':', ':80', ':443', ':8080', ':99999', ':x'),
    path: chunk,
    query: fc.option(chunk, { nil: undefined }),
    fragment: fc.option(chunk, { nil: undefined }),
  })
  .map((r) => `${r.scheme}${r.userinfo}${r.host}${r.port}/${r.path}${r.query === undefined ? '' : `?${r.query}`}${r.fragment === undefined ? '' : `#${r.fragment}`}`);
const bracketed = fc
  .tuple(fc.array(fc.constantFrom('0', '1', 'db8', 'FFFF', '0000', ':', '::', '.', '1.2.3.4', '%25eth0'), { maxLength: 12 }), fc.constantFrom('', ':80', '/x'))
  .map(([parts, rest]) => `http://[${parts.join('')}]${rest}`);

/** fast-check v4 spells the old fullUnicodeString as unit 'binary'; UTF-16 units add lone surrogates. */
const fullUnicode = fc.string({ unit: 'binary' });
const utf16 = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) });
const anyString = fc.oneof(fc.string(), fullUnicode, utf16, urlLike, bracketed);

function checkUrl(s: string): boolean {
  const c = canonicalize(s);
  if (c === null) return true;
  // Idempotent: the canonical href canonicalises to itself.
  const again = canonicalize(c.href);
  if (again === null || again.href !== c.href) throw new Error(`not idempotent: ${JSON.stringify(s)} → ${c.href} → ${again?.href}`);
  if (!c.path.startsWith('/')) throw new Error(`path without /: ${c.path}`);
  if (c.href !== `${c.scheme}://${c.host}${c.path}${c.query === null ? '' : `?${c.query}`}`) throw new Error('href not made of its parts');
  // Only printable ASCII, no raw '#', no '%' that is not an escape.
  if (!/^[\x21-\x7e]*$/.test(c.href) || c.href.includes('#') || /%(?![0-9A-F]{2})/.test(c.href)) throw new Error(`bad byte in ${c.href}`);
  const exprs = urlExpressions(c);
  if (exprs.length < 1 || exprs.length > 30) throw new Error(`${exprs.length} expressions`);
  if (new Set(exprs).size !== exprs.length) throw new Error('duplicate expressions');
  for (const e of exprs) {
    // host part, then the path: the host part is the host or (names only) a label suffix of it, so
    // no scheme, port or user info can be in front. (A query may itself hold "://".)
    const slash = e.indexOf('/');
    const hostPart = e.slice(0, slash);
    const ok = slash > 0 && (hostPart === c.host || (c.hostKind === 'name' && c.host.endsWith(`.${hostPart}`)));
    if (!ok) throw new Error(`expression ${e} does not start with a host variant of ${c.host}`);
  }
  return true;
}

t.test('canonicalize never throws, is idempotent, gives at most 30 scheme-less expressions', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(anyString, checkUrl), { numRuns: RUNS }));
});

t.test('URL-like inputs mostly canonicalise (the generator is not vacuous)', async (t) => {
  const sample = fc.sample(urlLike, { numRuns: 500, seed: 42 });
  const ok = sample.filter((s) => canonicalize(s) !== null).length;
  t.ok(ok > 150, `${ok} of 500 canonicalised (the rest have bad ports, empty hosts or broken brackets)`);
});

t.test('canonicalizeBytes never throws on arbitrary bytes and agrees with canonicalize on UTF-8', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        const c = canonicalizeBytes(b);
        return c === null || canonicalize(c.href)?.href === c.href;
      }),
      { numRuns: RUNS },
    ),
  );
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(urlLike, (s) => canonicalizeBytes(new TextEncoder().encode(s))?.href === canonicalize(s)?.href),
      { numRuns: RUNS },
    ),
  );
});

t.test('canonicalizeHost never throws and is idempotent', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.oneof(fc.string(), fullUnicode, utf16, chunk), (s) => {
        const h = canonicalizeHost(s);
        if (h === null) return true;
        const again = canonicalizeHost(h.host);
        if (again?.host !== h.host || again.hostKind !== h.hostKind) throw new Error(`not idempotent: ${JSON.stringify(s)} → ${h.host} → ${again?.host}`);
        const e = hostExpressions(h.host, h.hostKind);
        return e.length >= 1 && e.length <= 5 && e.every((x) => x.endsWith('/') && !x.includes('://'));
      }),
      { numRuns: RUNS },
    ),
  );
});
