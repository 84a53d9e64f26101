/**
 * Compile a policy off the event loop: policy/'s compileParts runs in a worker_thread, so parsing
 * and sorting a million entries never stalls the connections the main thread is serving. The
 * compiled policy comes back as its bundle sections (the same bytes `safespot compile` writes,
 * transferred, not copied) and is rebuilt with partsFromSections, the bundle loader's own path: so
 * every part of a policy (URL stores, image matcher, whatever comes next) crosses the thread the
 * way it crosses a file. The main thread only wraps the views in a Policy (which checks the tables
 * once) and swaps it in (PolicyHolder.swap is one reference).
 *
 *   const compiler = new CompileWorker();
 *   const policy = await compiler.compile(input);   // rejects with the SafespotError compile threw
 *   holder.swap(policy);
 *   await compiler.close();                          // at shutdown
 *
 * One worker, started when a compile is asked for and ended when none is left (its heap goes with
 * it; start-up costs tens of ms); jobs run one at a time in the order given. The worker is unref'd
 * while idle: it never keeps the process alive.
 *
 * Small jobs run on the main thread instead, through the same sections (INLINE_BYTES: list bodies of
 * at most 256 KiB in all, a compile of a few milliseconds), when no worker job is out (so the order
 * stays the order given). A worker thread is a V8 isolate of its own: for the embedded default's
 * lists it lifted the start's peak by ~10 MiB and left ~4 MiB in the allocator's thread arena after
 * it ended (issue 23: idle memory on a small box).
 * If it dies, the jobs in flight are rejected (ERR_INTERNAL) and the next compile starts a new one.
 *
 * This file is both the main-thread class and the worker's entry point (workerData marks which).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ERRORS, SafespotError, type ErrorCode } from '../../policy/errors.js';
import { IMAGE_LIST_KINDS, parseImageList, type ImageListKind } from '../../policy/image-list-parse.js';
import { scanUrlList } from '../../policy/compile-lists.js';
import type { UrlListKind } from '../../policy/lists.js';
import { compileParts, partsFromSections, Policy, policySections, sectionsVersion, type CompileInput, type Section } from '../../policy/policy.js';

const MARKER = 'safespot-compile-worker';

/** A list body to parse for its entry count (the refresher's check before a compile). */
export interface CountJob {
  readonly kind: string;
  readonly body: Uint8Array;
  readonly listId: string;
  readonly pdqMinQuality: number;
}

type Job = { readonly id: number; readonly input: CompileInput } | { readonly id: number; readonly count: CountJob };

type Reply =
  | { readonly id: number; readonly ok: true; readonly sections: readonly Section[]; readonly version: string; readonly ms: number }
  | { readonly id: number; readonly ok: true; readonly entries: number }
  | { readonly id: number; readonly ok: false; readonly code: string; readonly message: string; readonly details: readonly string[] };

/** The last compile's duration inside the worker, for logs. */
export interface CompileStats {
  readonly ms: number;
}

/** Above this many bytes of list bodies a job goes to the worker thread (see the top of the file). */
export const INLINE_BYTES = 256 * 1024;

function bodyBytes(input: CompileInput): number {
  let n = 0;
  for (const l of input.lists) n += typeof l.text === 'string' ? l.text.length * 3 : (l.text?.byteLength ?? 0);
  return n;
}

export class CompileWorker {
  #worker: Worker | null = null;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (p: Policy | number) => void; reject: (e: Error) => void }>();
  #closed = false;
  /** Duration of the last successful compile inside the worker. */
  lastStats: CompileStats | null = null;
  /** Worker threads started so far (a start from an unchanged last good bundle starts none). */
  starts = 0;
  readonly #onStart: (() => void) | undefined;

  /** Jobs run on the main thread (small ones, see INLINE_BYTES). */
  inlineJobs = 0;
  readonly #inlineBytes: number;

  /** `onStart`: told each time a worker thread is started (for a debug log line); `inlineBytes`: INLINE_BYTES unless given (0: every job in the worker). */
  constructor(opts: { onStart?: () => void; inlineBytes?: number } = {}) {
    this.#onStart = opts.onStart;
    this.#inlineBytes = opts.inlineBytes ?? INLINE_BYTES;
  }

  /** Whether a worker thread exists now (one is started per burst of jobs and ended when idle). */
  get running(): boolean {
    return this.#worker !== null;
  }

