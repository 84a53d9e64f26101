/**
 * The small parts of the DNS listener: SvcParams editing (RFC 9460 §2.2) at every truncation, the
 * answer cache's bounds and expiry, the bypass signals and the built-in encrypted-DNS list, and the
 * DNS hook over a real compiled policy (blocked, csam not overridable, SafeSearch by CNAME).
 */
import t from 'tap';
import { AnswerCache } from '../../proxy/dns/cache.js';
import type { Processed } from '../../proxy/dns/answer.js';
import { createDnsHooks } from '../../proxy/dns/hook.js';
import { stripEch, svcbTarget } from '../../proxy/dns/svcb.js';
import { TYPE } from '../../proxy/dns/codec.js';
import { dnsSignal } from '../../policy/dns-signals.js';
import { ENCRYPTED_DNS_HOSTS, encryptedDnsListText, isEncryptedDnsEndpoint } from '../../policy/encrypted-dns.js';
import { compilePolicy, PolicyHolder } from '../../policy/policy.js';

const target = (name: string): number[] => {
  const out: number[] = [];
  if (name !== '') for (const l of name.split('.')) out.push(l.length, ...Buffer.from(l));
  out.push(0);
  return out;
};

t.test('stripEch: removes exactly the ech param, drops mandatory-ech and unreadable records', async (t) => {
  const alpn = [0, 1, 0, 3, 2, 0x68, 0x32];
  const ech = [0, 5, 0, 3, 9, 9, 9];
  const port = [0, 3, 0, 2, 0x01, 0xbb];
  const rd = Uint8Array.from([0, 1, ...target('svc.allowed.test'), ...alpn, ...port, ...ech]);
  const e = stripEch(rd);
  t.equal(e.kind, 'edited');
  if (e.kind === 'edited') t.same([...e.rdata], [0, 1, ...target('svc.allowed.test'), ...alpn, ...port]);
  t.equal(svcbTarget(rd), 'svc.allowed.test');
  t.equal(svcbTarget(Uint8Array.from([0, 1, 0])), '', 'target "." (the owner name)');
  t.same(stripEch(Uint8Array.from([0, 1, 0, ...alpn])), { kind: 'keep' }, 'no ech: kept');
  t.same(stripEch(Uint8Array.from([0, 0, ...target('alias.allowed.test')])), { kind: 'keep' }, 'AliasMode: kept');
  t.same(stripEch(Uint8Array.from([0, 1, 0, 0, 0, 0, 2, 0, 5, ...ech])), { kind: 'drop', why: 'mandatory_ech' });
  t.same(stripEch(Uint8Array.from([0, 1, 0, 0, 0, 0, 3, 0, 5, 0])), { kind: 'drop', why: 'malformed' }, 'odd mandatory length');
  t.same(stripEch(Uint8Array.from([0, 1, 0xc0, 12, ...alpn])), { kind: 'drop', why: 'malformed' }, 'a compressed TargetName (forbidden, §2.2)');
  t.same(stripEch(Uint8Array.from([0, 1, 0, ...ech, ...ech])), { kind: 'drop', why: 'malformed' }, 'a repeated key');
  const full = [...rd];
  for (let n = 0; n < full.length; n++) {
    const r = stripEch(Uint8Array.from(full.slice(0, n)));
    // A cut inside the params is malformed, or (cut exactly between params) kept/edited without reading past the end.
    if (r.kind === 'edited') t.ok(r.rdata.length < n, `cut at ${n}: edited within bounds`);
    else t.ok(r.kind === 'drop' || r.kind === 'keep', `cut at ${n}: ${r.kind}`);
  }
});

const answer = (bytes: number, ttl: number): Processed => {
  const body = new Uint8Array(bytes);
  return { body, ttlOffsets: [], ttl, rcode: 0, names: [], echRemoved: 0, questionEnd: 12, tail: body.subarray(12), tailTtlOffsets: [] };
};

t.test('AnswerCache: TTL expiry, entry and byte bounds, least recently used first', async (t) => {
  const c = new AnswerCache(3, 1000);
  c.set('a', answer(100, 10), 0);
  c.set('b', answer(100, 10), 0);
  c.set('c', answer(100, 10), 0);
  t.ok(c.get('a', 5000), 'a fresh entry');
  c.set('d', answer(100, 10), 0);
  t.equal(c.size, 3, 'entries bounded');
  t.notOk(c.get('b', 5000), 'the least recently used went first');
  t.ok(c.get('a', 5000), 'a was used, so kept');
  t.notOk(c.get('a', 10000), 'expired at its TTL');
  c.set('big', answer(900, 10), 0);
  t.ok(c.byteSize <= 1000, `bytes bounded (${c.byteSize})`);
  c.set('huge', answer(2000, 10), 0);
  t.notOk(c.get('huge', 0), 'larger than the whole budget: not kept');
  c.set('zero', answer(10, 0), 0);
  t.notOk(c.get('zero', 0), 'TTL 0: not kept');
});

