/**
 * The transparent TLS listener (traffic redirected from :443 by the router): every connection
 * passes the admission gate, then the TLS step routes it to SNI:443. There is no SO_ORIGINAL_DST:
 * the SNI is the destination, so a hello without SNI, or bytes that are not TLS, are refused.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { EdgeContext } from './options.js';
import { refuseTls } from './refuse.js';
import { passTls } from './tls-passthrough.js';
import { handleErrors } from './refuse.js';

const EMPTY = Buffer.alloc(0);

export function createTransparentTlsServer(ctx: EdgeContext): Server {
  // allowHalfOpen: a client that sends its last bytes and a FIN still gets the answer (the tunnel
  // half-closes the upstream side and carries the reply back; see proxy/tunnel.ts).
  const server = createServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: true });
  server.on('connection', (socket: Socket) => {
    handleErrors(socket);
    const admission = ctx.gate.admit(socket, 'tls');
    if (!admission.ok) {
      // The alert says why: outside the client networks, or over a connection limit.
      refuseTls(socket, admission.why === 'client_forbidden' ? 'ERR_CLIENT_FORBIDDEN' : 'ERR_LIMIT');
      return;
    }
    passTls(ctx, socket, EMPTY, admission.conn, undefined);
  });
  server.on('error', () => {}); // listen errors are reported by listen(); accept errors must not crash
  return server;
}
