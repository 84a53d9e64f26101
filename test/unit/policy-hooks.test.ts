/**
 * createPolicyHooks over a real compiled policy with synthetic lists: fail closed without a
 * policy, SafeSearch by profile, SNI / CONNECT disagreement, no SNI, ECH, and what reaches the
 * Observer (URL and client only when configured).
 */
import t from 'tap';
import { compilePolicy, PolicyHolder } from '../../policy/policy.js';
import type { ClientHelloInfo, ConnInfo } from '../../proxy/hooks.js';
import { createPolicyHooks, type PolicyHookOptions } from '../../proxy/policy-hooks.js';
import type { VerdictEvent } from '../../audit/metrics.js';
import { nullObserver } from '../../audit/metrics.js';

const policy = compilePolicy({
  lists: [
    { id: 'adult-test', category: 'adult', kind: 'domains', text: 'blocked.test\n' },
    { id: 'csam-test', category: 'csam', kind: 'urls', text: 'http://pages.test/bad/page\n' },
  ],
  profiles: [{ name: 'kids', clients: ['10.9.0.0/16'], safeSearch: true }],
  safeSearch: false,
});

const conn: ConnInfo = { listener: 'tls', client: '10.1.2.3' };
const kid: ConnInfo = { listener: 'tls', client: '10.9.1.1' };
const hello = (sni: string | null, ech = false): ClientHelloInfo => ({ sni, ech, alpn: [], legacyVersion: 0x0303, supportedVersions: [0x0304] });
const base: PolicyHookOptions = { recordUrls: false, recordClients: false, blockFronting: false, noSni: 'block', ech: 'allow-outer' };

function setup(opts: Partial<PolicyHookOptions> = {}, loaded = true) {
  const holder = new PolicyHolder();
  if (loaded) holder.swap(policy);
  const events: VerdictEvent[] = [];
  const hooks = createPolicyHooks(holder, { ...nullObserver, verdict: (e) => events.push(e) }, { ...base, ...opts });
  return { hooks, events, holder };
}

t.test('no policy loaded: every hook fails closed, and says so', async (t) => {
  const { hooks, events } = setup({}, false);
  for (const v of [hooks.onConnect({ host: 'ok.test', port: 443 }, conn), hooks.onClientHello(hello('ok.test'), conn), hooks.onRequest('http://ok.test/', conn)]) {
    t.equal(v.decision.action, 'block');
    t.equal(v.decision.rule, 'no-policy');
  }
  t.equal(events.length, 3);
  t.same(events.map((e) => e.action), ['block', 'block', 'block']);
});

t.test('decisions and verdict events (no URL or client unless configured)', async (t) => {
  const { hooks, events } = setup();
  t.equal(hooks.onConnect({ host: 'blocked.test', port: 443 }, { listener: 'forward', client: '10.1.2.3' }).decision.action, 'block');
  t.equal(hooks.onClientHello(hello('www.blocked.test'), conn).decision.category, 'adult');
  t.equal(hooks.onRequest('http://pages.test/bad/page', { listener: 'http', client: '10.1.2.3' }).decision.category, 'csam');
  t.equal(hooks.onRequest('http://pages.test/good', { listener: 'http', client: '10.1.2.3' }).decision.action, 'allow');
  t.same(events.map((e) => `${e.listener} ${e.protocol} ${e.action} ${e.category} ${e.list}`), [
    'forward connect block adult adult-test',
    'tls tls block adult adult-test',
    'http http block csam csam-test',
    'http http allow null null',
  ]);
  for (const e of events) {
    t.notOk('url' in e, 'no URL recorded by default');
    t.notOk('client' in e, 'no client recorded by default');
    t.ok(e.durationSeconds >= 0 && e.durationSeconds < 10);
  }
  const rec = setup({ recordUrls: true, recordClients: true });
  rec.hooks.onRequest('http://pages.test/x', conn);
  t.equal(rec.events[0]!.url, 'http://pages.test/x');
  t.equal(rec.events[0]!.client, '10.1.2.3');
});