  /** Compile `input` in the worker. Rejects with the SafespotError compile threw (same code, message, details). */
  compile(input: CompileInput): Promise<Policy> {
    if (this.#inline(bodyBytes(input))) {
      return this.#runInline(() => {
        const start = performance.now();
        const sections = policySections(compileParts(input));
        const policy = new Policy(partsFromSections(new Map(sections.map((s) => [s.tag, s.bytes]))), sectionsVersion(sections));
        this.lastStats = { ms: Math.round(performance.now() - start) };
        return policy;
      });
    }
    return this.#send((id) => ({ id, input })) as Promise<Policy>;
  }

  /** Whether a job of `bytes` runs here: small, and no worker job out (which must finish first). */
  #inline(bytes: number): boolean {
    return !this.#closed && this.#pending.size === 0 && bytes <= this.#inlineBytes;
  }

  #runInline<T>(job: () => T): Promise<T> {
    this.inlineJobs++;
    try {
      return Promise.resolve(job());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new SafespotError('ERR_INTERNAL', String(err)));
    }
  }

  /**
   * Parse a list body in the worker for its entry count (URL lists are only scanned, not hashed:
   * policy/compile-lists.ts), so a million lines never stall the main thread and an image list's
   * parse leaves its garbage with the worker. Rejects with the parser's error.
   */
  count(job: CountJob): Promise<number> {
    if (this.#inline(job.body.byteLength)) return this.#runInline(() => countEntries(job));
    return this.#send((id) => ({ id, count: job })) as Promise<number>;
  }

  #send(job: (id: number) => Job): Promise<Policy | number> {
    if (this.#closed) return Promise.reject(new SafespotError('ERR_INTERNAL', 'the compile worker is closed'));
    const worker = this.#ensure();
    const id = this.#next++;
    return new Promise<Policy | number>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.ref(); // keep the process up while a job is out
      try {
        worker.postMessage(job(id));
      } catch (err) {
        this.#pending.delete(id);
        this.#idle();
        reject(new SafespotError('ERR_INTERNAL', `cannot send the lists to the compile worker: ${(err as Error).message}`));
      }
    });
  }

  /** Stop the worker; compiles in flight are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    this.#worker = null;
    this.#failAll('the compile worker was closed');
    if (w) await w.terminate();
  }

  #ensure(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(new URL(import.meta.url), { workerData: { [MARKER]: true } });
    this.starts++;
    this.#onStart?.();
    w.unref();
    w.on('message', (reply: Reply) => this.#onReply(reply));
    // A worker ended when idle (#idle) has no jobs: its exit must not fail the next worker's.
    w.on('error', (err) => {
      if (this.#worker !== w) return;
      this.#worker = null;
      this.#failAll(`the compile worker failed: ${err.message}`);
    });
    w.on('exit', (code) => {
      if (this.#worker !== w) return;
      this.#worker = null;
      if (!this.#closed) this.#failAll(`the compile worker exited (code ${code})`);
    });
    this.#worker = w;
    return w;
  }

  #onReply(reply: Reply): void {
    const job = this.#pending.get(reply.id);
    if (!job) return;
    this.#pending.delete(reply.id);
    this.#idle();
    if (reply.ok && 'entries' in reply) {
      job.resolve(reply.entries);
      return;
    }
    if (reply.ok) {
      try {
        const parts = partsFromSections(new Map(reply.sections.map((s) => [s.tag, s.bytes])));
        const policy = new Policy(parts, reply.version);
        this.lastStats = { ms: reply.ms };
        job.resolve(policy);
      } catch (err) {
        job.reject(err instanceof Error ? err : new SafespotError('ERR_INTERNAL', String(err)));
      }
      return;
    }
    const code: ErrorCode = reply.code in ERRORS ? (reply.code as ErrorCode) : 'ERR_INTERNAL';
    job.reject(new SafespotError(code, reply.message, { details: reply.details }));
  }

  /**
   * No job out: the worker goes. A compile leaves its thread's heap at several times the size of
   * what it made (1M domains: ~400 MiB beside a 10 MB policy), and V8 does not hand that back while
   * the thread lives; ending the thread does. Compiles are rare (a reload, a list refresh), and a
   * new worker costs tens of milliseconds.
   */
  #idle(): void {
    if (this.#pending.size !== 0) return;
    const w = this.#worker;
    this.#worker = null;
    if (w) void w.terminate();
  }

  #failAll(why: string): void {
    const jobs = [...this.#pending.values()];
    this.#pending.clear();
    for (const j of jobs) j.reject(new SafespotError('ERR_INTERNAL', why));
  }
}

/** The buffers under the sections, for the transfer list (each once; the worker is done with them). */
function transferables(sections: readonly Section[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const s of sections) if (s.bytes.buffer instanceof ArrayBuffer && s.bytes.buffer.byteLength > 0) out.add(s.bytes.buffer);
  return [...out];
}

/** Entries in a list body, by its kind (throws when it does not parse). */
function countEntries(job: CountJob): number {
  if ((IMAGE_LIST_KINDS as readonly string[]).includes(job.kind)) {
    return parseImageList(Buffer.from(job.body).toString('utf8'), job.kind as ImageListKind, { pdqMinQuality: job.pdqMinQuality }).count;
  }
  return scanUrlList(job.kind as UrlListKind, job.body, job.listId, null).entries;
}

function runWorker(): void {
  const port = parentPort!;
  port.on('message', (job: Job) => {
    const start = performance.now();
    let reply: Reply;
    let transfer: ArrayBuffer[] = [];
    try {
      if ('count' in job) {
        reply = { id: job.id, ok: true, entries: countEntries(job.count) };
      } else {
        const sections = policySections(compileParts(job.input));
        const version = sectionsVersion(sections);
        reply = { id: job.id, ok: true, sections, version, ms: Math.round(performance.now() - start) };
        transfer = transferables(sections);
      }
    } catch (err) {
      const e = err as Partial<SafespotError>;
      reply = {
        id: job.id,
        ok: false,
        code: typeof e.code === 'string' ? e.code : 'ERR_INTERNAL',
        message: typeof e.message === 'string' ? e.message : String(err),
        details: Array.isArray(e.details) ? e.details.map(String) : [],
      };
    }
    port.postMessage(reply, transfer);
  });
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[MARKER] === true) runWorker();
