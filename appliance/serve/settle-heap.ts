/**
 * Give back the start's garbage once the start is done (issue 23: idle memory on a small box).
 *
 * A start parses the config, builds the metrics and schemas, compiles or loads the lists: a burst of
 * short-lived objects that grows V8's young generation to its 16 MiB maximum and leaves it there, and
 * V8's own memory reducer shrinks it only once a later full GC happens to start it (in a quiet serve,
 * minutes later, or never). One memory-reducing full GC soon after the start gives the ~6 MiB back
 * at once (BENCHMARKS.md, "Idle memory"); a serve under load grows the young generation again as it
 * needs, so throughput is what it was.
 *
 * The GC: `v8.queryObjects` is documented to search the heap "after a full garbage collection", which
 * V8 runs as its memory-reducing collection (all available garbage, young generation shrunk), the
 * one `--expose-gc`'s `gc()` does not do. It looks for instances of a class nothing ever makes, so
 * its answer is 0 and nothing else is done. It runs on the main thread, once, a second after the start
 * (tens of ms for the embedded default's heap, before any guest is likely to be there); never on a path
 * a request takes. Node marks queryObjects experimental and says so once on stderr, which would put
 * a line that is not JSON among the log lines: that one synchronous call runs with process.emitWarning
 * silenced. Should a later Node change what the call does, nothing but this memory is lost, and
 * test/unit/settle-heap.test.ts fails (it asserts the young generation shrinks).
 */
import { queryObjects } from 'node:v8';

/** Never instantiated: queryObjects' search finds nothing and returns a count. */
class StartGarbage {}

/** What the GC took: wall time and the process's CPU time (ms), for the debug log. */
export interface SettleTime {
  readonly ms: number;
  readonly cpuMs: number;
}

/** Run the memory-reducing GC now. */
export function settleHeap(): SettleTime {
  const start = performance.now();
  const cpu = process.cpuUsage();
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    queryObjects(StartGarbage);
  } finally {
    process.emitWarning = emitWarning;
  }
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - start, cpuMs: (used.user + used.system) / 1000 };
}

/** Run settleHeap once after `delayMs` (the timer never keeps the process alive). */
export function settleHeapSoon(delayMs: number, done?: (time: SettleTime) => void): NodeJS.Timeout {
  const t = setTimeout(() => done?.(settleHeap()), delayMs);
  t.unref();
  return t;
}
