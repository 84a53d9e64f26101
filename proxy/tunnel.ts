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
    opts.onDone?.();
  };
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
  client.once('close', () => closed(client));
  upstream.once('close', () => closed(upstream));
  if (head.length > 0) upstream.write(head);
  client.pipe(upstream);
  upstream.pipe(client);
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
