/**
 * Splicing two sockets: the bytes already read from the client go upstream first, then `pipe` both
 * ways. A FIN on one side ends the other side's writable half (half-close, RFC 9293 §3.6); an
 * error, a premature close or an idle timeout on either destroys both. Nothing here looks at the
 * bytes.
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
 * - a socket that closes cleanly (both halves done) leaves the other to flush and close by itself.
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

export function splice(client: Socket, upstream: Socket, head: Buffer, opts: SpliceOptions): void {
  handleErrors(client);
  handleErrors(upstream);
  const destroyBoth = (): void => {
    client.destroy();
    upstream.destroy();
  };
  if (client.destroyed || upstream.destroyed) {
    // Gone already ('close' may have been emitted): nothing to carry.
    destroyBoth();
    if (opts.onDone) queueMicrotask(opts.onDone);
    return;
  }
  let open = 2;
  const closed = (socket: Socket): void => {
    // Closed before both halves were done: a reset or a destroy, not a clean end.
    if (!socket.readableEnded || !socket.writableFinished) destroyBoth();
    if (--open === 0) opts.onDone?.();
  };
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
  client.once('close', () => closed(client));
  upstream.once('close', () => closed(upstream));
  if (head.length > 0) upstream.write(head);
  client.pipe(upstream);
  upstream.pipe(client);
  if (opts.idleTimeoutMs > 0) {
    // A socket's timeout counts reads and writes, so a one-way bulk transfer keeps both sides alive.
    const onTimeout = (): void => {
      if (client.destroyed && upstream.destroyed) return;
      opts.onIdle?.();
      destroyBoth();
    };
    client.setTimeout(opts.idleTimeoutMs, onTimeout);
    upstream.setTimeout(opts.idleTimeoutMs, onTimeout);
  }
}
