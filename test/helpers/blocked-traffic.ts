/**
 * Guest traffic through a forward listener for the audit tests: a plain-HTTP GET through the proxy
 * (absolute URL, status back) and a CONNECT (its status line back), each on a fresh connection.
 */
import { request } from 'node:http';
import { connect } from 'node:net';

/** GET `url` through the forward proxy on 127.0.0.1:`port`; resolves with the status code. */
export function proxyGet(port: number, url: string): Promise<number> {
  const host = new URL(url).host;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'GET', path: url, headers: { host, connection: 'close' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** CONNECT `authority` through the forward proxy; resolves with the first line of the answer. */
export function proxyConnect(port: number, authority: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`));
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) {
        s.destroy();
        resolve(got.split('\r\n')[0]!);
      }
    });
    s.on('error', reject);
  });
}
