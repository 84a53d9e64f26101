/**
 * settleHeap (appliance/serve/settle-heap.ts): one memory-reducing full GC after the start gives the
 * young generation back (issue 23), without a line on stderr. Real V8 heap, no mocks: a burst of
 * objects that survive a few scavenges grows new space past its 1 MiB start, and the call shrinks it.
 */
import t from 'tap';
import { getHeapSpaceStatistics } from 'node:v8';
import { settleHeap, settleHeapSoon } from '../../appliance/serve/settle-heap.js';

const newSpace = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;

/** Objects kept in batches of 200,000, so each batch survives scavenges and V8 grows new space. */
function burst(): void {
  let keep: object[] = [];
  for (let i = 0; i < 2_000_000; i++) {
    keep.push({ i, s: `x${i}` });
    if (keep.length > 200_000) keep = [];
  }
}

t.test('the young generation grown by a burst is given back, and no warning is emitted', async (t) => {
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  burst();
  const grown = newSpace();
  t.ok(grown > 4 * 1024 * 1024, `new space grew (${(grown / 1048576).toFixed(0)} MiB)`);
  const time = settleHeap();
  t.ok(time.ms >= 0 && time.cpuMs >= 0, 'returns its wall and CPU time');
  const after = newSpace();
  t.ok(after * 4 <= grown, `new space shrunk to ${(after / 1048576).toFixed(0)} MiB`);
  await new Promise((r) => setImmediate(r));
  t.same(warnings.map((w) => w.name), [], 'no ExperimentalWarning');
  t.equal(process.emitWarning.name, 'emitWarning', 'process.emitWarning is the original again');
});

t.test('settleHeapSoon runs it once on an unref’d timer', async (t) => {
  burst();
  const grown = newSpace();
  // The timer is unref'd: this one keeps the test's process up until it has fired.
  const alive = setTimeout(() => {}, 10_000);
  const time = await new Promise<{ ms: number }>((resolve) => {
    const timer = settleHeapSoon(10, resolve);
    t.equal(timer.hasRef(), false, 'does not keep the process alive');
  });
  clearTimeout(alive);
  t.ok(time.ms >= 0, 'done is told the duration');
  t.ok(newSpace() < grown, 'shrunk');
});
