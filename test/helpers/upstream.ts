/**
 * Upstream servers for integration tests, on 127.0.0.1 port 0: plain HTTP and HTTPS (test PKI)
 * with a few fixed routes, so tests can check that bytes pass through unchanged.
 *
 * Routes: `/hello` (short text), `/big` (a deterministic multi-MB body with Content-Length),
 * `/chunked` (the same body streamed in chunks without Content-Length), `/echo` (request method,
 * headers and body as JSON), anything else 404. WebSocket-style upgrades on `/ws` answer 101 and
 * echo bytes back.
 */
import { createHash } from 'node:crypto';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { Socket } from 'node:net';
import type { TestPki } from './pki.js';

export const BIG_SIZE = 3 * 1024 * 1024 + 17;

/** A deterministic body of `size` bytes. */
export function bigBody(size = BIG_SIZE): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x12345678;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function handler(name: string) {
  const big = bigBody();
  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/hello') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
      res.end(`hello from ${name}\n`);
    } else if (path === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big.length) });
      res.end(big);
    } else if (path === '/chunked') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let off = 0;
      const step = (): void => {
        while (off < big.length) {
          const chunk = big.subarray(off, off + 65_537);
          off += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', step);
            return;
          }
        }
        res.end();
      };
      step();
    } else if (path === '/echo') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, bodySha256: sha256(body), bodyLength: body.length }));
      });
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  };
}

function onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
  socket.on('error', () => {});
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
  if (head.length) socket.write(head);
  socket.pipe(socket);
}

export interface TestUpstream {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

async function start(server: Server): Promise<TestUpstream> {
  server.on('upgrade', onUpgrade);
  // /echo reports every header field received, not Node's first 2,000.
  server.maxHeadersCount = 0;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('no address');
  return {
    server,
    port: a.port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function startHttpUpstream(): Promise<TestUpstream> {
  return start(createHttp(handler('http')));
}

export function startHttpsUpstream(pki: TestPki): Promise<TestUpstream> {
  return start(createHttps({ cert: pki.cert, key: pki.key }, handler('https')));
}
