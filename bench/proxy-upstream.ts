/**
 * The upstream side of bench/proxy.ts, run in the bench process: a throwaway CA and wildcard leaf
 * for `*.bench.test` (made with openssl in a folder the caller removes), a TLS server that answers
 * one request per connection (`/bulk?bytes=N` streams N bytes, anything else a 3-byte body) and a
 * keep-alive plain HTTP server.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';

/** A CA and one wildcard leaf for *.bench.test, made with openssl in `dir`. */
export function makePki(dir: string): { ca: string; cert: string; key: string } {
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=safespot bench CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=bench.test']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:*.bench.test,DNS:bench.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'ext.cnf']);
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return { ca: read('ca.pem'), cert: read('leaf.pem'), key: read('leaf.key') };
}

/** Upstream TLS server: `/bulk?bytes=N` streams N bytes, anything else a 3-byte body; then close. */
export function startTlsUpstream(pki: { cert: string; key: string }): Promise<Server> {
  const block = Buffer.alloc(1 << 20, 0x61);
  const server = createTlsServer({ cert: pki.cert, key: pki.key }, (s) => {
    s.on('error', () => s.destroy());
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      const bulk = /^GET \/bulk\?bytes=(\d+) /.exec(head);
      if (!bulk) return void s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n');
      let left = Number(bulk[1]);
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${left}\r\nConnection: close\r\n\r\n`);
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, block.length);
          left -= n;
          if (!s.write(n === block.length ? block : block.subarray(0, n))) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    };
    s.on('data', onData);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

export function startHttpUpstream(): Promise<HttpServer> {
  const server = createHttpServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

export const portOf = (s: Server | HttpServer): number => {
  const a = s.address();
  return typeof a === 'object' && a ? a.port : 0;
};
