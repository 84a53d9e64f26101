/**
 * A list origin for tests: an HTTPS server on 127.0.0.1 port 0 with a certificate from an in-memory
 * test CA (certs/), serving list files put into it, with knobs for what origins do in the wild:
 * ETag / 304, Last-Modified / If-Modified-Since, a slow trickle, a Content-Length larger than the
 * body (truncation), 500s, and vanishing altogether. Every request is recorded with its headers.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { generateCa, LeafMinter, type Ca } from '../../certs/index.js';

export interface OriginFileOptions {
  /** Send an ETag (a hash of the body) and answer a matching If-None-Match with 304 (default true). */
  etag?: boolean;
  /** Send this Last-Modified and answer an If-Modified-Since at or after it with 304. */
  lastModified?: Date;
  /** Send the body `bytes` at a time, one piece every `everyMs`. */
  trickle?: { bytes: number; everyMs: number };
  /** Declare a Content-Length this many bytes larger than the body, send the body, then cut the connection. */
  truncateBy?: number;
  /** Answer this many requests with 500 before serving normally again. */
  failNext?: number;
  /** Answer with this status (and no body) instead of the file. */
  status?: number;
  /** Answer with a redirect to this path or URL. */
  redirectTo?: string;
  /** Send the body chunked, without Content-Length (16 KiB pieces). */
  chunked?: boolean;
}

export interface OriginRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** Status answered. */
  status: number;
  /** Body bytes written. */
  bytes: number;
  /** Whether the whole response went out (false when the client cut it off). */
  completed: boolean;
}

export interface Origin {
  readonly port: number;
  readonly ca: Ca;
  /** PEM of the CA that signed the origin's certificate. */
  readonly caPem: string;
  readonly requests: OriginRequest[];
  url(path: string): string;
  /** Serve `body` at `path` (replacing what was there) with the given knobs. */
  put(path: string, body: Uint8Array | string, opts?: OriginFileOptions): void;
  /** Change the knobs of a path, keeping its body. */
  configure(path: string, opts: OriginFileOptions): void;
  remove(path: string): void;
  /** Requests seen for one path. */
  requestsFor(path: string): OriginRequest[];
  /** Close the server and cut every connection: later requests are refused. */
  vanish(): Promise<void>;
  close(): Promise<void>;
}

interface Entry {
  body: Buffer;
  opts: OriginFileOptions;
}

/** `ca`: reuse one test CA for several origins (one trust anchor for the client). */
export async function startOrigin(opts: { ca?: Ca } = {}): Promise<Origin> {
  const ca = opts.ca ?? (await generateCa());
  const leaf = await new LeafMinter(ca).mint('127.0.0.1');
  const files = new Map<string, Entry>();
  const requests: OriginRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0]!;
    const rec: OriginRequest = { path, headers: { ...req.headers }, status: 0, bytes: 0, completed: false };
    requests.push(rec);
    res.on('finish', () => {
      rec.completed = true;
    });
    const answer = (status: number, headers: Record<string, string> = {}, body?: Buffer): void => {
      rec.status = status;
      res.writeHead(status, headers);
      if (body) rec.bytes += body.length;
      res.end(body);
    };
    const entry = files.get(path);
    if (!entry) return answer(404, { 'content-type': 'text/plain' }, Buffer.from('not found\n'));
    const { body, opts } = entry;
    if (opts.failNext && opts.failNext > 0) {
      opts.failNext--;
      return answer(500, { 'content-type': 'text/plain' }, Buffer.from('origin failure\n'));
    }
    if (opts.status !== undefined) return answer(opts.status);
    if (opts.redirectTo !== undefined) return answer(302, { location: opts.redirectTo });
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
    if (opts.etag !== false) {
      headers.etag = etag;
      if (req.headers['if-none-match'] === etag) return answer(304, { etag });
    }
    if (opts.lastModified) {
      headers['last-modified'] = opts.lastModified.toUTCString();
      const since = req.headers['if-modified-since'];
      if (since && Date.parse(since) >= Math.floor(opts.lastModified.getTime() / 1000) * 1000) return answer(304, {});
    }
    if (!opts.chunked) headers['content-length'] = String(body.length + (opts.truncateBy ?? 0));
    rec.status = 200;
    res.writeHead(200, headers);
    if (opts.truncateBy) {
      res.write(body);
      rec.bytes += body.length;
      // Cut the connection once the short body is out: the client sees fewer bytes than declared.
      res.socket?.end();
      setImmediate(() => res.socket?.destroy());
      return;
    }
    if (opts.trickle) {
      const { bytes, everyMs } = opts.trickle;
      let off = 0;
      const timer = setInterval(() => {
        if (res.destroyed || off >= body.length) {
          clearInterval(timer);
          timers.delete(timer);
          if (!res.destroyed) res.end();
          return;
        }
        const piece = body.subarray(off, off + bytes);
        off += piece.length;
        rec.bytes += piece.length;
        res.write(piece);
      }, everyMs);
      timers.add(timer);
      res.on('close', () => {
        clearInterval(timer);
        timers.delete(timer);
      });
      return;
    }
    if (opts.chunked) {
      let off = 0;
      const step = (): void => {
        while (off < body.length && !res.destroyed) {
          const piece = body.subarray(off, off + 16_384);
          off += piece.length;
          rec.bytes += piece.length;
          if (!res.write(piece)) {
            res.once('drain', step);
            return;
          }
        }
        if (!res.destroyed) res.end();
      };
      step();
      return;
    }
    rec.bytes += body.length;
    res.end(body);
  };

  const server: Server = createServer({ key: leaf.keyPem, cert: leaf.certPem }, handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closed = false;

  const shut = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const t of timers) clearInterval(t);
    timers.clear();
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await done;
  };

  return {
    port,
    ca,
    caPem: ca.certPem,
    requests,
    url: (path) => `https://127.0.0.1:${port}${path.startsWith('/') ? path : `/${path}`}`,
    put(path, body, opts = {}) {
      files.set(path, { body: Buffer.from(body), opts: { ...opts } });
    },
    configure(path, opts) {
      const e = files.get(path);
      if (!e) throw new Error(`origin: nothing at ${path}`);
      e.opts = { ...opts };
    },
    remove(path) {
      files.delete(path);
    },
    requestsFor: (path) => requests.filter((r) => r.path === path),
    vanish: shut,
    close: shut,
  };
}
