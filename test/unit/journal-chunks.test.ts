/**
 * The journal's timer-driven flush writes a large queue in chunks of FLUSH_CHUNK_ROWS, one
 * transaction each, and lets the event loop turn between chunks (audit/journal-writer.ts); an
 * explicit flush() or close() still writes everything before it returns; a row about to outlive the
 * loss window makes the rest go at once. No sockets: a journal file in a temp dir and a second,
 * read-only connection that sees only committed rows. The journal's clock is a fake one, so which
 * path a flush takes never depends on how fast this machine is.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  FLUSH_CHUNK_ROWS,
  FLUSH_INTERVAL_MS,
  LOSS_WINDOW_MS,
  MAX_QUEUE,
  RUSH_AFTER_MS,
  openJournal,
  type Journal,
  type JournalOptions,
} from '../../audit/journal.js';

const N = 12_000;
const T0 = Date.UTC(2026, 0, 1);
const END = Number.MAX_SAFE_INTEGER;

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-journal-chunks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A journal on a fake clock (ms) that the test moves, plus a reader that sees only commits. */
function setup(t: Test, opts: Partial<JournalOptions> = {}) {
  const clock = { ms: T0 };
  const path = join(tempDir(t), 'journal.db');
  // One row per event (the per-minute budget that aggregates a storm has its own tests).
  const j = openJournal({ path, retentionDays: 400, recordUrls: false, recordClients: false, warn: () => {}, now: () => clock.ms, eventsPerMinute: 1_000_000, ...opts });
  const reader = openJournal({ path, retentionDays: 400, recordUrls: false, recordClients: false, readOnly: true });
  t.teardown(() => {
    reader.close();
    j.close();
  });
  const committed = (): number => reader.count({ from: 0, to: END, kind: 'verdict', by: [] })[0]?.n ?? 0;
  return { clock, j, reader, committed };
}

function queue(j: Journal, n: number, from = 0): void {
  for (let i = from; i < from + n; i++) j.record({ kind: 'verdict', action: 'block', category: 'adult', list: 'demo', detail: String(i) });
}

interface Sample {
  written: number;
  pending: number;
  committed: number;
}

/**
 * A setImmediate callback, registered before the flush starts and again on every turn, notes each
 * change of stats().written and what the reader sees at that moment: it runs between two chunks
 * only if the flush gave the event loop a turn there. `onChange` may act on the journal (flush,
 * close, move the clock). Resolves once nothing is pending.
 *
 * Call it right after queueing, with `queuedAt` = performance.now() before the first record(): it
 * rests (no CPU) for the first half of FLUSH_INTERVAL_MS, whose timer was armed at that first
 * record() and so always expires after the rest, then watches every turn.
 */
async function watch(t: Test, j: Journal, committed: () => number, queuedAt: number, onChange: (s: Sample, index: number) => void = () => {}): Promise<Sample[]> {
  const rest = FLUSH_INTERVAL_MS / 2 - (performance.now() - queuedAt);
  if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  t.equal(j.stats().written, 0, 'watching from before the flush');
  const samples: Sample[] = [];
  let seen = 0;
  return new Promise((resolve) => {
    const turn = (): void => {
      const s = j.stats();
      if (s.written !== seen) {
        seen = s.written;
        const sample = { written: s.written, pending: s.pending, committed: committed() };
        samples.push(sample);
        onChange(sample, samples.length - 1);
      }
      if (j.stats().pending === 0) return resolve(samples);
      setImmediate(turn);
    };
    setImmediate(turn);
  });
}

/** Every event 0..n-1 is in the journal exactly once, in order. */
function checkAll(t: Test, reader: Journal, n: number): void {
  const seqs = reader.query(0, END, ['verdict']).map((r) => Number(r.detail));
  t.equal(seqs.length, n, `${n} rows in the journal`);
  t.equal(new Set(seqs).size, n, 'no duplicates');
  t.ok(
    seqs.every((v, i) => v === i),
    'each event once, in the order recorded',
  );
}

const multiples = (step: number, upTo: number): number[] => Array.from({ length: Math.ceil(upTo / step) }, (_, i) => Math.min(upTo, (i + 1) * step));

t.test('a timer-driven flush of 12,000 events commits them in chunks and yields between them', async (t) => {
  const { j, reader, committed } = setup(t);
  t.ok(N > 2 * FLUSH_CHUNK_ROWS, `precondition: ${N} events make several chunks of ${FLUSH_CHUNK_ROWS}`);
  const before = j.stats();
  const queuedAt = performance.now();
  queue(j, N);
  t.equal(j.stats().pending, N, 'record() only queues');
  t.equal(committed(), 0, 'nothing committed yet');

  const samples = await watch(t, j, committed, queuedAt);
  const chunks = multiples(FLUSH_CHUNK_ROWS, N);
  t.equal(j.stats().flushes - before.flushes, chunks.length, `${chunks.length} transactions, one per chunk`);
  t.same(
    samples.map((s) => s.written),
    chunks,
    'a callback registered before the flush ran after every chunk: the loop got a turn between chunks',
  );
  t.same(
    samples.map((s) => s.committed),
    chunks,
    'each chunk was committed (visible to another connection) before the next was written',
  );
  t.ok(
    samples.slice(0, -1).every((s) => s.pending > 0),
    'those turns came while rows were still waiting: before the last chunk',
  );
  const after = j.stats();
  t.equal(after.written - before.written, N);
  t.equal(after.dropped, 0);
  t.ok(after.lastFlushMs > 0, 'lastFlushMs reports the longest chunk of the flush');
  checkAll(t, reader, N);
});

