/**
 * ListRefresher against a real HTTPS origin on 127.0.0.1: start-up from the last-good cache or the
 * origin, refresh on a (short) interval, 304s that cost nothing, refused updates with the right
 * reason while the last good version stays in force and on disk, and stop() that leaves nothing
 * running (a child process that uses the refresher exits by itself).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RefreshFailureReason } from '../../audit/metrics.js';
import { validateConfig } from '../../appliance/config.js';
import { ListCache } from '../../appliance/lists/cache.js';
import { signList } from '../../appliance/lists/signature.js';
import { createSourceDispatcher, fetchSource, prepareSources, type PreparedSource } from '../../appliance/lists/source.js';
import { ListRefresher, shrinkRefused, type ListRefresherOptions, type SourceFetcher, type SuccessInfo } from '../../appliance/lists/refresh.js';
import { SafespotError } from '../../policy/errors.js';
import { startOrigin } from '../helpers/origin.js';

const root = mkdtempSync(join(tmpdir(), 'safespot-refresh-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const origin = await startOrigin();
t.teardown(() => origin.close());
const dispatcher = createSourceDispatcher({ caPem: origin.caPem });
t.teardown(() => dispatcher.close());

const fetcher: SourceFetcher = (src, cached, signal) =>
  fetchSource(src, { timeoutMs: 3000, retries: 0, dispatcher, signal, backoffBaseMs: 20, backoffMaxMs: 100 }, cached);

const listOf = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `h${i}-${tag}.blocked.test`).join('\n') + '\n';
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
/** Entry count of a synthetic domains list; a GARBAGE line makes it unparsable. */
function countEntries(body: Uint8Array): number {
  const lines = text(body).split('\n').filter((l) => l.length > 0);
  if (lines.some((l) => l.includes('GARBAGE'))) throw new Error('line 1 is not a domain');
  return lines.length;
}

let dirs = 0;
const newStateDir = (): string => join(root, `state-${dirs++}`);

function sources(lists: Array<Record<string, unknown>>): PreparedSource[] {
  const cfg = validateConfig({ lists: lists.map((l) => ({ category: 'adult', kind: 'domains', ...l })) }, root);
  return prepareSources(cfg.lists);
}

interface Recorder {
  updates: Array<{ id: string; body: string }>;
  failures: Array<{ id: string; reason: RefreshFailureReason; message: string }>;
  successes: Array<{ id: string; info: SuccessInfo }>;
  /** Resolves at the next call of the given kind matching `pred`. */
  next(kind: 'update' | 'failure' | 'success', pred?: (e: unknown) => boolean): Promise<unknown>;
}

