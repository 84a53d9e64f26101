/**
 * CompileWorker runs small jobs on the main thread (issue 23: a worker thread is an isolate of its
 * own, ~10 MiB at the start's peak and ~4 MiB left behind for the embedded default's lists): list
 * bodies of at most INLINE_BYTES in all, and only when no worker job is out, so results still come
 * in the order the jobs were given. Both paths give the same policy (same version, same verdicts),
 * and a compile error is the same SafespotError either way. Real worker threads, real compiles.
 */
import t, { type Test } from 'tap';
import { CompileWorker, INLINE_BYTES } from '../../appliance/lists/compile-worker.js';

const small = (hosts: string[]) => ({ lists: [{ id: 'adult', category: 'adult', kind: 'domains', text: Buffer.from(hosts.map((h) => `${h}\n`).join('')) }] });
const big = () => {
  const lines = Array.from({ length: 30_000 }, (_, i) => `big${i}.blocked.test\n`).join('');
  return { lists: [{ id: 'adult', category: 'adult', kind: 'domains', text: Buffer.from(`first.test\n${lines}`) }] };
};

/** A compiler with the inline path (c) and one that sends every job to its worker (w), closed at the end. */
function pair(t: Test): { c: CompileWorker; w: CompileWorker } {
  const c = new CompileWorker();
  const w = new CompileWorker({ inlineBytes: 0 });
  t.teardown(async () => {
    await c.close();
    await w.close();
  });
  return { c, w };
}

t.test('a small compile runs inline, a big one in the worker, with the same policy as the worker would make', async (t) => {
  const { c, w } = pair(t);
  t.ok(big().lists[0]!.text.byteLength > INLINE_BYTES, 'the big input is above the bound');
  const input = small(['a.test', 'b.test']);
  const p = await c.compile(input);
  t.equal(c.inlineJobs, 1, 'compiled on the main thread');
  t.equal(c.starts, 0, 'no worker thread started');
  const q = await w.compile(input);
  t.equal(w.starts, 1, 'the other compiler used its worker');
  t.equal(p.version, q.version, 'the same policy version both ways');
  for (const host of ['a.test', 'www.b.test', 'c.test']) t.equal(p.decideHost(host).action, q.decideHost(host).action, host);
  t.equal(p.decideHost('www.a.test').action, 'block');

  t.equal(await c.count({ kind: 'domains', body: Buffer.from('a.test\n#x\nb.test\n'), listId: 'adult', pdqMinQuality: 50 }), 2, 'a small count inline');
  t.equal(c.inlineJobs, 2);
  t.equal(c.starts, 0);

  const b = await c.compile(big());
  t.equal(c.starts, 1, 'a big compile starts the worker');
  t.equal(b.decideHost('big29999.blocked.test').action, 'block');
  t.equal(c.running, false, 'which ends when done');
});

t.test('while a worker job is out, a small job waits its turn in the worker (order kept)', async (t) => {
  const c = new CompileWorker();
  t.teardown(() => c.close());
  const order: string[] = [];
  const first = c.compile(big()).then((p) => (order.push('big'), p));
  const second = c.compile(small(['late.test'])).then((p) => (order.push('small'), p));
  const [b, s] = await Promise.all([first, second]);
  t.same(order, ['big', 'small'], 'results in the order given');
  t.equal(c.inlineJobs, 0, 'the small job did not jump the queue');
  t.equal(b.decideHost('first.test').action, 'block');
  t.equal(s.decideHost('late.test').action, 'block');
  t.equal(s.decideHost('first.test').action, 'allow', 'the later policy is the small one');
});

t.test('an inline compile error is the same SafespotError as the worker gives', async (t) => {
  const { c, w } = pair(t);
  const bad = { lists: [{ id: 'x', category: 'adult', kind: 'domains', text: 'a.test\n' }], profiles: [{ name: 'p', clients: ['10.0.0.0/8'], lists: ['missing'] }] };
  const inline = await c.compile(bad).then(() => null, (e: unknown) => e as { name: string; code: string; message: string });
  const worker = await w.compile(bad).then(() => null, (e: unknown) => e as { name: string; code: string; message: string });
  t.equal(c.inlineJobs, 1);
  t.match(inline, { name: 'SafespotError', code: 'ERR_CONFIG_INVALID' });
  t.equal(inline?.message, worker?.message, 'the same message');
  await t.rejects(c.count({ kind: 'md5', body: Buffer.from('not a hash\n'.repeat(5)), listId: 'x', pdqMinQuality: 50 }), { name: 'SafespotError' }, 'a list that does not parse');
  await c.close();
  await t.rejects(c.compile(small(['a.test'])), { name: 'SafespotError', code: 'ERR_INTERNAL' }, 'closed: refused, not compiled inline');
});
