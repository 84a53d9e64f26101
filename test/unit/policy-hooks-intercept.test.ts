/**
 * The interception answers of createPolicyHooks over a real compiled policy: `intercept` on the
 * ClientHello verdict by profile and host (both names under a CONNECT), on a blocked CONNECT only,
 * `excluded` counted, and requests on https:// URLs reported with protocol `https`.
 */
import t from 'tap';
import { compilePolicy, PolicyHolder } from '../../policy/policy.js';
import type { ClientHelloInfo, ConnInfo } from '../../proxy/hooks.js';
import { createPolicyHooks } from '../../proxy/policy-hooks.js';
import { nullObserver, type InterceptOutcome, type VerdictEvent } from '../../audit/metrics.js';

const policy = compilePolicy({
  lists: [{ id: 'adult-test', category: 'adult', kind: 'domains', text: 'blocked.test\n' }],
  profiles: [{ name: 'school', clients: ['10.20.0.0/16'], intercept: { enabled: true, include: [], exclude: ['private.test'] } }],
  safeSearch: false,
});

const guest: ConnInfo = { listener: 'forward', client: '10.1.2.3' };
const pupil: ConnInfo = { listener: 'forward', client: '10.20.1.1' };
const hello = (sni: string | null): ClientHelloInfo => ({ sni, ech: false, alpn: [], legacyVersion: 0x0303, supportedVersions: [0x0304] });

function setup() {
  const holder = new PolicyHolder();
  holder.swap(policy);
  const events: VerdictEvent[] = [];
  const outcomes: InterceptOutcome[] = [];
  const hooks = createPolicyHooks(
    holder,
    { ...nullObserver, verdict: (e) => events.push(e), interception: (o) => outcomes.push(o) },
    { recordUrls: false, recordClients: false, blockFronting: false, noSni: 'block', ech: 'allow-outer' },
  );
  return { hooks, events, outcomes };
}

t.test('ClientHello: intercept by profile and host', async (t) => {
  const { hooks, outcomes } = setup();
  const cases: Array<[string, ConnInfo, string | null, string | undefined, boolean]> = [
    ['guest profile never', guest, 'allowed.test', undefined, false],
    ['school, allowed host', pupil, 'allowed.test', undefined, true],
    ['school, blocked host (page over TLS)', pupil, 'blocked.test', undefined, true],
    ['school, excluded host', pupil, 'www.private.test', undefined, false],
    ['school, shipped exclusion', pupil, 'online.example.bank', undefined, false],
    ['school, no SNI, CONNECT host decides', pupil, null, 'allowed.test', true],
    ['school, fronting onto an excluded authority', pupil, 'allowed.test', 'private.test', false],
    ['school, SNI and authority both fine', pupil, 'a.allowed.test', 'allowed.test', true],
  ];
  for (const [name, conn, sni, connectHost, want] of cases) {
    t.equal(hooks.onClientHello(hello(sni), conn, connectHost).intercept === true, want, name);
  }
  t.same(outcomes, ['excluded', 'excluded', 'excluded'], 'each splice of an intercepting profile is counted, nothing else');
});

t.test('CONNECT: intercept only marks a block (the page needs the TLS step)', async (t) => {
  const { hooks } = setup();
  t.equal(hooks.onConnect({ host: 'blocked.test', port: 443 }, pupil).intercept, true);
  t.equal(hooks.onConnect({ host: 'allowed.test', port: 443 }, pupil).intercept, undefined, 'an allowed CONNECT is decided again on the SNI');
  t.equal(hooks.onConnect({ host: 'blocked.test', port: 443 }, guest).intercept, undefined, 'guests keep the 403');
  t.equal(hooks.onConnect({ host: 'blocked.private.test', port: 443 }, pupil).intercept, undefined, 'excluded hosts keep the 403');
});

t.test('requests on https:// URLs are reported as protocol https', async (t) => {
  const { hooks, events } = setup();
  t.equal(hooks.onRequest('https://blocked.test/x', pupil).decision.action, 'block');
  t.equal(hooks.onRequest('https://allowed.test/x', pupil).decision.action, 'allow');
  hooks.onRequest('http://allowed.test/x', pupil);
  t.same(events.map((e) => e.protocol), ['https', 'https', 'http']);
});
