/**
 * Real TLS with minted leaves: a tls server on 127.0.0.1 (port 0) picks its certificate through
 * `LeafMinter.sniCallback`; Node, openssl s_client and curl trust it with the CA and only with it.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket, connect, createServer, type PeerCertificate, type Server, type TlsOptions } from 'node:tls';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { LeafMinter, initCa, loadCa, type Ca } from '../../certs/index.js';

const BODY = 'hello from a minted leaf\n';

/** A TLS server answering any bytes with one small HTTP response; torn down by the test. */
async function startServer(t: Test, options: TlsOptions): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ ALPNProtocols: ['http/1.1'], ...options }, (socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => {
      socket.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined); // refused handshakes are expected here
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

interface ClientResult {
  authorized: boolean;
  error: (Error & { code?: string }) | undefined;
  cert: PeerCertificate | undefined;
  data: string;
  alpn: string | false | undefined;
}

/** One HTTPS-shaped exchange with a Node TLS client. */
function fetchOnce(port: number, servername: string | undefined, ca: string | undefined): Promise<ClientResult> {
  return new Promise((resolve) => {
    const result: ClientResult = { authorized: false, error: undefined, cert: undefined, data: '', alpn: undefined };
    const socket = connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ...(ca ? { ca } : {}), ALPNProtocols: ['h2', 'http/1.1'] });
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      result.authorized = socket.authorized;
      result.cert = socket.getPeerCertificate();
      result.alpn = socket.alpnProtocol ?? false;
      socket.write(`GET / HTTP/1.1\r\nHost: ${servername ?? '127.0.0.1'}\r\n\r\n`);
    });
    socket.on('data', (chunk: string) => (result.data += chunk));
    socket.on('error', (err) => (result.error = err));
    socket.on('close', () => resolve(result));
  });
}

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

async function setup(t: Test, cacheSize = 1000): Promise<{ ca: Ca; dir: string; minter: LeafMinter; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'safespot-certs-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = await initCa(dir);
  const minter = new LeafMinter(ca, { cacheSize });
  const port = await startServer(t, { SNICallback: minter.sniCallback });
  return { ca, dir, minter, port };
}

t.test('a Node client that trusts the CA verifies the minted leaf', async (t) => {
  const { ca, minter, port } = await setup(t);
  const r = await fetchOnce(port, 'x.test', ca.certPem);
  t.equal(r.error, undefined);
  t.equal(r.authorized, true, 'authorized against the CA');
  t.equal(r.cert?.subject.CN, 'x.test');
  t.equal(r.cert?.subjectaltname, 'DNS:x.test');
  t.equal(r.cert?.issuer.CN, new X509Certificate(ca.certPem).subject.split('CN=')[1]);
  t.equal(r.alpn, 'http/1.1', 'h2 is not negotiated');
  t.match(r.data, /^HTTP\/1\.1 200 OK/);
  t.match(r.data, BODY);
  const again = await fetchOnce(port, 'X.TEST', ca.certPem);
  t.equal(again.authorized, true);
  t.equal(minter.stats.mints, 1, 'the second connection used the cached context');
});

t.test('a client that does not trust the CA gets a certificate error and no data', async (t) => {
  const { port, minter } = await setup(t);
  const r = await fetchOnce(port, 'x.test', undefined);
  t.equal(r.authorized, false);
  t.ok(r.error, 'the handshake failed');
  t.match(r.error?.code, /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)$/);
  t.equal(r.data, '', 'no content');
  t.equal(minter.stats.mints, 1, 'the server did mint (the refusal is the client’s)');
});

t.test('a client that trusts another CA is refused too', async (t) => {
  const { port } = await setup(t);
  const otherDir = await mkdtemp(join(tmpdir(), 'safespot-certs-other-'));
  t.teardown(() => rm(otherDir, { recursive: true, force: true }));
  const other = await initCa(otherDir);
  const r = await fetchOnce(port, 'x.test', other.certPem);
  t.equal(r.authorized, false);
  t.ok(r.error);
  t.equal(r.data, '');
});