t.test('bypass signals and the encrypted-DNS list', async (t) => {
  t.same(dnsSignal('use-application-dns.net'), { kind: 'encrypted_dns_canary', answer: 'nxdomain' });
  t.same(dnsSignal('mask.icloud.com'), { kind: 'private_relay', answer: 'nxdomain' });
  t.same(dnsSignal('mask-h2.icloud.com.'), { kind: 'private_relay', answer: 'nxdomain' });
  t.same(dnsSignal('_dns.resolver.arpa'), { kind: 'designated_resolver', answer: 'nodata' });
  t.same(dnsSignal('resolver.arpa'), { kind: 'designated_resolver', answer: 'nodata' });
  t.equal(dnsSignal('icloud.com'), null);
  t.equal(dnsSignal('notresolver.arpa'), null);
  t.equal(dnsSignal('mask.icloud.com.evil.test'), null);
  t.ok(isEncryptedDnsEndpoint('dns.google'));
  t.ok(isEncryptedDnsEndpoint('mozilla.cloudflare-dns.com'), 'a subdomain of an entry');
  t.notOk(isEncryptedDnsEndpoint('google.com'));
  t.notOk(isEncryptedDnsEndpoint('notdns.google.test'));
  const lines = encryptedDnsListText().split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  t.same(lines, [...ENCRYPTED_DNS_HOSTS], 'the list text is the list');
  t.equal(new Set(lines).size, lines.length, 'no duplicates');
  for (const h of lines) t.match(h, /^[a-z0-9-]+(\.[a-z0-9-]+)+$/, `${h} is a plain host name`);
});

t.test('the DNS hook over a compiled policy', async (t) => {
  const policy = compilePolicy({
    lists: [
      { id: 'abuse', category: 'csam', kind: 'domains', text: 'csam.test\n', overridable: false },
      { id: 'adult', category: 'adult', kind: 'domains', text: 'blocked.test\n' },
      { id: 'enc', category: 'bypass', kind: 'domains', text: encryptedDnsListText() },
    ],
    allow: ['csam.test', 'blocked.test'],
    profiles: [{ name: 'kids', clients: ['10.9.0.0/16'], safeSearch: true }],
    safeSearch: false,
  });
  const holder = new PolicyHolder();
  const hooks = createDnsHooks(holder);
  t.equal(hooks.onQuestion('allowed.test', TYPE.A, '127.0.0.1').kind, 'block', 'no policy: blocked (fail closed)');
  holder.swap(policy);
  t.equal(hooks.onQuestion('allowed.test', TYPE.A, '127.0.0.1').kind, 'forward');
  t.equal(hooks.onQuestion('www.csam.test', TYPE.HTTPS, '127.0.0.1').kind, 'block', 'csam: the allow entry does not override it');
  t.equal(hooks.onQuestion('blocked.test', TYPE.MX, '127.0.0.1').kind, 'forward', 'an allow entry overrides an adult list');
  t.equal(hooks.onQuestion('dns.google', TYPE.A, '127.0.0.1').kind, 'block', 'builtin:encrypted-dns as a list');
  const s = hooks.onQuestion('mask.icloud.com', TYPE.A, '127.0.0.1');
  t.same(s.kind === 'signal' ? [s.signal, s.answer] : s.kind, ['private_relay', 'nxdomain']);
  const ss = hooks.onQuestion('www.google.com', TYPE.A, '10.9.1.1');
  t.same(ss.kind === 'cname' ? ss.target : ss.kind, 'forcesafesearch.google.com', 'SafeSearch profile: CNAME to the front end');
  t.equal(hooks.onQuestion('www.google.com', TYPE.A, '127.0.0.1').kind, 'forward', 'default profile: no SafeSearch');
  t.equal(hooks.onAnswerName('cdn.csam.test', '10.9.1.1').action, 'block', 'an answer name is decided like a question');
  t.equal(hooks.onAnswerName('cdn.allowed.test', '10.9.1.1').action, 'allow');
});
