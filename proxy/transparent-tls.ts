/**
 * The transparent TLS listener (traffic redirected from :443 by the router): every connection
 * passes the admission gate, then the TLS step routes it to SNI:443. There is no SO_ORIGINAL_DST:
 * the SNI is the destination, so a hello without SNI, or bytes that are not TLS, are refused.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { EdgeContext } from './options.js';
import { refuseTls, passTls } from './tls-passthrough.js';
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
      // Over a limit: just close. Outside the client networks: the alert says why.
      if (admission.why === 'client_forbidden') refuseTls(socket, 'access_denied');
      else socket.destroy();
      return;
    }
    passTls(ctx, socket, EMPTY, admission.conn, undefined);
  });
  server.on('error', () => {}); // listen errors are reported by listen(); accept errors must not crash
  return server;
}
