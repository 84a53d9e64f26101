import t from 'tap';
import { interceptChoice, interceptHostKey, NEVER_INTERCEPT } from '../../policy/intercept.js';

const on = (include: string[] = [], exclude: string[] = []) => Object.freeze({ enabled: true, include, exclude });
const off = Object.freeze({ enabled: false, include: [], exclude: [] });

const why = (c: ReturnType<typeof interceptChoice>): string => (c.intercept ? 'intercept' : c.why);

t.test('intercept or splice, first rule that applies', async (t) => {
  const cases: Array<[string, ReturnType<typeof on> | typeof off, string | null, string]> = [
    ['disabled profile', off, 'allowed.test', 'disabled'],
    ['disabled beats everything', off, 'x.bank', 'disabled'],
    ['enabled, no lists', on(), 'allowed.test', 'intercept'],
    ['no name', on(), null, 'no-name'],
    ['empty name', on(), '.', 'no-name'],
    ['shipped: a .bank host', on(), 'www.example.bank', 'default-exclude'],
    ['shipped: the TLD label itself', on(), 'bank', 'default-exclude'],
    ['shipped: not a suffix of a label', on(), 'notbank', 'intercept'],
    ['shipped: windows update subdomain', on(), 'fe2.update.microsoft.com', 'default-exclude'],
    ['shipped: windowsupdate.com', on(), 'download.windowsupdate.com', 'default-exclude'],
    ['shipped: apple update host', on(), 'swcdn.apple.com', 'default-exclude'],
    ['shipped: other apple hosts are not excluded', on(), 'www.apple.com', 'intercept'],
    ['shipped wins over include', on(['example.bank']), 'example.bank', 'default-exclude'],
    ['shipped: case and trailing dot', on(), 'Mesu.Apple.COM.', 'default-exclude'],
    ['operator exclude, exact', on([], ['bank-of.test']), 'bank-of.test', 'exclude'],
    ['operator exclude, subdomain', on([], ['bank-of.test']), 'login.bank-of.test', 'exclude'],
    ['operator exclude, not a sibling', on([], ['bank-of.test']), 'xbank-of.test', 'intercept'],
    ['operator exclude in upper case', on([], ['Pinned.TEST']), 'app.pinned.test', 'exclude'],
    ['exclude beats include', on(['school.test'], ['mail.school.test']), 'mail.school.test', 'exclude'],
    ['include names it', on(['school.test']), 'www.school.test', 'intercept'],
    ['include does not name it', on(['school.test']), 'other.test', 'not-included'],
    ['IPv4 literal intercepted', on(), '127.0.0.1', 'intercept'],
    ['IPv4 literal has no parent names', on([], ['0.0.1']), '127.0.0.1', 'intercept'],
    ['IPv4 literal excluded by itself', on([], ['127.0.0.1']), '127.0.0.1', 'exclude'],
    ['IPv6 literal in brackets', on([], ['::1']), '[::1]', 'exclude'],
  ];
  for (const [name, opts, host, expected] of cases) t.equal(why(interceptChoice(opts, host)), expected, name);
});

t.test('the shipped list is normalised, unique, and names no wildcard or scheme', async (t) => {
  t.ok(NEVER_INTERCEPT.length >= 10, 'a real list');
  t.equal(new Set(NEVER_INTERCEPT).size, NEVER_INTERCEPT.length, 'no duplicates');
  for (const h of NEVER_INTERCEPT) t.equal(interceptHostKey(h), h, `${h} is already in key form`);
  for (const h of NEVER_INTERCEPT) t.match(h, /^[a-z0-9.-]+$/, `${h} is a plain name`);
  t.ok(Object.isFrozen(NEVER_INTERCEPT), 'frozen: configuration cannot shorten it');
});

t.test('the same options object gives the same answers every time (compiled once)', async (t) => {
  const opts = on(['a.test'], ['b.a.test']);
  for (let i = 0; i < 3; i++) {
    t.equal(why(interceptChoice(opts, 'x.a.test')), 'intercept');
    t.equal(why(interceptChoice(opts, 'c.b.a.test')), 'exclude');
  }
});
