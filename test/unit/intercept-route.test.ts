import t from 'tap';
import { SafespotError } from '../../policy/errors.js';
import { interceptedRoute } from '../../proxy/intercept.js';
import { upstreamTlsErrorPage, upstreamTlsFailure } from '../../proxy/upstream-tls.js';
import { upstreamReason } from '../../proxy/upstream.js';

const session = { tlsName: 'shop.test', host: 'shop.test', port: 443 };

t.test('routes of requests inside an intercepted connection', async (t) => {
  const cases: Array<[string, string | undefined, unknown]> = [
    ['/a?b=1', 'shop.test', { host: 'shop.test', port: 443, authority: 'shop.test', path: '/a?b=1', url: 'https://shop.test/a?b=1', tls: { servername: 'shop.test' } }],
    ['/', 'SHOP.test', { host: 'shop.test', port: 443, authority: 'shop.test', path: '/', url: 'https://shop.test/', tls: { servername: 'shop.test' } }],
    ['/', 'shop.test.', { host: 'shop.test', port: 443, authority: 'shop.test.', path: '/', url: 'https://shop.test./', tls: { servername: 'shop.test' } }],
    ['/x', 'shop.test:443', { host: 'shop.test', port: 443, authority: 'shop.test:443', path: '/x', url: 'https://shop.test:443/x', tls: { servername: 'shop.test' } }],
    ['/x', undefined, { host: 'shop.test', port: 443, authority: 'shop.test', path: '/x', url: 'https://shop.test/x', tls: { servername: 'shop.test' } }],
    ['https://shop.test/p?q', 'ignored.test', { host: 'shop.test', port: 443, authority: 'shop.test', path: '/p?q', url: 'https://shop.test/p?q', tls: { servername: 'shop.test' } }],
    ['https://shop.test?q', undefined, { host: 'shop.test', port: 443, authority: 'shop.test', path: '/?q', url: 'https://shop.test/?q', tls: { servername: 'shop.test' } }],
    ['/', 'other.test', 'misdirected'],
    ['https://other.test/', 'shop.test', 'misdirected'],
    ['/', 'sub.shop.test', 'misdirected'],
    ['http://shop.test/', 'shop.test', null],
    ['*', 'shop.test', null],
    ['/', 'shop test', null],
    ['/', 'user@shop.test', null],
  ];
  for (const [target, host, want] of cases) t.same(interceptedRoute(target, host, session), want, `${target} Host: ${host}`);
  t.same(
    interceptedRoute('/', 'search.test', { tlsName: 'search.test', host: 'safe.search.test', port: 8443 }),
    { host: 'safe.search.test', port: 8443, authority: 'search.test', path: '/', url: 'https://search.test/', tls: { servername: 'search.test' } },
    'requests go to the session host (SafeSearch front end), verified for the TLS name',
  );
});

const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

t.test('upstream TLS failures: certificate problems are ERR_UPSTREAM_CERT, other handshake failures ERR_UPSTREAM', async (t) => {
  const cases: Array<[unknown, string | null, RegExp | null]> = [
    [err('CERT_HAS_EXPIRED'), 'ERR_UPSTREAM_CERT', /expired/],
    [err('CERT_NOT_YET_VALID'), 'ERR_UPSTREAM_CERT', /not valid yet/],
    [err('ERR_TLS_CERT_ALTNAME_INVALID'), 'ERR_UPSTREAM_CERT', /different name/],
    [err('DEPTH_ZERO_SELF_SIGNED_CERT'), 'ERR_UPSTREAM_CERT', /self-signed/],
    [err('SELF_SIGNED_CERT_IN_CHAIN'), 'ERR_UPSTREAM_CERT', /not trusted/],
    [err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'ERR_UPSTREAM_CERT', /trusted authority/],
    [err('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'), 'ERR_UPSTREAM_CERT', /trusted authority/],
    [err('CERT_REVOKED'), 'ERR_UPSTREAM_CERT', /revoked/],
    [err('ERR_SSL_WRONG_VERSION_NUMBER'), 'ERR_UPSTREAM', /secure connection .* failed/],
    [err('EPROTO'), 'ERR_UPSTREAM', /secure connection/],
    [err('ECONNREFUSED'), null, null],
    [err('ECONNRESET'), null, null],
    [new Error('no code'), null, null],
    [null, null, null],
    [new SafespotError('ERR_UPSTREAM_TIMEOUT', 'slow'), null, null],
  ];
  for (const [e, code, msg] of cases) {
    const f = upstreamTlsFailure(e, 'shop.test');
    t.equal(f?.code ?? null, code, `${(e as { code?: string } | null)?.code ?? String(e)} -> ${code}`);
    if (f && msg) {
      t.match(f.message, msg);
      t.match(f.message, 'shop.test', 'names the host');
    }
  }
  const cert = upstreamTlsFailure(err('CERT_HAS_EXPIRED'), 'shop.test')!;
  t.equal(upstreamReason(cert), 'tls', 'counted as upstream_error{reason="tls"}');
  t.equal(upstreamTlsFailure(cert, 'x.test'), cert, 'an already converted failure is kept');
});