function recorder(): Recorder & Pick<ListRefresherOptions, 'onUpdate' | 'onFailure' | 'onSuccess'> {
  const waiters: Array<{ kind: string; pred: (e: unknown) => boolean; resolve: (e: unknown) => void }> = [];
  const emit = (kind: string, e: unknown): void => {
    for (const w of [...waiters]) {
      if (w.kind === kind && w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };
  const r: Recorder & Pick<ListRefresherOptions, 'onUpdate' | 'onFailure' | 'onSuccess'> = {
    updates: [],
    failures: [],
    successes: [],
    next: (kind, pred = () => true) => new Promise((resolve) => waiters.push({ kind, pred, resolve })),
    onUpdate: async (id, body) => {
      const e = { id, body: text(body) };
      r.updates.push(e);
      emit('update', e);
    },
    onFailure: (id, reason, message) => {
      const e = { id, reason, message };
      r.failures.push(e);
      emit('failure', e);
    },
    onSuccess: (id, info) => {
      const e = { id, info };
      r.successes.push(e);
      emit('success', e);
    },
  };
  return r;
}

/** Wait for `p`, failing the test (not hanging) if it never comes. */
async function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('shrink bound', async (t) => {
  const table: Array<[number, number, number, boolean]> = [
    [100, 50, 50, false],
    [100, 49, 50, true],
    [100, 0, 50, true],
    [100, 0, 100, false],
    [0, 0, 10, false],
    [100, 90, 10, false],
    [100, 89, 10, true],
    [100, 1000, 0, false],
    [100, 99, 0, true],
  ];
  for (const [prev, next, pct, refused] of table) t.equal(shrinkRefused(prev, next, pct), refused, `${prev} -> ${next} at ${pct}%`);
});

t.test('start-up: fetch when nothing is cached (wait), then start from the cache without asking the origin', async (t) => {
  const state = newStateDir();
  origin.put('/start.txt', listOf(10, 'start'));
  const srcs = sources([{ id: 'start', source: origin.url('/start.txt'), refresh: '1h' }]);
  const rec1 = recorder();
  const r1 = new ListRefresher({ sources: srcs, fetch: fetcher, cache: ListCache.forStateDir(state), countEntries, startup: 'wait', ...rec1 });
  t.teardown(() => r1.stop());
  const first = await r1.loadInitial();
  t.same(first.missing, []);
  t.equal(first.lists.get('start')?.from, 'source');
  t.equal(text(first.lists.get('start')!.body), listOf(10, 'start'));
  t.equal(first.lists.get('start')?.entries, 10);
  t.same(rec1.updates, [], 'the initial body is returned, not pushed through onUpdate');
  t.equal(rec1.successes[0]?.info.status, 'updated');
  await r1.stop();

  const before = origin.requestsFor('/start.txt').length;
  const rec2 = recorder();
  const r2 = new ListRefresher({ sources: srcs, fetch: fetcher, cache: ListCache.forStateDir(state), countEntries, startup: 'wait', ...rec2 });
  t.teardown(() => r2.stop());
  const second = await r2.loadInitial();
  t.equal(second.lists.get('start')?.from, 'cache');
  t.equal(text(second.lists.get('start')!.body), listOf(10, 'start'));
  t.equal(origin.requestsFor('/start.txt').length, before, 'origin not contacted');
  t.equal(rec2.successes[0]?.info.status, 'cached');
  t.equal(rec2.successes[0]?.info.at, rec1.successes[0]?.info.at, 'last-refresh time is when the origin last confirmed it, not now');
  r2.start();
  const next = r2.status()[0]?.nextRefreshAt;
  t.ok(next !== null && next !== undefined && next > Date.now() + 30 * 60_000, 'a fresh cached copy is not re-fetched at once');
});

t.test('start-up with nothing cached: fail-closed reports it missing at once, then it arrives in the background', async (t) => {
  origin.put('/late.txt', listOf(5, 'late'));
  const rec = recorder();
  const r = new ListRefresher({
    sources: sources([{ id: 'late', source: origin.url('/late.txt'), refresh: '1h' }]),
    fetch: fetcher,
    cache: ListCache.forStateDir(newStateDir()),
    countEntries,
    startup: 'fail-closed',
    ...rec,
  });
  t.teardown(() => r.stop());
  const before = origin.requestsFor('/late.txt').length;
  const initial = await r.loadInitial();
  t.equal(initial.lists.size, 0);
  t.equal(initial.missing[0]?.id, 'late');
  t.equal(initial.missing[0]?.reason, null, 'not a failure, just not fetched yet');
  t.equal(origin.requestsFor('/late.txt').length, before, 'nothing fetched before start()');
  const arrived = rec.next('update');
  r.start();
  const e = (await within(arrived, 'the background fetch')) as { id: string; body: string };
  t.same(e, { id: 'late', body: listOf(5, 'late') });
});

t.test('start-up with nothing cached and the origin down (wait): missing with the reason', async (t) => {
  origin.put('/down.txt', listOf(5, 'down'), { failNext: 100 });
  const rec = recorder();
  const r = new ListRefresher({
    sources: sources([{ id: 'down', source: origin.url('/down.txt') }]),
    fetch: fetcher,
    cache: ListCache.forStateDir(newStateDir()),
    countEntries,
    startup: 'wait',
    ...rec,
  });
  t.teardown(() => r.stop());
  const initial = await r.loadInitial();
  t.equal(initial.lists.size, 0);
  t.equal(initial.missing[0]?.reason, 'http');
  t.match(initial.missing[0]?.message ?? '', /HTTP 500/);
  t.same(rec.failures.map((f) => f.reason), ['http']);
});

t.test('refresh on the interval: 304s cost nothing; a changed body is applied and cached', async (t) => {
  const state = newStateDir();
  origin.put('/tick.txt', listOf(20, 'v1'));
  const rec = recorder();
  const r = new ListRefresher({
    sources: sources([{ id: 'tick', source: origin.url('/tick.txt'), refresh: '200ms' }]),
    fetch: fetcher,
    cache: ListCache.forStateDir(state),
    countEntries,
    ...rec,
  });
  t.teardown(() => r.stop());
  await r.loadInitial();
  r.start();
  // Two refreshes with nothing new: 304s.
  await within(rec.next('success', (e) => (e as { info: SuccessInfo }).info.status === 'not-modified'), 'a first 304');
  await within(rec.next('success', (e) => (e as { info: SuccessInfo }).info.status === 'not-modified'), 'a second 304');
  const conditional = origin.requestsFor('/tick.txt').slice(1);
  t.ok(conditional.length >= 2);
  t.ok(conditional.every((q) => q.status === 304 && q.bytes === 0 && q.headers['if-none-match']), 'conditional, answered 304 with no body');
  t.same(rec.updates, [], 'nothing applied');

  const updated = rec.next('update');
  origin.put('/tick.txt', listOf(25, 'v2'));
  const e = (await within(updated, 'the update')) as { body: string };
  t.equal(e.body, listOf(25, 'v2'));
  await r.stop();
  const cached = await ListCache.forStateDir(state).read('tick');
  t.equal(text(cached!.body), listOf(25, 'v2'), 'the new version is the last good copy on disk');
  t.equal(cached!.meta.entries, 25);
});

t.test('refused updates keep the last good version in force and on disk, each with its reason', async (t) => {
  const state = newStateDir();
  const cache = ListCache.forStateDir(state);
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyFile = join(root, 'refresh.pub.pem');
  writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const good = listOf(100, 'good');
  let version = 1;
  const publish = (body: string, opts: Parameters<typeof origin.put>[2] = {}, sigOf = body): void => {
    origin.put('/guarded.txt', body, opts);
    origin.put('/guarded.txt.sig', signList(Buffer.from(sigOf), 'guarded', version++, privateKey));
  };
  /** A body with a statement of our choosing: another list's name, or an old version. */
  const publishAs = (body: string, name: string, v: number): void => {
    origin.put('/guarded.txt', body);
    origin.put('/guarded.txt.sig', signList(Buffer.from(body), name, v, privateKey));
  };
  publish(good);
  const rec = recorder();
  const applied: string[] = [];
  let refuseCompile = false;
  const r = new ListRefresher({
    sources: sources([{ id: 'guarded', source: origin.url('/guarded.txt'), publicKey: keyFile, maxShrinkPercent: 50, maxBytes: 100_000 }]),
    fetch: fetcher,
    cache,
    countEntries,
    ...rec,
    onUpdate: async (id, body) => {
      if (refuseCompile) throw new SafespotError('ERR_LIST_INVALID', 'list "guarded": more than half of the lines are malformed');
      applied.push(text(body));
      await rec.onUpdate(id, body, { entries: 0, sha256: '', fetchedAt: 0 });
    },
  });
  t.teardown(() => r.stop());
  const initial = await r.loadInitial();
  t.equal(initial.lists.get('guarded')?.entries, 100);
  const goodSha = createHash('sha256').update(good).digest('hex');

  const cases: Array<[string, () => void, RefreshFailureReason]> = [
    ['shrunk to 40 of 100 entries', () => publish(listOf(40, 'small')), 'shrink'],
    ['origin answers 500', () => publish(listOf(100, 'x'), { failNext: 1 }), 'http'],
    ['unparsable body', () => publish(`GARBAGE\n${listOf(100, 'y')}`), 'invalid'],
    ['signature of other bytes', () => publish(listOf(100, 'z'), {}, 'other bytes'), 'signature'],
    ['an older signed version (a rollback)', () => publishAs(listOf(100, 'old'), 'guarded', 0), 'signature'],
    ['another list\'s signed statement (a swap)', () => publishAs(listOf(100, 'swap'), 'other-list', 1000), 'signature'],
    ['over maxBytes', () => publish(listOf(5000, 'big')), 'too_large'],
    ['truncated body', () => publish(listOf(100, 't'), { truncateBy: 50 }), 'http'],
    ['slow trickle', () => publish(listOf(300, 's'), { trickle: { bytes: 20, everyMs: 40 } }), 'timeout'],
  ];
  for (const [name, setup, reason] of cases) {
    setup();
    const [outcome] = await r.refreshNow();
    t.equal(outcome?.status, 'failed', `${name}: refused`);
    t.equal(outcome?.reason, reason, `${name}: reason ${reason}`);
    t.equal(rec.failures.at(-1)?.reason, reason, `${name}: onFailure told`);
    t.equal(r.status()[0]?.sha256, goodSha, `${name}: last good still in force`);
    const onDisk = await cache.read('guarded');
    t.equal(onDisk?.meta.sha256, goodSha, `${name}: last good still on disk`);
  }
  t.same(applied, [], 'no refused body reached onUpdate');
  t.equal(r.status()[0]?.consecutiveFailures, cases.length);

  refuseCompile = true;
  publish(listOf(100, 'nocompile'));
  const [o] = await r.refreshNow();
  t.equal(o?.reason, 'invalid', 'a throw from onUpdate refuses the update');
  t.equal((await cache.read('guarded'))?.meta.sha256, goodSha, 'and it is not cached');

  refuseCompile = false;
  const better = listOf(120, 'better');
  publish(better);
  const [ok] = await r.refreshNow();
  t.equal(ok?.status, 'updated');
  t.same(applied, [better]);
  t.equal(r.status()[0]?.consecutiveFailures, 0);
  t.equal(text((await cache.read('guarded'))!.body), better);
  const accepted = version - 1;
  t.equal((await cache.read('guarded'))!.meta.signedVersion, accepted, 'the accepted signed version is on disk');

  // After a restart the accepted version is still the floor: an older signed copy is refused.
  await r.stop();
  const again = new ListRefresher({ sources: sources([{ id: 'guarded', source: origin.url('/guarded.txt'), publicKey: keyFile, maxShrinkPercent: 50, maxBytes: 100_000 }]), fetch: fetcher, cache: ListCache.forStateDir(state), countEntries, ...recorder() });
  t.teardown(() => again.stop());
  await again.loadInitial();
  publishAs(listOf(120, 'rolled-back'), 'guarded', accepted - 1);
  const [back] = await again.refreshNow();
  t.equal(back?.reason, 'signature', 'after a restart, an older signed version is refused');
  t.equal(text((await cache.read('guarded'))!.body), better, 'the last good copy stays');
});

t.test('a file list whose file breaks starts from its cached copy', async (t) => {
  const state = newStateDir();
  const path = join(root, 'local-list.txt');
  writeFileSync(path, listOf(8, 'file'));
  const srcs = sources([{ id: 'local', source: path }]);
  const mk = (rec: ReturnType<typeof recorder>) => new ListRefresher({ sources: srcs, fetch: fetcher, cache: ListCache.forStateDir(state), countEntries, ...rec });
  const r1 = mk(recorder());
  const a = await r1.loadInitial();
  t.equal(a.lists.get('local')?.from, 'source');
  await r1.stop();
  unlinkSync(path);
  const rec = recorder();
  const r2 = mk(rec);
  const b = await r2.loadInitial();
  t.equal(b.lists.get('local')?.from, 'cache');
  t.equal(text(b.lists.get('local')!.body), listOf(8, 'file'));
  t.same(rec.failures.map((f) => f.reason), ['read']);
  await r2.stop();
});

t.test('stop(): no refresh after it, an in-flight fetch is aborted', async (t) => {
  origin.put('/stop.txt', listOf(10, 'stop'));
  const rec = recorder();
  const r = new ListRefresher({
    sources: sources([{ id: 'stop', source: origin.url('/stop.txt'), refresh: '200ms' }]),
    fetch: fetcher,
    cache: ListCache.forStateDir(newStateDir()),
    countEntries,
    ...rec,
  });
  await r.loadInitial();
  r.start();
  await within(rec.next('success'), 'one interval refresh');
  const seen = origin.requestsFor('/stop.txt').length;
  const started = new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (origin.requestsFor('/stop.txt').slice(seen).some((q) => q.bytes > 0 && !q.completed)) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
  });
  // Make the next request unconditional so the trickle is served (a 304 would answer at once).
  origin.configure('/stop.txt', { trickle: { bytes: 5, everyMs: 100 }, etag: false });
  await within(started, 'a trickling fetch in flight');
  await r.stop();
  t.same(r.status().map((s) => s.nextRefreshAt), [null], 'no refresh scheduled');
  const count = origin.requestsFor('/stop.txt').length;
  await new Promise((res) => setTimeout(res, 1000));
  t.equal(origin.requestsFor('/stop.txt').length, count, 'no request after stop()');
  t.equal(origin.requestsFor('/stop.txt').at(-1)?.completed, false, 'the in-flight trickle was cut');
  t.same(rec.failures, [], 'a stop is not a failure');
});

