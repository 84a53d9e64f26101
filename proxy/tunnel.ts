/**
 * Splicing two sockets: the bytes already read from the client go upstream first, then `pipe` both
 * ways. A FIN on one side ends the other side's writable half (half-close, RFC 9293 §3.6); an
 * error or a premature close on either side, or an idle timeout of the tunnel, destroys both.
 * Nothing here looks at the bytes.
 *
 * Why `pipe` and not `stream.pipeline` (STYLE.md prefers pipeline): every pipeline creates an
 * AbortController and, when it finishes, aborts it (a DOMException with a stack) and builds
 * premature-close errors with stacks; with two per tunnel that was ~14 % of the proxy's busy time on
 * CONNECT+TLS connections (BENCHMARKS.md, "Proxy (network edge)"). The end/close/error handling that
 * pipeline gave us is written out below, with the same rules:
 * - `pipe` ends the destination when the source ends (half-close kept: the other direction flows on);
 * - an error on either socket destroys both;
 * - a socket that closes before its readable side ended or its writable side finished (a reset, a
 *   destroy) destroys the other one: there is nobody left to talk to;
 * - a socket that closes cleanly (both halves done) leaves the other to flush and close by itself;
 *   but `pipe` pauses a source when its destination finishes (Readable.unpipe), so that other
 *   socket is resumed: it must go on reading to see its peer's FIN and close. What it still reads
 *   has nowhere to go and is dropped. Without this, a tunnel whose server closed first (an HTTP
 *   `Connection: close`, a TLS close_notify) held its guest socket, and its place under
 *   limits.maxConnections, until the idle timeout.
 *
 * Reads on the upstream side (sockets safespot opens itself, proxy/upstream.ts connectTcp): net's
 * `onread` into one reused 64 KiB buffer per socket (TunnelReader) instead of a fresh 64 KiB Buffer
 * and a 'data' event per read, and a large buffer (1 MiB, from a bounded pool) while a socket is moving
 * bulk, so that a download costs a tenth of the reads, writes and callbacks (BENCHMARKS.md,
 * "Bulk tunnels"). The buffer is read into again only once the guest's socket has taken every
 * byte of the last read (the upstream is paused while a write is pending), so a write never sees
 * its bytes overwritten. The guest-to-upstream direction (accepted sockets have no `onread`) is `pipe`.
 */
import type { Socket } from 'node:net';
import { handleErrors } from './refuse.js';

export interface SpliceOptions {
  /** Destroy both sockets after this long without traffic on either one (0 = never). */
  readonly idleTimeoutMs: number;
  readonly onIdle?: () => void;
  /** Called once when both sockets have closed. */
  readonly onDone?: () => void;
}

/** Idle checks per idle timeout: a tunnel is closed between 1 and 1.25 idle timeouts after its last byte. */
const IDLE_CHECKS = 4;

/**
 * Size of a reader's own buffer: what one read of a quiet socket can hold (Node's own read size).
 * Every open tunnel keeps one: only the pages its reads have touched are resident, up to 64 KiB a
 * tunnel (256 MiB at limits.maxConnections 4,096 if every one once read that much). 16 KiB cost
 * 27% more CPU per GiB in bulk (BENCHMARKS.md, "The byte paths beside the C proxies").
 */
const SMALL_READ_BYTES = 64 * 1024;
/** Size of a bulk read buffer, lent from the pool while the socket's reads fill its small one. */
export const BULK_READ_BYTES = 1024 * 1024;
/** Bulk buffers lent at once, process-wide (their memory: BULK_READ_BYTES each); past it, reads stay small. */
const BULK_BUFFERS_MAX = 16;
/** Bulk buffers kept for the next tunnels once given back; the others are left to the GC. */
const BULK_BUFFERS_KEPT = 4;
const bulkFree: Buffer[] = [];
let bulkLent = 0;

function takeBulk(): Buffer | null {
  if (bulkLent >= BULK_BUFFERS_MAX) return null;
  bulkLent++;
  return bulkFree.pop() ?? Buffer.allocUnsafeSlow(BULK_READ_BYTES);
}

function giveBulk(b: Buffer): void {
  bulkLent--;
  if (bulkFree.length < BULK_BUFFERS_KEPT) bulkFree.push(b);
}

/** Bulk read buffers lent now, for tests. */
export function bulkBuffersLent(): number {
  return bulkLent;
}

/** What has come before the splice is kept (copied) up to this much, then the socket waits. */
const EARLY_BYTES_MAX = 64 * 1024;

/**
 * The upstream socket's reads (net.connect's `onread`): before the splice, what the server sends
 * first is kept; once spliced, each read is written to the guest's socket straight from the buffer.
 */
export class TunnelReader {
  private socket: Socket | null = null;
  private sink: Socket | null = null;
  private readonly own = Buffer.allocUnsafe(SMALL_READ_BYTES);
  private bulk: Buffer | null = null;
  /** Where the next read goes (net asks after every read). */
  private next: Buffer = this.own;
  private early: Buffer[] = [];
  private earlyBytes = 0;
  /** A write from the buffer has not yet been taken by the kernel: the socket is paused, the buffer kept. */
  private pending = false;
  private done = false;