t.test('the explanatory page: 502, escaped, never a retry link to the impostor, no host name', async (t) => {
  const page = upstreamTlsErrorPage(upstreamTlsFailure(err('CERT_HAS_EXPIRED'), '<script>.test')!, undefined, ['en', 'sq']);
  t.equal(page.status, 502);
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(Number(page.headers['content-length']), page.body.length);
  const html = page.body.toString('utf8');
  t.match(html, 'could not prove its identity');
  t.match(html, 'certificate has expired');
  t.match(html, '(CERT_HAS_EXPIRED)', 'the OpenSSL code, for whoever the guest asks');
  t.notMatch(html, /script/, 'the host name is not on the page');
  t.notMatch(html, /<a /, 'no link that would lead past the check');
  const other = upstreamTlsErrorPage(upstreamTlsFailure(err('ERR_SSL_WRONG_VERSION_NUMBER'), 'shop.test')!, undefined, ['en', 'sq']);
  t.match(other.body.toString(), 'The secure connection to this site failed');
  t.notMatch(other.body.toString(), 'shop.test', 'no host name');
  const bare = upstreamTlsErrorPage(new SafespotError('ERR_UPSTREAM_CERT', 'no cause'), undefined, ['en']);
  t.match(bare.body.toString(), 'its certificate failed the check', 'a failure without an OpenSSL code still explains');
});

t.test('the explanatory page speaks the guest\'s language (Accept-Language, as the block page)', async (t) => {
  const expired = upstreamTlsFailure(err('CERT_HAS_EXPIRED'), 'shop.test')!;
  const wrongVersion = upstreamTlsFailure(err('ERR_SSL_WRONG_VERSION_NUMBER'), 'shop.test')!;
  const cases: Array<[SafespotError, string | undefined, readonly string[], string, RegExp]> = [
    [expired, 'sq', ['en', 'sq'], 'sq', /nuk mundi të vërtetojë identitetin[\s\S]*certifikata e tij ka skaduar \(CERT_HAS_EXPIRED\)/],
    [expired, 'sq-AL,en;q=0.5', ['en', 'sq'], 'sq', /certifikata e tij ka skaduar/],
    [expired, 'en', ['sq', 'en'], 'en', /could not prove its identity: its certificate has expired/],
    [expired, undefined, ['en', 'sq'], 'en', /its certificate has expired/],
    [expired, undefined, ['sq', 'en'], 'sq', /certifikata e tij ka skaduar/],
    [expired, 'de', ['en', 'sq'], 'en', /its certificate has expired/],
    [wrongVersion, 'sq', ['en', 'sq'], 'sq', /Lidhja e sigurt me këtë faqe interneti dështoi/],
  ];
  for (const [failure, header, offered, lang, text] of cases) {
    const page = upstreamTlsErrorPage(failure, header, offered);
    const html = page.body.toString('utf8');
    const what = `${failure.code} ${header} / ${offered.join(',')}`;
    t.equal(page.headers['content-language'], lang, `${what}: Content-Language`);
    t.match(html, `<html lang="${lang}">`, `${what}: lang`);
    t.match(html, text, `${what}: text`);
    t.notMatch(html, 'shop.test', `${what}: no host name`);
  }
});
