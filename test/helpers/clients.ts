/**
 * Shared pieces of the proxy integration tests: a small Hooks object (block by host, path or
 * category, no policy engine needed), a recording Observer, a proxy with test defaults, raw-socket
 * clients and a runner for curl / openssl.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import type { Decision } from '../../policy/decision.js';
import { CidrSet } from '../../policy/ip.js';
import type { Hooks, Observer, Verdict } from '../../proxy/hooks.js';
import { startProxy, type ProxyHandle, type ProxyOptions } from '../../proxy/server.js';

export const allow: Decision = { action: 'allow', category: null, list: null, rule: 'none', reason: 'test allow' };
export const block = (category: string): Decision => ({ action: 'block', category, list: `test-${category}`, rule: 'domain', reason: 'test block' });

/** Hooks for tests: hosts named `blocked.test` / `csam.test` (and subdomains) are blocked, and URLs whose path has `/blocked`. */
export function testHooks(extra: { redirect?: Record<string, string> } = {}): Hooks & { calls: string[] } {
  const calls: string[] = [];
  const hostDecision = (host: string): Decision => {
    const h = host.toLowerCase();
    if (h === 'csam.test' || h.endsWith('.csam.test')) return block('csam');
    if (h === 'blocked.test' || h.endsWith('.blocked.test')) return block('adult');
    return allow;
  };
  const withRedirect = (decision: Decision, host: string | null): Verdict => {
    const to = host === null ? undefined : extra.redirect?.[host];
    return to === undefined || decision.action === 'block' ? { decision } : { decision, connectHost: to };
  };
  return {
    calls,
    onConnect(target) {
      calls.push(`connect ${target.host}:${target.port}`);
      return withRedirect(hostDecision(target.host), target.host);
    },
    onClientHello(hello, _conn, connectHost) {
      calls.push(`hello ${hello.sni ?? '-'} ${connectHost ?? '-'}`);
      const name = hello.sni ?? connectHost ?? null;
      if (name === null) return { decision: block('no-sni') };
      return withRedirect(hostDecision(name), name);
    },
    onRequest(url) {
      calls.push(`request ${url}`);
      const u = new URL(url);
      const d = hostDecision(u.hostname);
      return withRedirect(u.pathname.startsWith('/blocked') ? block('adult') : d, u.hostname);
    },
  };
}

export interface RecordingObserver extends Observer {
  readonly events: string[];
  count(prefix: string): number;
}

export function recordingObserver(): RecordingObserver {
  const events: string[] = [];
  return {
    events,
    count: (prefix) => events.filter((e) => e === prefix || e.startsWith(prefix + ' ')).length,
    verdict: (e) => events.push(`verdict ${e.listener} ${e.protocol} ${e.action}`),
    clientHello: (r) => events.push(`hello ${r}`),
    upstreamError: (r) => events.push(`upstream ${r}`),
    limitHit: (l) => events.push(`limit ${l}`),
    connectionOpened: (l) => events.push(`open ${l}`),
    connectionClosed: (l) => events.push(`close ${l}`),
    imageScanned: (r) => events.push(`image ${r}`),
    imageBlocked: (e) => events.push(`imageBlocked ${e.category}`),
  };
}

type DeepPartial<T> = { -readonly [K in keyof T]?: T[K] extends object ? Partial<T[K]> : T[K] };

/** Options with test defaults: every listener on 127.0.0.1:0, private destinations allowed. */
export function testOptions(hosts: Record<string, string>, over: DeepPartial<ProxyOptions> = {}): ProxyOptions {
  return {
    listeners: over.listeners ?? { forward: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 }, tls: { host: '127.0.0.1', port: 0 } },
    clients: (over.clients as CidrSet | undefined) ?? CidrSet.parse(['127.0.0.0/8', '::1/128']),
    upstream: { hosts, allowPrivate: true, ports: [443, 80], connectTimeoutMs: 5000, dnsCacheTtlMs: 60_000, ...over.upstream },
    tls: { notTls: 'block', clientHelloTimeout: 10_000, clientHelloMaxBytes: 16_384, ...over.tls },
    limits: {
      maxConnections: 1000,
      maxConnectionsPerClient: 100,
      maxHeaderBytes: 16_384,
      headersTimeout: 10_000,
      idleTimeout: 60_000,
      drainTimeout: 2000,
      ...over.limits,
    },
    blockPage: { contact: 'staff@venue.test', languages: ['en', 'sq'], ...over.blockPage },
  };
}

/** Start a proxy and register its teardown on `t`. */
export async function startTestProxy(
  t: { teardown(fn: () => unknown): void },
  opts: ProxyOptions,
  hooks: Hooks,
  observer: Observer,
): Promise<ProxyHandle & { port(name: 'forward' | 'http' | 'tls'): number }> {
  const proxy = await startProxy(opts, hooks, observer);
  t.teardown(() => proxy.close(0));
  return Object.assign(proxy, {
    port(name: 'forward' | 'http' | 'tls'): number {
      const a = proxy.addresses()[name];
      if (!a) throw new Error(`no ${name} listener`);
      return a.port;
    },
  });
}

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

export interface CmdResult {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Run a command with a time bound; stdin gets `input` (then EOF, unless keepStdinOpenMs). */
export function runCmd(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number; keepStdinOpenMs?: number } = {}): Promise<CmdResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdin.on('error', () => {});
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout: Buffer.alloc(0), stderr: String(e) });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    if (opts.input !== undefined) child.stdin.write(opts.input);
    if (opts.keepStdinOpenMs) setTimeout(() => child.stdin.end(), opts.keepStdinOpenMs);
    else child.stdin.end();
  });
}

/** The fatal alert record we expect: 0x15 0x03 0x0X 0x00 0x02 0x02 description. */
export function isAlert(b: Buffer, description: number): boolean {
  return b.length >= 7 && b[0] === 0x15 && b[1] === 0x03 && b[2]! <= 0x03 && b[3] === 0 && b[4] === 2 && b[5] === 2 && b[6] === description;
}

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