  /** For net.connect({ onread }). */
  readonly onread = {
    buffer: (): Buffer => this.nextBuffer(),
    callback: (n: number, buf: Buffer): boolean => this.onRead(n, buf),
  };

  /** The socket whose reads these are; its buffer goes back once it has closed (or with the tunnel). */
  attach(socket: Socket): void {
    this.socket = socket;
    readers.set(socket, this);
    socket.once('close', () => {
      if (this.sink === null) this.release();
    });
  }

  private nextBuffer(): Buffer {
    const last = this.next;
    // Kept while a write from it is pending: the socket is paused and reads nothing meanwhile.
    if (this.pending || this.done) return last;
    if (this.bulk !== null && this.lastRead < SMALL_READ_BYTES) {
      // Bulk is over (a read that would have fitted the small buffer): the big one goes back.
      giveBulk(this.bulk);
      this.bulk = null;
    } else if (this.bulk === null && this.sink !== null && this.lastRead === SMALL_READ_BYTES) {
      this.bulk = takeBulk();
    }
    this.next = this.bulk ?? this.own;
    return this.next;
  }

  private lastRead = 0;

  private onRead(n: number, buf: Buffer): boolean {
    this.lastRead = n;
    const sink = this.sink;
    if (sink === null) {
      this.early.push(Buffer.from(buf.subarray(0, n)));
      this.earlyBytes += n;
      return this.earlyBytes < EARLY_BYTES_MAX;
    }
    if (sink.destroyed) return false;
    sink.write(buf.subarray(0, n), this.written);
    if (sink.writableLength === 0) return true;
    // The kernel has not taken it all: no read into this buffer until it has.
    this.pending = true;
    return false;
  }

  private readonly written = (err?: Error | null): void => {
    if (!this.pending) return;
    this.pending = false;
    // The buffer for the next read was kept (nextBuffer): it changes only at the next read.
    if (err || this.socket === null || this.socket.destroyed) return;
    this.socket.resume();
  };

  /** Spliced: what came first goes to the guest, then every read as it comes; the guest is ended after the upstream's FIN. */
  start(client: Socket): void {
    const up = this.socket!;
    this.sink = client;
    for (const b of this.early) client.write(b);
    this.early = [];
    up.once('end', () => client.end());
    if (client.writableLength > 0) {
      // Early bytes still queued: wait for them (they are copies, so only for backpressure).
      up.pause();
      client.once('drain', () => {
        if (!up.destroyed) up.resume();
      });
    } else up.resume();
  }

  /** The tunnel is over (both sockets closed): the bulk buffer goes back to the pool. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.pending = false;
    if (this.bulk !== null) giveBulk(this.bulk);
    this.bulk = null;
  }
}

const readers = new WeakMap<Socket, TunnelReader>();

export function splice(client: Socket, upstream: Socket, head: Buffer, opts: SpliceOptions): void {
  // Both sockets have had an error listener since birth (refuse.ts handleErrors, called by the
  // steps before this one); the one added below also tears the tunnel down.
  let idleTimer: NodeJS.Timeout | undefined;
  const destroyBoth = (): void => {
    client.destroy();
    upstream.destroy();
  };
  if (client.destroyed || upstream.destroyed) {
    // Gone already ('close' may have been emitted): nothing to carry.
    handleErrors(client);
    handleErrors(upstream);
    destroyBoth();
    if (opts.onDone) queueMicrotask(opts.onDone);
    return;
  }
  const reader = readers.get(upstream);
  let open = 2;
  const closed = (socket: Socket): void => {
    // Closed before both halves were done: a reset or a destroy, not a clean end.
    if (!socket.readableEnded || !socket.writableFinished) destroyBoth();
    if (--open > 0) {
      // The unpipe that paused the other socket runs in this same 'close' (or the 'finish' before it).
      const other = socket === client ? upstream : client;
      process.nextTick(() => {
        if (!other.destroyed) other.resume();
      });
      return;
    }
    clearInterval(idleTimer);
    reader?.release();
    opts.onDone?.();
  };
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
  client.once('close', () => closed(client));
  upstream.once('close', () => closed(upstream));
  if (head.length > 0) upstream.write(head);
  client.pipe(upstream);
  if (reader !== undefined) reader.start(client);
  else upstream.pipe(client);
  if (opts.idleTimeoutMs > 0) {
    // One timer per tunnel that looks at the byte counters, rather than a socket timeout on each
    // side: those re-arm a timer on every read and every write of both sockets. Bytes read on
    // either side are traffic in one direction or the other; a write that makes no progress is
    // no traffic (as with socket timeouts, which count completed writes).
    let seen = -1;
    let quiet = 0;
    idleTimer = setInterval(() => {
      const now = client.bytesRead + upstream.bytesRead;
      if (now !== seen) {
        seen = now;
        quiet = 0;
        return;
      }
      if (++quiet < IDLE_CHECKS) return;
      clearInterval(idleTimer);
      if (client.destroyed && upstream.destroyed) return;
      opts.onIdle?.();
      destroyBoth();
    }, Math.max(1, Math.ceil(opts.idleTimeoutMs / IDLE_CHECKS)));
    idleTimer.unref();
  }
}
