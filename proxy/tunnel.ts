/**
 * Splicing two sockets: the bytes already read from the client go upstream first, then
 * `stream.pipeline` both ways. A FIN on one side ends the other side's writable half; an error or
 * an idle timeout on either destroys both. Nothing here looks at the bytes.
 */
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { handleErrors } from './refuse.js';

export interface SpliceOptions {
  /** Destroy both sockets after this long without traffic on either one (0 = never). */
  readonly idleTimeoutMs: number;
  readonly onIdle?: () => void;
  /** Called once when both sides are finished (closed or destroyed). */
  readonly onDone?: () => void;
}

export function splice(client: Socket, upstream: Socket, head: Buffer, opts: SpliceOptions): void {
  handleErrors(client);
  handleErrors(upstream);
  if (head.length > 0) upstream.write(head);
  let open = 2;
  const settled = (): void => {
    if (--open === 0) opts.onDone?.();
  };
  const teardown = (err: Error | null | undefined): void => {
    if (err) {
      client.destroy();
      upstream.destroy();
    }
  };
  pipeline(client, upstream, (err) => {
    teardown(err);
    settled();
  });
  pipeline(upstream, client, (err) => {
    teardown(err);
    settled();
  });
  if (opts.idleTimeoutMs > 0) {
    // A socket's timeout counts reads and writes, so a one-way bulk transfer keeps both sides alive.
    const onTimeout = (): void => {
      if (client.destroyed && upstream.destroyed) return;
      opts.onIdle?.();
      client.destroy();
      upstream.destroy();
    };
    client.setTimeout(opts.idleTimeoutMs, onTimeout);
    upstream.setTimeout(opts.idleTimeoutMs, onTimeout);
  }
}
