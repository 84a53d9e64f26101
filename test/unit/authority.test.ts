/**
 * parseAuthority (proxy/http-forward.ts): plain DNS names are split without WHATWG URL, everything
 * else goes through it. The split must agree with URL on every input: the property below compares
 * the two on generated authorities built from the bytes that matter (digits, hex, dots, hyphens,
 * colons, brackets, `xn--`, long labels), and the table pins the cases an SSRF check depends on.
 */
import fc from 'fast-check';
import t from 'tap';
import { parseAuthority, parseAuthorityByUrl } from '../../proxy/route.js';

t.test('parseAuthority: a table of authorities', async (t) => {
  const cases: [string, number, { host: string; port: number } | null][] = [
    ['Example.Test:443', 0, { host: 'example.test', port: 443 }],
    ['example.test', 80, { host: 'example.test', port: 80 }],
    ['example.test', 0, null],
    ['example.test:0', 0, null],
    ['example.test:65536', 0, null],
    ['example.test:00443', 0, { host: 'example.test', port: 443 }],
    ['localhost:8080', 0, { host: 'localhost', port: 8080 }],
    // Numeric forms are IPv4 addresses for URL, hence for the destination check.
    ['2130706433:443', 0, { host: '127.0.0.1', port: 443 }],
    ['0x7f.1:443', 0, { host: '127.0.0.1', port: 443 }],
    ['127.1:443', 0, { host: '127.0.0.1', port: 443 }],
    ['foo.0x10:443', 0, null],
    ['[::1]:443', 0, { host: '::1', port: 443 }],
    ['[::ffff:127.0.0.1]:443', 0, { host: '::ffff:7f00:1', port: 443 }],
    ['user@example.test:443', 0, null],
    ['example.test/x:443', 0, null],
    ['', 0, null],
  ];
  for (const [text, port, want] of cases) t.same(parseAuthority(text, port), want, `${text || '(empty)'} with default port ${port}`);
});

t.test('parseAuthority agrees with WHATWG URL on generated authorities', async (t) => {
  const label = fc.oneof(
    fc.stringMatching(/^[a-zA-Z0-9-]{1,12}$/),
    fc.stringMatching(/^[0-9]{1,10}$/),
    fc.stringMatching(/^0[xX][0-9a-fA-F]{0,8}$/),
    fc.constantFrom('xn--', 'xn--p1ai', 'XN--abc', 'a'.repeat(64), 'b'.repeat(70), '-', '', '_', 'é'),
  );
  const authority = fc
    .tuple(fc.array(label, { minLength: 1, maxLength: 6 }), fc.option(fc.oneof(fc.integer({ min: 0, max: 70000 }).map(String), fc.constantFrom('', '0443', 'x'))), fc.boolean())
    .map(([labels, port, dot]) => labels.join('.') + (dot ? '.' : '') + (port === null ? '' : `:${port}`));
  fc.assert(
    fc.property(authority, fc.constantFrom(0, 80, 443), (text, port) => {
      const a = parseAuthority(text, port);
      const b = parseAuthorityByUrl(text, port);
      return JSON.stringify(a) === JSON.stringify(b);
    }),
    { numRuns: 20000 },
  );
  t.pass('20,000 generated authorities split the same');
  const long = `${'a'.repeat(63)}.`.repeat(5) + 'test:443';
  t.same(parseAuthority(long, 0), parseAuthorityByUrl(long, 0), 'a name longer than 253 bytes');
});
