/** Capture the ClientHello real clients (node, openssl, curl, python, chromium) send, at test time. */
import { runCmd } from './commands.js';

/**
 * The first flight of a real TLS client, captured on a port 0 listener: bytes are collected until
 * they parse as a complete ClientHello, then the connection is dropped (the client fails, which is
 * expected). `kind` picks the client: Node's tls.connect, `openssl s_client`, `curl`, Python's ssl
 * module (`python3`) or headless `chromium` (its name mapped to 127.0.0.1 by --host-resolver-rules).
 */
export type HelloClient = 'node' | 'openssl' | 'curl' | 'python' | 'chromium';

export async function captureClientHello(kind: HelloClient, servername: string, alpn: readonly string[] = []): Promise<Buffer> {
  const { createServer } = await import('node:net');
  const { parseClientHello } = await import('../../proxy/client-hello.js');
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const captured = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ClientHello from ${kind}`)), 20_000);
    server.on('connection', (s) => {
      s.on('error', () => {});
      let got = Buffer.alloc(0);
      s.on('data', (c: Buffer) => {
        got = Buffer.concat([got, c]);
        if (parseClientHello(got).kind !== 'need-more') {
          clearTimeout(timer);
          s.destroy();
          resolve(got);
        }
      });
    });
  });
  let client: Promise<unknown>;
  if (kind === 'node') {
    const tls = await import('node:tls');
    client = new Promise<void>((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ...(alpn.length ? { ALPNProtocols: [...alpn] } : {}) });
      c.on('error', () => resolve());
      c.on('close', () => resolve());
    });
  } else if (kind === 'openssl') {
    const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername];
    if (alpn.length) args.push('-alpn', alpn.join(','));
    client = runCmd('openssl', args, { timeoutMs: 20_000 });
  } else if (kind === 'python') {
    const script = [
      'import ssl, socket, sys',
      'ctx = ssl.create_default_context()',
      'ctx.check_hostname = False',
      'ctx.verify_mode = ssl.CERT_NONE',
      ...(alpn.length ? [`ctx.set_alpn_protocols(${JSON.stringify(alpn)})`] : []),
      `s = socket.create_connection(("127.0.0.1", ${port}), timeout=15)`,
      'try:',
      `    ctx.wrap_socket(s, server_hostname=${JSON.stringify(servername)})`,
      'except Exception:',
      '    pass',
    ].join('\n');
    client = runCmd('python3', ['-c', script], { timeoutMs: 20_000 });
  } else if (kind === 'chromium') {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const profile = mkdtempSync(join(tmpdir(), 'safespot-chromium-'));
    const args = [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-extensions', `--user-data-dir=${profile}`,
      `--host-resolver-rules=MAP ${servername} 127.0.0.1`, '--timeout=10000', '--dump-dom', `https://${servername}:${port}/`,
    ];
    client = runCmd('chromium', args, { timeoutMs: 25_000 }).finally(() => rmSync(profile, { recursive: true, force: true }));
  } else {
    client = runCmd('curl', ['-sk', '--max-time', '15', '--resolve', `${servername}:${port}:127.0.0.1`, `https://${servername}:${port}/`], { timeoutMs: 20_000 });
  }
  try {
    return await captured;
  } finally {
    await client;
    server.close();
  }
}
