/**
 * onRequest's verdict cache (proxy/policy-hooks.ts, UrlVerdicts): a URL decided once per policy and
 * profile must give every later request exactly what a fresh decision gives: per profile (two
 * clients of different profiles asking for the same URL, in either order), per policy (a swap drops
 * it), SafeSearch per profile, long URLs, and past the bound; and every request is still reported.
 * Each case compares with a hooks instance that has never seen the URL (a fresh decision).
 */
import t from 'tap';
import { compilePolicy, PolicyHolder, type Policy } from '../../policy/policy.js';
import type { ConnInfo, Verdict } from '../../proxy/hooks.js';
import { createPolicyHooks } from '../../proxy/policy-hooks.js';
import type { VerdictEvent } from '../../audit/metrics.js';
import { nullObserver } from '../../audit/metrics.js';

const compile = (urls: string): Policy =>
  compilePolicy({
    lists: [
      { id: 'adult-test', category: 'adult', kind: 'urls', text: urls },
      { id: 'csam-test', category: 'csam', kind: 'urls', text: 'http://pages.test/csam/page\n' },
    ],
    profiles: [
      { name: 'open', clients: ['10.8.0.0/16'], lists: [] },
      { name: 'kids', clients: ['10.9.0.0/16'], safeSearch: true },
    ],
    safeSearch: false,
  });

const first = compile('http://pages.test/adult/page\n');
const second = compile('http://pages.test/other/page\n');

const guest: ConnInfo = { listener: 'http', client: '10.1.2.3' };
const open: ConnInfo = { listener: 'http', client: '10.8.1.1' };
const kid: ConnInfo = { listener: 'http', client: '10.9.1.1' };

function setup(p: Policy) {
  const holder = new PolicyHolder();
  holder.swap(p);
  const events: VerdictEvent[] = [];
  const hooks = createPolicyHooks(holder, { ...nullObserver, verdict: (e) => events.push(e) }, { recordUrls: false, recordClients: false, blockFronting: false, noSni: 'block', ech: 'allow-outer' });
  return { hooks, events, holder };
}

const shape = (v: Verdict): string => `${v.decision.action} ${v.decision.list} ${v.connectHost ?? '-'}`;
/** The verdict a hooks instance that never saw this URL gives. */
const fresh = (p: Policy, url: string, conn: ConnInfo): string => shape(setup(p).hooks.onRequest(url, conn));

t.test('the profile is part of the key: the same URL, clients of different profiles, either order', async (t) => {
  const url = 'http://pages.test/adult/page';
  t.equal(fresh(first, url, guest), 'block adult-test -');
  t.equal(fresh(first, url, open), 'allow null -', 'the open profile does not apply the adult list');
  for (const order of [[guest, open, guest, open], [open, guest, open, guest]]) {
    const { hooks, events } = setup(first);
    for (const c of order) t.equal(shape(hooks.onRequest(url, c)), fresh(first, url, c), `${c.client} after the other profile`);
    t.equal(events.length, order.length, 'every request is reported, cached or not');
  }
  const { hooks } = setup(first);
  for (let i = 0; i < 3; i++) t.equal(hooks.onRequest('http://pages.test/csam/page', open).decision.list, 'csam-test', 'csam applies to every profile');
});

t.test('SafeSearch by profile on the same URL', async (t) => {
  const url = 'http://www.youtube.com/watch?v=1';
  const { hooks } = setup(first);
  for (let i = 0; i < 2; i++) {
    t.equal(hooks.onRequest(url, kid).connectHost, 'restrictmoderate.youtube.com');
    t.equal(hooks.onRequest(url, guest).connectHost, undefined);
    t.equal(hooks.onRequest(url, open).connectHost, undefined);
  }
});

t.test('a policy swap drops the cached verdicts', async (t) => {
  const a = 'http://pages.test/adult/page';
  const b = 'http://pages.test/other/page';
  const { hooks, holder } = setup(first);
  t.equal(hooks.onRequest(a, guest).decision.action, 'block');
  t.equal(hooks.onRequest(b, guest).decision.action, 'allow');
  holder.swap(second);
  t.equal(hooks.onRequest(a, guest).decision.action, 'allow', 'no longer listed');
  t.equal(hooks.onRequest(b, guest).decision.action, 'block', 'newly listed');
  holder.swap(first);
  t.equal(hooks.onRequest(a, guest).decision.action, 'block');
  t.equal(hooks.onRequest(b, guest).decision.action, 'allow');
  holder.current = null;
  t.equal(hooks.onRequest(a, guest).decision.rule, 'no-policy', 'no policy: fails closed, nothing cached is used');
});

t.test('long URLs and more URLs than the bound: the same verdicts as fresh decisions', async (t) => {
  const { hooks } = setup(first);
  const long = `http://pages.test/adult/page?${'q'.repeat(2000)}`;
  for (let i = 0; i < 2; i++) t.equal(shape(hooks.onRequest(long, guest)), fresh(first, long, guest));
  const blocked = 'http://pages.test/adult/page';
  t.equal(hooks.onRequest(blocked, guest).decision.action, 'block');
  for (let i = 0; i < 20_000; i++) hooks.onRequest(`http://pages.test/p${i}`, guest);
  t.equal(hooks.onRequest(blocked, guest).decision.action, 'block', 'evicted, decided again');
  t.equal(hooks.onRequest(blocked, open).decision.action, 'allow');
  t.equal(hooks.onRequest('http://pages.test/p19999', guest).decision.action, 'allow');
});