t.test('an IP-literal leaf verifies by IP SAN', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'safespot-certs-ip-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = await initCa(dir);
  const minter = new LeafMinter(ca);
  // Clients send no SNI for IP literals (RFC 6066 §3), so the context is chosen up front, as the
  // proxy will when it knows the destination from a CONNECT authority: a plain TCP server whose
  // sockets are wrapped in a server-side TLSSocket with the minted context.
  const sockets = new Set<Socket>();
  const server = createNetServer((raw) => {
    raw.on('error', () => undefined);
    void minter.getSecureContext('127.0.0.1').then((secureContext) => {
      const tlsSocket = new TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
      sockets.add(tlsSocket);
      tlsSocket.on('error', () => undefined);
      tlsSocket.once('data', () => tlsSocket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  const port = (server.address() as AddressInfo).port;
  const r = await fetchOnce(port, undefined, ca.certPem);
  t.equal(r.error, undefined);
  t.equal(r.authorized, true);
  t.equal(r.cert?.subjectaltname, 'IP Address:127.0.0.1');
  t.match(r.data, BODY);
});

t.test('openssl s_client verifies the chain and the host name', async (t) => {
  const { dir, port } = await setup(t);
  const caFile = join(dir, 'ca.crt');
  const ok = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'x.test', '-CAfile', caFile, '-verify_return_error', '-verify_hostname', 'x.test']);
  t.match(ok.stdout, /Verify return code: 0 \(ok\)/, ok.stderr);
  t.match(ok.stdout, /subject=.*CN ?= ?x\.test/);
  const strict = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'y.test', '-CAfile', caFile, '-verify_return_error', '-x509_strict']);
  t.match(strict.stdout, /Verify return code: 0 \(ok\)/, 'passes -x509_strict');
  const untrusted = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'x.test', '-CApath', '/nonexistent', '-verify_return_error']);
  t.not(untrusted.code, 0, 'without the CA, -verify_return_error fails the handshake');
  t.notMatch(untrusted.stdout, /Verify return code: 0 \(ok\)/);
});

t.test('curl with --cacert gets the body; without it, a certificate error', async (t) => {
  const { dir, port } = await setup(t);
  const url = `https://x.test:${port}/`;
  const resolve = `x.test:${port}:127.0.0.1`;
  const ok = await run('curl', ['-sS', '--max-time', '15', '--cacert', join(dir, 'ca.crt'), '--resolve', resolve, url]);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stdout, BODY);
  const refused = await run('curl', ['-sS', '--max-time', '15', '--resolve', resolve, url]);
  t.equal(refused.code, 60, 'curl exit 60: peer certificate cannot be authenticated');
  t.equal(refused.stdout, '');
});

t.test('a burst of 200 distinct hosts completes and the cache stays bounded', async (t) => {
  const { ca, minter, port } = await setup(t, 50);
  const heapBefore = process.memoryUsage().heapUsed;
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => fetchOnce(port, `burst-${i}.test`, ca.certPem)));
  const good = results.filter((r, i) => r.authorized && r.cert?.subjectaltname === `DNS:burst-${i}.test` && r.data.endsWith(BODY));
  t.equal(good.length, 200, 'every host got its own verified leaf and the body');
  t.equal(minter.stats.mints, 200);
  t.equal(minter.stats.size, 50, 'cache bounded at cacheSize');
  t.equal(minter.stats.evictions, 150);
  t.equal(minter.stats.failures, 0);
  t.comment(`heap growth over the burst: ${((process.memoryUsage().heapUsed - heapBefore) / 1e6).toFixed(1)} MB (informational)`);
});

t.test('a CA made by openssl (an operator’s own) loads, and its leaves pass openssl verify -x509_strict', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'safespot-certs-openssl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const made = await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '30',
    '-subj', '/C=XX/O=Example Venue/CN=Example Venue Interception CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  t.equal(made.code, 0, made.stderr);
  const ca = await loadCa(dir);
  const leaf = await new LeafMinter(ca).mint('venue.test');
  await writeFile(join(dir, 'leaf.pem'), leaf.certPem);
  const verified = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.crt'), join(dir, 'leaf.pem')]);
  t.equal(verified.code, 0, verified.stderr);
  t.match(verified.stdout, /leaf\.pem: OK/);
  t.equal(new X509Certificate(leaf.certPem).issuer, 'C=XX\nO=Example Venue\nCN=Example Venue Interception CA', 'issuer copied byte for byte');
  const port = await startServer(t, { SNICallback: new LeafMinter(ca).sniCallback });
  const r = await fetchOnce(port, 'venue.test', ca.certPem);
  t.equal(r.authorized, true);
  t.match(r.data, BODY);
});
