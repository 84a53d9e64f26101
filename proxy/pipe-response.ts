/**
 * An upstream response's body into the guest's response: `pipe`, with what `stream.pipeline` would
 * add written out, because pipeline's AbortController and error objects cost a tenth of a plain
 * request's CPU (BENCHMARKS.md, "Plain HTTP"). An upstream body that fails or stops short destroys
 * the response (the guest sees a cut body, never a complete-looking one); an error on either side
 * stops the upstream request; a guest that goes away is the caller's `close` handler.
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';

export function pipeResponse(upReq: ClientRequest, upRes: IncomingMessage, res: ServerResponse): void {
  const cut = (): void => {
    upReq.destroy();
    res.destroy();
  };
  upRes.on('error', cut);
  res.on('error', cut); // pipe re-emits a destination error that has no other listener: a throw
  upRes.once('close', () => {
    if (!upRes.readableEnded) cut();
  });
  upRes.pipe(res);
}
