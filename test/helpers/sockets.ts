/** Raw TCP clients for tests: open, read until a condition or the close, one exchange, TLS alerts. */
import { connect, type Socket } from 'node:net';

/** Open a TCP connection (optionally from a given loopback address). */
export function openSocket(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
  });
}

/** Everything a socket sends until it closes (or `timeoutMs` passes: then what came so far). */
export function readAll(s: Socket, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(() => {
      s.destroy();
      done();
    }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('close', done);
  });
}

/** Read until `predicate(bytesSoFar)` holds, the socket closes, or `timeoutMs` passes. */
export function readUntil(s: Socket, predicate: (b: Buffer) => boolean, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const finish = (): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', finish);
      resolve(got);
    };
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      if (predicate(got)) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    s.on('data', onData);
    s.once('close', finish);
  });
}

/** Send bytes on a fresh connection and read until the server closes. */
export async function exchange(port: number, bytes: Buffer | string, localAddress?: string): Promise<Buffer> {
  const s = await openSocket(port, localAddress);
  const all = readAll(s);
  s.write(bytes);
  return all;
}

/** The fatal alert record we expect: 0x15 0x03 0x0X 0x00 0x02 0x02 description. */
export function isAlert(b: Buffer, description: number): boolean {
  return b.length >= 7 && b[0] === 0x15 && b[1] === 0x03 && b[2]! <= 0x03 && b[3] === 0 && b[4] === 2 && b[5] === 2 && b[6] === description;
}
