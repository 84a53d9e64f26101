import t from 'tap';
import { validateConfig } from '../../appliance/config.js';
import { defaultConfig } from '../../appliance/default-config.js';
import { parseDuration } from '../../appliance/duration.js';
import { SafespotError } from '../../policy/errors.js';

function problems(doc: unknown): string[] {
  try {
    validateConfig(doc, '/etc/safespot');
  } catch (err) {
    if (err instanceof SafespotError && err.code === 'ERR_CONFIG_INVALID') return [...err.details];
    throw err;
  }
  return [];
}

t.test('an empty document is valid and gets the defaults', async (t) => {
  const c = validateConfig({}, '/etc/safespot');
  t.same(c.listeners, {});
  t.equal(c.admin?.port, 9090);
  t.equal(c.upstream.allowPrivate, false);
  t.same(c.upstream.ports, [443, 80]);
  t.equal(c.tls.clientHelloTimeout, 10_000);
  t.equal(c.tls.noSni, 'block');
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.upstream) && Object.isFrozen(c.clients));
  t.equal(c.journal.path, '/etc/safespot/safespot-journal.db', 'relative paths resolve against the config folder');
});

t.test('every problem is reported with its path, not just the first', async (t) => {
  const found = problems({
    listeners: { forward: { host: '127.0.0.1', port: 99999 }, bogus: {} },
    clients: ['10.0.0.0/33', 'not-a-net'],
    lists: [
      { id: 'a', category: 'adult', kind: 'domains', source: 'a.txt' },
      { id: 'a', category: 'adult', kind: 'nonsense', source: 'b.txt', refresh: 'soon' },
    ],
    profiles: [{ name: 'staff', clients: ['10.1.0.0/16'], lists: ['missing'] }],
    unknownTopLevel: 1,
  });
  const text = found.join('\n');
  t.match(text, /listeners\.forward\.port/);
  t.match(text, /listeners.*bogus/);
  t.match(text, /clients\.0: .*prefix length/);
  t.match(text, /clients\.1: .*not an IP network/);
  t.match(text, /lists\.1\.kind/);
  t.match(text, /lists\.1\.refresh: "soon" is not a duration/);
  t.match(text, /unknownTopLevel/);
  t.ok(found.length >= 7, `found ${found.length} problems:\n${text}`);
});

t.test('cross-field checks: duplicate ids, profiles naming unknown lists', async (t) => {
  const found = problems({
    lists: [
      { id: 'x', category: 'adult', kind: 'domains', source: 'a.txt' },
      { id: 'x', category: 'csam', kind: 'hashed-urls', source: 'b.txt' },
    ],
    profiles: [{ name: 'staff', clients: ['10.1.0.0/16'], lists: ['x', 'nope'] }],
  });
  t.match(found.join('\n'), /lists\.1\.id: duplicate list id "x"/);
  t.match(found.join('\n'), /profiles\.0\.lists\.1: no list has id "nope"/);
});

t.test('durations', async (t) => {
  const table: Array<[string, number | null]> = [
    ['250ms', 250], ['90s', 90_000], ['15m', 900_000], ['6h', 21_600_000], ['1d', 86_400_000], ['1.5s', 1500],
    ['', null], ['10', null], ['-1s', null], ['1w', null], ['s', null], [' 5s ', 5000],
  ];
  for (const [text, ms] of table) t.equal(parseDuration(text), ms, JSON.stringify(text));
});

t.test('the embedded default validates and names the demo lists', async (t) => {
  const c = defaultConfig();
  t.same(c.listeners.forward, { host: '127.0.0.1', port: 3128 });
  t.equal(c.admin?.port, 9090);
  t.same(c.lists.map((l) => l.id), ['demo-hotline', 'demo-adult', 'demo-malware', 'demo-bypass', 'encrypted-dns']);
  for (const l of c.lists.slice(0, 4)) t.match(l.source, /appliance\/demo\/[a-z]+\.txt$/);
  // The shipped public DoH/DoT/DoQ endpoints (issue 18), a builtin source left as it is (not made a path).
  t.same(c.lists[4], { ...c.lists[4], category: 'bypass', kind: 'domains', source: 'builtin:encrypted-dns' });
});
