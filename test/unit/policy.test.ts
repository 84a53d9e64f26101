/**
 * compile + decide: allowlist against overridable and csam lists, monitor against enforce,
 * profiles by client network (IPv4, IPv6, IPv4-mapped), caches dropped on swap, and the Safe
 * Browsing expression vectors through a hashed list.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { Subject } from '../../policy/decision.js';
import { compilePolicy, PolicyHolder, type CompileInput } from '../../policy/policy.js';
import { sha256Hex } from '../../policy/sha256.js';
import { SAFE_BROWSING_VECTORS } from '../helpers/vectors.js';

const hashes = (...exprs: string[]): string => exprs.map((e) => sha256Hex(e)).join('\n') + '\n';

const INPUT: CompileInput = {
  lists: [
    // overridable: true is ignored for csam.
    { id: 'hotline', category: 'csam', kind: 'hashed-urls', overridable: true, text: hashes('made-up-abuse.test/gallery/1.html', 'both.test/') },
    { id: 'adult', category: 'adult', kind: 'domains', text: 'adult.test\n0.0.0.0 both.test\nsix.a.b.c.d.test\n' },
    { id: 'pages', category: 'malware', kind: 'urls', text: 'http://shop.test/bad/page?id=7\nhttp://shop.test/dir/\n' },
    { id: 'watch', category: 'bypass', kind: 'domains', mode: 'monitor', text: 'vpn.test\nadult.test\n' },
    { id: 'images', category: 'csam', kind: 'md5', text: `${createHash('md5').update('made-up image bytes').digest('hex')}\n` },
  ],
  allow: ['good.adult.test', 'https://shop.test/bad/page?id=7', 'made-up-abuse.test'],
  profiles: [
    { name: 'staff', clients: ['10.1.0.0/16', 'fd00:1::/32'], lists: ['hotline'], allow: ['vpn.test'] },
    { name: 'kids', clients: ['192.168.5.0/24'], safeSearch: true, intercept: { enabled: true, include: [], exclude: ['bank.test'] } },
  ],
  safeSearch: false,
};

const policy = compilePolicy(INPUT);

t.test('decisions (default profile)', async (t) => {
  const table: Array<[Subject, string, string | null, string]> = [
    [{ kind: 'host', host: 'adult.test' }, 'block', 'adult', 'domain'],
    [{ kind: 'host', host: 'WWW.Adult.Test.' }, 'block', 'adult', 'domain'],
    [{ kind: 'host', host: 'good.adult.test' }, 'allow', 'adult', 'allowlist'],
    [{ kind: 'host', host: 'x.good.adult.test' }, 'allow', 'adult', 'allowlist'],
    [{ kind: 'host', host: 'both.test' }, 'block', 'hotline', 'hashed-url'], // csam wins among blocks
    [{ kind: 'host', host: 'vpn.test' }, 'monitor', 'watch', 'domain'],
    [{ kind: 'host', host: 'nothing.test' }, 'allow', null, 'none'],
    [{ kind: 'host', host: 'x.y.six.a.b.c.d.test' }, 'block', 'adult', 'domain'], // deeper than 5 labels
    [{ kind: 'url', url: 'http://made-up-abuse.test/gallery/1.html' }, 'block', 'hotline', 'hashed-url'], // allow cannot override csam
    [{ kind: 'url', url: 'https://www.made-up-abuse.test/gallery/1.html?x=1#f' }, 'block', 'hotline', 'hashed-url'],
    [{ kind: 'url', url: 'http://made-up-abuse.test/gallery/2.html' }, 'allow', null, 'none'],
    [{ kind: 'url', url: 'http://shop.test/bad/page?id=7' }, 'allow', 'pages', 'allowlist'],
    [{ kind: 'url', url: 'http://shop.test/bad/page?id=8' }, 'allow', null, 'none'],
    [{ kind: 'url', url: 'http://shop.test/dir/sub/x.html' }, 'block', 'pages', 'url'],
    [{ kind: 'url', url: 'http://adult.test/anything' }, 'block', 'adult', 'domain'], // enforce beats monitor
    [{ kind: 'url', url: 'http://vpn.test/' }, 'monitor', 'watch', 'domain'],
    [{ kind: 'url', url: 'http://[::1' }, 'block', null, 'none'],
    [{ kind: 'host', host: 'bad host!' }, 'block', null, 'none'],
  ];
  for (const [subject, action, list, rule] of table) {
    const d = policy.decide(subject);
    t.match(d, { action, list, rule }, JSON.stringify(subject));
    t.notMatch(d.reason, /made-up-abuse|gallery/, 'reason never holds list text');
  }
  t.equal(policy.decideUrl('http://[::1').reason, 'URL could not be canonicalised');
  t.equal(policy.decideHost('shop.test').action, 'allow', 'host-only: a path entry does not block the host');
});

t.test('profiles by client network', async (t) => {
  const table: Array<[string | undefined, string]> = [
    [undefined, 'default'],
    ['10.1.2.3', 'staff'],
    ['::ffff:10.1.9.9', 'staff'],
    ['fd00:1::5', 'staff'],
    ['fd00:2::5', 'default'],
    ['192.168.5.77', 'kids'],
    ['192.168.6.1', 'default'],
    ['not an address', 'default'],
  ];
  for (const [client, name] of table) t.equal(policy.profileFor(client).name, name, String(client));
  t.same(policy.profileFor('192.168.5.1'), { name: 'kids', safeSearch: true, intercept: { enabled: true, include: [], exclude: ['bank.test'] } });
  t.equal(policy.profileFor().safeSearch, false);
  // staff: only the hotline list applies, and its own allow entry adds to the top level's.
  t.equal(policy.decideHost('adult.test', '10.1.0.1').action, 'allow');
  t.equal(policy.decideHost('adult.test', '10.1.0.1').rule, 'none');
  t.equal(policy.decideHost('both.test', '10.1.0.1').list, 'hotline');
  t.equal(policy.decideHost('vpn.test', '10.1.0.1').action, 'allow');
  t.equal(policy.decideHost('vpn.test', '192.168.5.1').action, 'monitor', 'the staff allow entry does not apply to kids');
  t.equal(policy.decideHost('adult.test', '192.168.5.1').action, 'block');
});

t.test('lists table (URL lists, then image lists)', async (t) => {
  t.same(policy.lists.map((l) => [l.id, l.entries, l.overridable, l.mode]), [
    ['hotline', 2, false, 'enforce'],
    ['adult', 3, true, 'enforce'],
    ['pages', 2, true, 'enforce'],
    ['watch', 2, true, 'monitor'],
    ['images', 1, false, 'enforce'],
  ]);
  t.same(policy.parts.meta.images?.map((s) => s.id), ['images']);
  t.match(policy.version, /^[0-9a-f]{16}$/);
  t.equal(compilePolicy(INPUT).version, policy.version, 'version is a content hash');
  const other = compilePolicy({ ...INPUT, allow: [] });
  t.not(other.version, policy.version);
});

t.test('cached host decisions are dropped by a swap', async (t) => {
  const holder = new PolicyHolder();
  t.equal(holder.decide({ kind: 'host', host: 'adult.test' }).rule, 'no-policy', 'fail closed without a policy');
  t.equal(holder.decide({ kind: 'host', host: 'adult.test' }).action, 'block');
  holder.swap(compilePolicy({ lists: [{ id: 'a', category: 'adult', kind: 'domains', text: 'adult.test\n' }] }));
  t.equal(holder.decide({ kind: 'host', host: 'adult.test' }).action, 'block');
  t.equal(holder.decide({ kind: 'host', host: 'adult.test' }).action, 'block', 'second time from the cache');
  holder.swap(compilePolicy({ lists: [{ id: 'a', category: 'adult', kind: 'domains', text: 'other.test\n' }] }));
  t.equal(holder.decide({ kind: 'host', host: 'adult.test' }).action, 'allow', 'new policy, no stale cache');
});

t.test('cache stays bounded and correct past its capacity', async (t) => {
  const p = compilePolicy({ lists: [{ id: 'a', category: 'adult', kind: 'domains', text: 'adult.test\n' }], cacheSize: 4 });
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 20; i++) t.equal(p.decideHost(`h${i}.test`).action, 'allow');
    t.equal(p.decideHost('x.adult.test').action, 'block');
  }
});

t.test('Safe Browsing expression vectors through a hashed list', async (t) => {
  const vectors = (JSON.parse(readFileSync(SAFE_BROWSING_VECTORS, 'utf8')) as Array<{
    kind: string;
    url: string;
    derived_sha256_hex: Record<string, string>;
  }>).filter((v) => v.kind === 'expressions');
  t.ok(vectors.length >= 3);
  for (const v of vectors) {
    for (const [expr, hex] of Object.entries(v.derived_sha256_hex)) {
      // Each expression alone, as a full hash and as a 4-byte prefix, blocks the vector's URL.
      for (const entry of [hex, hex.slice(0, 8)]) {
        const p = compilePolicy({ lists: [{ id: 'h', category: 'csam', kind: 'hashed-urls', text: `${entry}\n` }] });
        t.equal(p.decideUrl(v.url).action, 'block', `${v.url} via ${expr} (${entry.length / 2} bytes)`);
      }
    }
  }
});

t.test('bad allow entries and unknown profile lists are configuration errors', async (t) => {
  t.throws(() => compilePolicy({ lists: [], allow: ['not a domain'] }), { code: 'ERR_CONFIG_INVALID' });
  t.throws(() => compilePolicy({ lists: [], profiles: [{ name: 'p', clients: ['10.0.0.0/8'], lists: ['nope'] }] }), { code: 'ERR_CONFIG_INVALID' });
  t.throws(() => compilePolicy({ lists: [], profiles: [{ name: 'p', clients: ['10.0.0.0/33'] }] }), { code: 'ERR_CONFIG_INVALID' });
  t.throws(() => compilePolicy({ lists: [{ id: 'x', category: 'adult', kind: 'domains', text: '%%%\n' }] }), { code: 'ERR_LIST_INVALID' });
});

t.test('every refused list is reported, not only the first', async (t) => {
  const garbage = '%% not a list entry %%\n'.repeat(10);
  const caught = ((): { code?: string; message?: string; details?: readonly string[] } | null => {
    try {
    compilePolicy({
      lists: [
        { id: 'bad-one', category: 'adult', kind: 'domains', text: garbage },
        { id: 'fine', category: 'adult', kind: 'domains', text: 'ok.test\n' },
        { id: 'bad-two', category: 'csam', kind: 'hashed-urls', text: garbage },
        { id: 'bad-three', category: 'csam', kind: 'sha256', text: garbage },
      ],
    });
      return null;
    } catch (err) {
      return err as { code?: string; message?: string; details?: readonly string[] };
    }
  })();
  t.equal(caught?.code, 'ERR_LIST_INVALID');
  t.equal(caught?.message, '3 lists refused');
  const text = (caught?.details ?? []).join('\n');
  for (const id of ['bad-one', 'bad-two', 'bad-three']) t.match(text, `"${id}"`, `${id} is named`);
  t.notMatch(text, /"fine"/, 'the good list is not');
  t.notMatch(text, /not a list entry/, 'no list content in the error');
});
