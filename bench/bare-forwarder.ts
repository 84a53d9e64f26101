/**
 * The baseline for bench/proxy.ts: a minimal CONNECT forwarder with no filtering, no limits, no
 * metrics and no ClientHello reading. It reads the request head, parses the CONNECT line, maps the
 * host through a static table (the same one safespot gets as `upstream.hosts`, so neither side uses
 * DNS), connects upstream, answers 200 and pipes both ways. It is what "a proxy that does nothing"
 * costs in Node, so that safespot's figures can be read against it.
 *
 * Run as a child of bench/proxy.ts (`fork`): the first IPC message is `{ hosts }` (host → "addr:port");
 * it listens on 127.0.0.1 port 0, answers `{ port }`, and exits when the parent disconnects or on
 * SIGTERM.
 * It forwards only to the names in its table, never elsewhere.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MAX_HEAD = 8192;
const CONNECT_LINE = /^CONNECT ([^\s:]+):(\d{1,5}) HTTP\/1\.[01]\r\n/;

function refuse(socket: Socket, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

/** Start the forwarder. `hosts`: name → "addr:port". */
export function startBareForwarder(hosts: Readonly<Record<string, string>>, port = 0): Promise<Server> {
  const table = new Map<string, { address: string; port: number }>();
  for (const [name, value] of Object.entries(hosts)) {
    const i = value.lastIndexOf(':');
    table.set(name, { address: value.slice(0, i), port: Number(value.slice(i + 1)) });
  }
  const server = createServer((client) => {
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
      const rest = head.subarray(end + 4);
      const upstream = connect(dest.port, dest.address);
      upstream.on('error', () => {
        upstream.destroy();
        client.destroy();
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      upstream.once('connect', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    client.on('data', onData);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  const stop = (): void => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
  process.once('message', (msg: { hosts: Record<string, string> }) => {
    startBareForwarder(msg.hosts).then(
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
