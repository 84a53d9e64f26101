/**
 * The baseline for bench/proxy.ts: a minimal CONNECT forwarder with no filtering, no limits, no
 * metrics and no ClientHello reading. It reads the request head, parses the CONNECT line, maps the
 * host through a static table (the same one safespot gets as `upstream.hosts`, so neither side uses
 * DNS), connects upstream, answers 200 and pipes both ways. It is what "a proxy that does nothing"
 * costs in Node, so that safespot's figures can be read against it.
 *
 * Two knobs turn it into variants that use the same Node plumbing as safespot, to split safespot's
 * cost into "plumbing" and "its own work" (bench/proxy.ts runs them beside the plain one):
 * - `parse: 'http'`: the CONNECT request is parsed by a node:http server (its `connect` event)
 *   instead of a hand-written look at the first line; this variant also forwards absolute-URI
 *   plain HTTP requests (the node:http floor of a forward proxy);
 * - `join: 'pipeline'`: the two sockets are joined with `stream.pipeline` both ways instead of
 *   `pipe`;
 * - `connect: 'late'`: 200 first, the upstream connect only after the client's first bytes (the
 *   order safespot keeps, so that it can decide on the SNI before opening anything).
 *
 * Run as a child of bench/proxy.ts (`fork`): the first IPC message is `{ hosts, parse?, join?, connect?, refuse? }`
 * (hosts: name → "addr:port"); it listens on 127.0.0.1 port 0, answers `{ port }`, and exits when
 * the parent disconnects or on SIGTERM. It forwards only to the names in its table, never elsewhere.
 */
import { Agent as HttpAgent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { isMain } from './common.js';

export interface BareOptions {
  readonly parse?: 'raw' | 'http';
  readonly join?: 'pipe' | 'pipeline';
  /**
   * `late`: answer 200 first and connect upstream only once the client's first bytes (its
   * ClientHello) are in, as safespot must to decide on the SNI before opening anything; the bytes
   * are then written upstream and the sockets piped. The default connects first, then answers.
   */
  readonly connect?: 'first' | 'late';
  /**
   * A transparent TLS listener that refuses everything: on the client's first bytes (its
   * ClientHello, not parsed) one fatal access_denied alert, then close. The floor of a refusal on
   * safespot's transparent TLS listener (bench/proxy-ab.ts --mode refuse).
   */
  readonly refuse?: boolean;
}

const MAX_HEAD = 8192;
const CONNECT_LINE = /^CONNECT ([^\s:]+):(\d{1,5}) HTTP\/1\.[01]\r\n/;

function refuse(socket: Socket, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

type Table = Map<string, { address: string; port: number }>;

/** Answer 200, wait for the client's first bytes, then connect upstream and join (`connect: 'late'`). */
function forwardLate(client: Socket, dest: { address: string; port: number }, rest: Buffer, join: 'pipe' | 'pipeline'): void {
  client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  const go = (first: Buffer): void => forward(client, dest, first, join, false);
  if (rest.length > 0) return go(rest);
  client.once('data', (chunk: Buffer) => {
    client.pause();
    go(chunk);
  });
  client.resume();
}

/**
 * Connect upstream, answer 200 (unless answered already), join the two sockets. `rest`: bytes the
 * client sent after the head.
 */
function forward(client: Socket, dest: { address: string; port: number }, rest: Buffer, join: 'pipe' | 'pipeline', answer = true): void {
  const upstream = connect(dest.port, dest.address);
  const both = (): void => {
    upstream.destroy();
    client.destroy();
  };
  upstream.on('error', both);
  client.on('error', both);
  upstream.once('connect', () => {
    if (answer) client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (rest.length > 0) upstream.write(rest);
    if (join === 'pipeline') {
      pipeline(client, upstream, (err) => err && both());
      pipeline(upstream, client, (err) => err && both());
    } else {
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    }
    client.resume();
  });
}

function rawServer(table: Table, join: 'pipe' | 'pipeline', late: boolean): Server {
  return createServer((client) => {
    client.on('error', () => client.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD) refuse(client, '431 Request Header Fields Too Large');
        return;
      }
      client.off('data', onData);
      client.pause();
      const m = CONNECT_LINE.exec(head.subarray(0, end + 2).toString('latin1'));
      const dest = m ? table.get(m[1]!.toLowerCase()) : undefined;
      if (!dest) return refuse(client, '403 Forbidden');
      (late ? forwardLate : forward)(client, dest, head.subarray(end + 4), join);
    };
    client.on('data', onData);
  });
}

/** TLS alert record: alert(21), TLS 1.2 record version, length 2, fatal(2), access_denied(49). */
const ACCESS_DENIED = Buffer.from([21, 3, 3, 0, 2, 2, 49]);

function refusingServer(): Server {
  return createServer((client) => {
    client.on('error', () => client.destroy());
    client.once('data', () => {
      client.end(ACCESS_DENIED);
      client.resume();
    });
  });
}

function httpServer(table: Table, join: 'pipe' | 'pipeline'): Server {
  // Absolute-URI requests to a name in the table are forwarded over a keep-alive pool, headers as
  // they came (no hop-by-hop handling, no Via, no decision): node:http's own floor for a plain
  // HTTP forward proxy (bench/proxy-ab.ts --mode http). Anything else: 405.
  const agent = new HttpAgent({ keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' });
  const server = createHttpServer((req, res) => {
    const m = /^http:\/\/([^/:]+)(\/[^#]*)$/.exec(req.url ?? '');
    const dest = m ? table.get(m[1]!.toLowerCase()) : undefined;
    if (!dest) {
      res.writeHead(405, { connection: 'close' });
      return void res.end();
    }
    const up = httpRequest({ host: dest.address, port: dest.port, method: req.method, path: m![2], headers: req.headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '';
    const dest = table.get(url.slice(0, url.lastIndexOf(':')).toLowerCase());
    if (!dest) return refuse(socket, '403 Forbidden');
    forward(socket, dest, head, join);
  });
  return server as unknown as Server;
}

/** Start the forwarder. `hosts`: name → "addr:port". */
export function startBareForwarder(hosts: Readonly<Record<string, string>>, opts: BareOptions = {}, port = 0): Promise<Server> {
  const table: Table = new Map();
  for (const [name, value] of Object.entries(hosts)) {
    const i = value.lastIndexOf(':');
    table.set(name, { address: value.slice(0, i), port: Number(value.slice(i + 1)) });
  }
  const join = opts.join ?? 'pipe';
  const server = opts.refuse ? refusingServer() : opts.parse === 'http' ? httpServer(table, join) : rawServer(table, join, opts.connect === 'late');
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

if (isMain(import.meta.url)) {
  const stop = (): void => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
  process.once('message', (msg: { hosts: Record<string, string> } & BareOptions) => {
    startBareForwarder(msg.hosts, msg).then(
      (server) => {
        const addr = server.address();
        process.send?.({ port: typeof addr === 'object' && addr ? addr.port : 0 });
      },
      (err: unknown) => {
        process.send?.({ error: String(err) });
        process.exit(1);
      },
    );
  });
}