t.test('SafeSearch: only for profiles that ask, only when allowed', async (t) => {
  const { hooks } = setup();
  t.equal(hooks.onClientHello(hello('www.google.com'), kid).connectHost, 'forcesafesearch.google.com');
  t.equal(hooks.onClientHello(hello('www.google.com'), conn).connectHost, undefined, 'default profile has safeSearch off');
  t.equal(hooks.onConnect({ host: 'www.bing.com', port: 443 }, kid).connectHost, 'strict.bing.com');
  t.equal(hooks.onRequest('http://www.youtube.com/watch?v=1', kid).connectHost, 'restrictmoderate.youtube.com');
  t.equal(hooks.onClientHello(hello('example.test'), kid).connectHost, undefined);
});

t.test('no SNI: the CONNECT authority is decided; on its own, per noSni', async (t) => {
  t.equal(setup().hooks.onClientHello(hello(null), conn, 'blocked.test').decision.action, 'block');
  t.equal(setup().hooks.onClientHello(hello(null), conn, 'fine.test').decision.action, 'allow');
  t.equal(setup().hooks.onClientHello(hello(null), conn).decision.action, 'block');
  t.equal(setup({ noSni: 'allow' }).hooks.onClientHello(hello(null), conn).decision.action, 'allow');
});

t.test('ECH: block, or decide on the outer name', async (t) => {
  t.equal(setup({ ech: 'block' }).hooks.onClientHello(hello('public.test', true), conn).decision.action, 'block');
  t.equal(setup().hooks.onClientHello(hello('public.test', true), conn).decision.action, 'allow');
  t.equal(setup().hooks.onClientHello(hello('blocked.test', true), conn).decision.action, 'block');
});

t.test('CONNECT authority and SNI disagree: both decided, the stricter wins; blockFronting blocks alone', async (t) => {
  const { hooks } = setup();
  t.equal(hooks.onClientHello(hello('fine.test'), conn, 'blocked.test').decision.action, 'block', 'authority blocked');
  t.equal(hooks.onClientHello(hello('blocked.test'), conn, 'fine.test').decision.action, 'block', 'SNI blocked');
  t.equal(hooks.onClientHello(hello('fine.test'), conn, 'other.test').decision.action, 'allow', 'both fine: allowed by default');
  t.equal(hooks.onClientHello(hello('fine.test'), conn, 'FINE.test.').decision.action, 'allow', 'same name in another spelling is no disagreement');
  const strict = setup({ blockFronting: true }).hooks;
  t.equal(strict.onClientHello(hello('fine.test'), conn, 'other.test').decision.action, 'block');
  t.equal(strict.onClientHello(hello('fine.test'), conn, 'fine.test').decision.action, 'allow');
});

t.test('an authority/SNI disagreement is counted, with the action taken', async (t) => {
  const holder = new PolicyHolder();
  holder.swap(policy);
  const seen: string[] = [];
  const observer = { ...nullObserver, fronting: (a: 'allow' | 'block') => seen.push(a) };
  const hooks = createPolicyHooks(holder, observer, base);
  hooks.onClientHello(hello('fine.test'), conn, 'other.test');
  hooks.onClientHello(hello('fine.test'), conn, 'blocked.test');
  hooks.onClientHello(hello('fine.test'), conn, 'FINE.test.');
  hooks.onClientHello(hello('fine.test'), conn);
  t.same(seen, ['allow', 'block'], 'two disagreements (one allowed, one blocked); same-name spellings and plain TLS are not counted');
  const strict = createPolicyHooks(holder, observer, { ...base, blockFronting: true });
  strict.onClientHello(hello('fine.test'), conn, 'other.test');
  t.same(seen, ['allow', 'block', 'block'], 'blockFronting turns the disagreement itself into a counted block');
});
