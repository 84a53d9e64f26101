/**
 * Reads the ClientHello off a socket without consuming it for anyone else: every byte read is
 * returned so the tunnel can write it upstream first. Bounded by a byte limit and a timeout, so a
 * slow or endless client costs one timer and at most `maxBytes` of memory.
 */
import type { Socket } from 'node:net';
import type { ClientHelloInfo } from './hooks.js';
import { parseClientHello } from './client-hello.js';

export type HelloOutcome =
  | { readonly kind: 'parsed'; readonly hello: ClientHelloInfo; readonly bytes: Buffer }
  | { readonly kind: 'malformed'; readonly reason: string; readonly bytes: Buffer }
  | { readonly kind: 'not-tls'; readonly bytes: Buffer }
  | { readonly kind: 'timeout'; readonly bytes: Buffer }
  | { readonly kind: 'too-large'; readonly bytes: Buffer }
  /** The client closed (or the socket failed) before a full ClientHello arrived. */
  | { readonly kind: 'closed'; readonly bytes: Buffer };

export interface HelloLimits {
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

/**
 * Read until the bytes parse as a ClientHello, turn out not to be one, or a bound is hit; then call
 * `done` once (synchronously when `head` already settles it). `head` is what was already read (for
 * CONNECT, the bytes after the request head). When `done` runs the socket is paused with no
 * listeners of ours left on it (errors stay handled by the caller's listener). A callback, not a
 * promise: this runs once per TLS connection.
 */
export function readClientHello(socket: Socket, head: Buffer, limits: HelloLimits, done: (outcome: HelloOutcome) => void): void {
  let bytes = head;
  let finished = false;
  let listening = false;
  let timer: NodeJS.Timeout | undefined;
  const finish = (outcome: HelloOutcome): void => {
    if (finished) return;
    finished = true;
    if (listening) {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onClose);
      socket.off('close', onClose);
      socket.pause();
    }
    done(outcome);
  };
  const examine = (): boolean => {
    const r = parseClientHello(bytes);
    switch (r.kind) {
      case 'parsed':
        finish({ kind: 'parsed', hello: r.hello, bytes });
        return true;
      case 'invalid':
        finish(r.notTls ? { kind: 'not-tls', bytes } : { kind: 'malformed', reason: r.reason, bytes });
        return true;
      case 'need-more':
        if (bytes.length >= limits.maxBytes) {
          finish({ kind: 'too-large', bytes });
          return true;
        }
        return false;
    }
  };
  const onData = (chunk: Buffer): void => {
    bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
    examine();
  };
  const onClose = (): void => finish({ kind: 'closed', bytes });
  if (bytes.length > 0 && examine()) return;
  listening = true;
  timer = setTimeout(() => finish({ kind: 'timeout', bytes }), limits.timeoutMs);
  socket.on('data', onData);
  socket.on('end', onClose);
  socket.on('close', onClose); // an error is followed by 'close' (autoDestroy)
  socket.resume();
}