t.test('a process that uses the refresher exits by itself after stop()', async (t) => {
  origin.put('/child.txt', listOf(4, 'child'));
  const dist = resolve(import.meta.dirname, '..', '..', 'appliance');
  const script = `
    import { ListRefresher } from ${JSON.stringify(join(dist, 'lists/refresh.js'))};
    import { ListCache } from ${JSON.stringify(join(dist, 'lists/cache.js'))};
    import { createSourceDispatcher, fetchSource, prepareSource } from ${JSON.stringify(join(dist, 'lists/source.js'))};
    const dispatcher = createSourceDispatcher({ caPem: process.env.ORIGIN_CA });
    const src = prepareSource({ id: 'child', category: 'adult', kind: 'domains', source: process.env.ORIGIN_URL, refresh: 200,
      overridable: true, mode: 'enforce', maxBytes: 1e6, maxShrinkPercent: 50 });
    let refreshes = 0;
    const r = new ListRefresher({
      sources: [src], cache: new ListCache(process.env.CACHE_DIR),
      fetch: (s, c, signal) => fetchSource(s, { timeoutMs: 3000, retries: 0, dispatcher, signal }, c),
      countEntries: (b) => b.length, onUpdate: async () => {},
      onSuccess: async () => {
        if (++refreshes === 3) { await r.stop(); await dispatcher.close(); clearInterval(keepAlive); console.log('stopped'); }
      },
    });
    // Stands in for serve's listeners, which keep the process alive; the refresher's own timers are unref'd.
    const keepAlive = setInterval(() => {}, 1000);
    await r.loadInitial();
    r.start();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ORIGIN_CA: origin.caPem, ORIGIN_URL: origin.url('/child.txt'), CACHE_DIR: join(newStateDir(), 'lists') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const code = await within(new Promise<number | null>((res) => child.on('exit', (c) => res(c))), 'the child to exit on its own', 20_000);
  t.equal(code, 0, out);
  t.match(out, /stopped/);
});

t.test('wired end to end: refresher → compile in a worker thread → atomic swap; decisions follow the origin', async (t) => {
  const { CompileWorker } = await import('../../appliance/lists/compile-worker.js');
  const { PolicyHolder } = await import('../../policy/policy.js');
  const { parseUrlList } = await import('../../policy/lists.js');
  // inlineBytes 0: these lists are small, and this test is about the worker thread's path.
  const compiler = new CompileWorker({ inlineBytes: 0 });
  t.teardown(() => compiler.close());
  const holder = new PolicyHolder();
  // An image hash list rides along, so the test also shows image parts crossing the thread.
  const imageDigest = createHash('sha256').update('synthetic image bytes').digest('hex');
  const input = (body: Uint8Array) => ({
    lists: [
      { id: 'wired', category: 'adult', kind: 'domains', text: body },
      { id: 'wired-images', category: 'csam', kind: 'sha256', text: `${imageDigest}\n` },
    ],
  });

  origin.put('/wired.txt', 'one.blocked.test\nshared.blocked.test\n');
  const rec = recorder();
  const r = new ListRefresher({
    sources: sources([{ id: 'wired', source: origin.url('/wired.txt'), refresh: '200ms', maxShrinkPercent: 100 }]),
    fetch: fetcher,
    cache: ListCache.forStateDir(newStateDir()),
    countEntries: (body) => parseUrlList('domains', body, 'wired').report.entries,
    ...rec,
    onUpdate: async (id, body, info) => {
      holder.swap(await compiler.compile(input(body)));
      await rec.onUpdate(id, body, info);
    },
  });
  t.teardown(() => r.stop());
  const initial = await r.loadInitial();
  holder.swap(await compiler.compile(input(initial.lists.get('wired')!.body)));
  const verdict = (host: string) => holder.decide({ kind: 'host', host }).action;
  t.equal(verdict('one.blocked.test'), 'block');
  t.equal(verdict('two.blocked.test'), 'allow');
  t.equal(verdict('sub.shared.blocked.test'), 'block', 'a domains entry covers subdomains');
  const image = (sha256: string) => holder.current!.decideImage({ md5: '0'.repeat(32), sha1: '0'.repeat(40), sha256 }).action;
  t.equal(image(imageDigest), 'block', 'the image list compiled in the worker matches');
  t.equal(image('1'.repeat(64)), 'allow');
  const v1 = holder.current!.version;

  r.start();
  const updated = rec.next('update');
  origin.put('/wired.txt', 'two.blocked.test\nshared.blocked.test\n');
  await within(updated, 'the update');
  t.equal(verdict('one.blocked.test'), 'allow', 'entry removed upstream is gone');
  t.equal(verdict('two.blocked.test'), 'block', 'entry added upstream blocks');
  t.not(holder.current!.version, v1, 'a new policy version');

  await t.rejects(
    compiler.compile({ lists: [{ id: 'x', category: 'adult', kind: 'domains', text: 'a.test\n' }], profiles: [{ name: 'p', clients: ['10.0.0.0/8'], lists: ['missing'] }] }),
    { name: 'SafespotError', code: 'ERR_CONFIG_INVALID' },
    'a compile error crosses the thread with its code',
  );
  t.ok(compiler.lastStats && compiler.lastStats.ms >= 0, 'compile time recorded');
  // The thread ends when no job is left (its heap, several times the policy's size, goes with it),
  // and the next job starts another.
  t.equal(compiler.running, false, 'no worker thread is kept once the jobs are done');
  t.equal(await compiler.count({ kind: 'domains', body: Buffer.from('a.test\nb.test\n#c\n'), listId: 'x', pdqMinQuality: 50 }), 2, 'a list is counted in a new worker');
  t.equal(compiler.running, false, 'which is gone again');
  await t.rejects(compiler.count({ kind: 'md5', body: Buffer.from('not a hash\n'.repeat(5)), listId: 'x', pdqMinQuality: 50 }), { name: 'SafespotError' }, 'a list that does not parse: the parser\'s error');
});