t.test('flush() or close() in the middle of a chunked flush writes the rest at once, without duplicates', async (t) => {
  for (const how of ['flush', 'close'] as const) {
    await t.test(how, async (t) => {
      const { j, reader, committed } = setup(t);
      const queuedAt = performance.now();
      queue(j, N);
      const before = j.stats().flushes;
      let inside: { pending: number; committed: number; flushes: number } | null = null;
      const samples = await watch(t, j, committed, queuedAt, (_s, i) => {
        if (i !== 0) return;
        if (how === 'flush') j.flush();
        else j.close();
        inside = { pending: j.stats().pending, committed: committed(), flushes: j.stats().flushes - before };
      });
      t.equal(samples[0]?.written, FLUSH_CHUNK_ROWS, 'the first chunk had been written by the timer');
      t.same(inside, { pending: 0, committed: N, flushes: 2 }, `${how}() wrote the other ${N - FLUSH_CHUNK_ROWS} in one transaction before returning`);
      // Give a flush that should no longer exist every chance to write again.
      await new Promise((r) => setTimeout(r, FLUSH_INTERVAL_MS * 2));
      t.equal(committed(), N, 'nothing written twice afterwards');
      checkAll(t, reader, N);
      if (how === 'close') t.same(reader.query(0, END, ['stop']).at(-1)?.detail, 'clean shutdown', 'close still ends with its stop');
    });
  }
});

t.test('the loss promise outranks smoothness: a row queued RUSH_AFTER_MS ago makes the rest go at once', async (t) => {
  const cases = [
    { name: 'young rows: one chunk per turn', ageAfterFirstChunk: 0, expect: multiples(FLUSH_CHUNK_ROWS, N) },
    { name: 'due rows: one chunk per turn', ageAfterFirstChunk: FLUSH_INTERVAL_MS, expect: multiples(FLUSH_CHUNK_ROWS, N) },
    { name: 'a row at RUSH_AFTER_MS: everything else in one transaction', ageAfterFirstChunk: RUSH_AFTER_MS, expect: [FLUSH_CHUNK_ROWS, N] },
    { name: 'just inside the loss window: still a rush', ageAfterFirstChunk: LOSS_WINDOW_MS - 1, expect: [FLUSH_CHUNK_ROWS, N] },
    {
      name: 'a rush takes only the rows that waited RUSH_AFTER_MS; younger ones keep to chunks',
      later: true,
      ageAfterFirstChunk: RUSH_AFTER_MS,
      expect: [FLUSH_CHUNK_ROWS, N / 2, ...multiples(FLUSH_CHUNK_ROWS, N / 2).map((w) => N / 2 + w)],
    },
    // Past the window (the disk refused writes for a while) a rush saves nothing: keep the loop smooth.
    { name: 'rows already past the loss window: chunks', ageAfterFirstChunk: LOSS_WINDOW_MS + 60_000, expect: multiples(FLUSH_CHUNK_ROWS, N) },
  ];
  for (const c of cases) {
    const { clock, j, reader, committed } = setup(t, { lifecycle: false });
    const queuedAt = performance.now();
    if (c.later) {
      // Half the rows queued RUSH_AFTER_MS - 100 ms after the others: only the older half rushes.
      queue(j, N / 2);
      clock.ms = T0 + RUSH_AFTER_MS - 100;
      queue(j, N / 2, N / 2);
    } else queue(j, N);
    const before = j.stats().flushes;
    const samples = await watch(t, j, committed, queuedAt, (_s, i) => {
      if (i === 0) clock.ms = T0 + c.ageAfterFirstChunk;
    });
    t.same(
      samples.map((s) => s.written),
      c.expect,
      c.name,
    );
    t.equal(j.stats().flushes - before, c.expect.length, `${c.name}: ${c.expect.length} transactions`);
    checkAll(t, reader, N);
  }
});

t.test('at MAX_QUEUE: the excess waits as an aggregate count (nothing dropped) and the backlog drains in chunks', async (t) => {
  const j = openJournal({ path: ':memory:', retentionDays: 400, recordUrls: false, recordClients: false, lifecycle: false, now: () => T0, eventsPerMinute: 1_000_000 });
  t.teardown(() => j.close());
  const queuedAt = performance.now();
  queue(j, MAX_QUEUE + 3);
  t.equal(j.stats().pending, MAX_QUEUE);
  t.equal(j.stats().dropped, 0, 'nothing over the bound dropped (issue 22, finding 8)');
  t.equal(j.stats().aggregated.queue, 3, 'the three over the bound are counted in an aggregate');
  const count = (): number => j.count({ from: 0, to: END, kind: 'verdict', by: [] })[0]?.n ?? 0;
  const samples = await watch(t, j, count, queuedAt);
  t.same(
    samples.map((s) => s.written),
    multiples(FLUSH_CHUNK_ROWS, MAX_QUEUE),
    `${MAX_QUEUE / FLUSH_CHUNK_ROWS} chunks, a turn of the loop after each`,
  );
  t.equal(count(), MAX_QUEUE + 3, 'every event in the figures once: the queued rows and the aggregate of 3');
  t.equal(j.stats().dropped, 0, 'none dropped while draining');
});
