/**
 * The load generator of bench/proxy.ts, in its own process (so that its CPU time never counts as the
 * proxy's, and its event loop never shares a turn with the upstream servers). It opens connections
 * through safespot, through the bare forwarder or straight to the upstream, and answers each job
 * over IPC with wall times and per-connection latencies. It holds no policy and decides nothing.
 *
 * Protocol: the parent sends `{ id, job }` messages (the first one an `init` with the CA); the child
 * answers `{ id, result }` or `{ id, error }`. It exits when the parent disconnects.
 */
import { Agent, request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { isMain } from './common.js';

/** How to reach the upstream: straight, or through a CONNECT / forward proxy on 127.0.0.1. */
export type Via = { kind: 'direct'; port: number } | { kind: 'proxy'; port: number };

export type LoadJob =
  | { op: 'init'; ca: string }
  /**
   * n CONNECT+TLS connections (or direct TLS), `concurrency` at a time, one small GET each.
   * Connection i goes through vias[i % vias.length]: several targets measured interleaved, under
   * the same conditions of a shared machine.
   */
  | { op: 'tls'; vias: Via[]; upstreamPort: number; hosts: string[]; n: number; concurrency: number }
  /** One connection, one GET of `bytes` bytes. */
  | { op: 'bulk'; via: Via; upstreamPort: number; host: string; bytes: number }
  /**
   * n keep-alive plain-HTTP GETs, absolute-URI through the proxy or origin-form direct. With
   * `vias`, request i goes through vias[i % vias.length] (one keep-alive pool each, `concurrency`
   * requests at a time in all): targets measured interleaved, as for `tls`.
   */
  | { op: 'http'; via: Via; vias?: Via[]; hosts: string[]; n: number; concurrency: number }
  /**
   * n TLS connections straight to transparent TLS listeners (connection i to ports[i % ports.length]),
   * `concurrency` at a time, each with the SNI `host`: each must end in a fatal access_denied alert.
   */
  | { op: 'refuse'; ports: number[]; host: string; n: number; concurrency: number };

export interface LoadResult {
  /** Wall time of the whole job, ms. */
  wallMs: number;
  /** Per connection or request: time to the first response byte (tls, bulk) or the response head (http), ms. */
  latencies: number[];
  /** Bytes received (bulk). */
  bytes: number;
  /** tls: per entry of `vias`, time to the first response byte and to the close, ms. */
  groups?: { ttfb: number[]; total: number[] }[];
  errors: number;
  firstError?: string;
}

const TIMEOUT_MS = 15_000;
let ca = '';

/** CONNECT host:443 on the proxy; resolves with the socket once the 200 head is read. */
function openTunnel(port: number, host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    s.setNoDelay(true);
    let head: Buffer = Buffer.alloc(0);
    const fail = (err: Error): void => {
      s.destroy();
      reject(err);
    };
    const early = (): void => reject(new Error(`proxy closed before answering CONNECT (${head.toString('latin1').split('\r\n')[0]})`));
    s.once('error', fail);
    s.once('close', early);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      s.pause();
      const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      if (!/^HTTP\/1\.[01] 200 /.test(status)) return fail(new Error(`CONNECT refused: ${status}`));
      const rest = head.subarray(end + 4);
      if (rest.length > 0) s.unshift(rest);
      s.off('close', early);
      s.off('error', fail);
      resolve(s);
    };
    s.on('data', onData);
    s.write(`CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`);
  });
}

/** A TLS connection to `host` (SNI and certificate check) straight to the upstream or through a tunnel. */
async function openTls(via: Via, upstreamPort: number, host: string): Promise<TLSSocket> {
  const base = { servername: host, ca, rejectUnauthorized: true };
  const tls =
    via.kind === 'direct'
      ? tlsConnect({ ...base, host: '127.0.0.1', port: upstreamPort })
      : tlsConnect({ ...base, socket: await openTunnel(via.port, host) });
  return new Promise((resolve, reject) => {
    tls.once('secureConnect', () => {
      tls.off('error', reject);
      resolve(tls);
    });
    tls.once('error', reject);
  });
}

/** One GET over a fresh connection: the time to the first response byte, to the end, and the byte count. */
async function getOnce(via: Via, upstreamPort: number, host: string, path: string): Promise<{ ttfb: number; total: number; bytes: number }> {
  const t0 = performance.now();
  const tls = await openTls(via, upstreamPort, host);
  tls.setNoDelay(true);
  return new Promise((resolve, reject) => {
    let ttfb = -1;
    let bytes = 0;
    let status = '';
    const timer = setTimeout(() => tls.destroy(new Error('timed out')), TIMEOUT_MS);
    tls.on('data', (chunk: Buffer) => {
      if (ttfb < 0) {
        ttfb = performance.now() - t0;
        status = chunk.subarray(0, 16).toString('latin1');
      }
      bytes += chunk.length;
    });
    tls.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    tls.once('end', () => {
      clearTimeout(timer);
      tls.destroy();
      if (!status.startsWith('HTTP/1.1 200')) reject(new Error(`upstream answered "${status}"`));
      else resolve({ ttfb, total: performance.now() - t0, bytes });
    });
    tls.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

/** Run `n` tasks, `concurrency` at a time; a failed task is counted, never thrown. */
async function pool(n: number, concurrency: number, task: (i: number) => Promise<number>): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        latencies.push(await task(i));
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { wallMs: performance.now() - t0, latencies, bytes: 0, errors, ...(firstError ? { firstError } : {}) };
}

function httpGet(agent: Agent, via: Via, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpRequest(
      { agent, host: '127.0.0.1', port: via.port, path: via.kind === 'proxy' ? `http://${host}/small` : '/small', headers: { host } },
      (res) => {
        const t = performance.now() - t0;
        res.resume();
        res.once('end', () => (res.statusCode === 200 ? resolve(t) : reject(new Error(`status ${res.statusCode}`))));
        res.once('error', reject);
      },
    );
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end();
  });
}

/** A TLS ClientHello with the SNI `host` to `port`: resolves with the time to the access_denied alert. */
function refusedOnce(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const tls = tlsConnect({ host: '127.0.0.1', port, servername: host, rejectUnauthorized: false });
    const timer = setTimeout(() => tls.destroy(new Error('timed out')), TIMEOUT_MS);
    tls.once('secureConnect', () => tls.destroy(new Error('the handshake completed: not refused')));
    tls.once('error', (err: Error & { code?: string }) => {
      clearTimeout(timer);
      tls.destroy();
      if (err.code === 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED') resolve(performance.now() - t0);
      else reject(err);
    });
    tls.once('close', () => {
      clearTimeout(timer);
      reject(new Error('closed without an alert')); // (no effect after the alert: settled already)
    });
  });
}

export async function runJob(job: LoadJob): Promise<LoadResult | null> {
  switch (job.op) {
    case 'init':
      ca = job.ca;
      return null;
    case 'tls': {
      const groups = job.vias.map(() => ({ ttfb: [] as number[], total: [] as number[] }));
      const r = await pool(job.n, job.concurrency, async (i) => {
        const g = i % job.vias.length;
        const x = await getOnce(job.vias[g]!, job.upstreamPort, job.hosts[i % job.hosts.length]!, '/small');
        groups[g]!.ttfb.push(x.ttfb);
        groups[g]!.total.push(x.total);
        return x.ttfb;
      });
      return { ...r, groups };
    }
    case 'bulk': {
      const t0 = performance.now();
      const r = await getOnce(job.via, job.upstreamPort, job.host, `/bulk?bytes=${job.bytes}`);
      return { wallMs: performance.now() - t0, latencies: [r.ttfb], bytes: r.bytes, errors: 0 };
    }
    case 'refuse':
      return pool(job.n, job.concurrency, (i) =>
        refusedOnce(job.ports[i % job.ports.length]!, job.host).catch((err: Error) => {
          throw new Error(`target ${i % job.ports.length}: ${err.message}`);
        }),
      );
    case 'http': {
      const vias = job.vias ?? [job.via];
      const agents = vias.map(() => new Agent({ keepAlive: true, maxSockets: Math.max(1, Math.ceil(job.concurrency / vias.length)) }));
      try {
        // A failure names its target (vias[k]), so that an A/B says which build failed.
        return await pool(job.n, job.concurrency, (i) =>
          httpGet(agents[i % vias.length]!, vias[i % vias.length]!, job.hosts[i % job.hosts.length]!).catch((err: Error) => {
            throw new Error(`target ${i % vias.length}: ${err.message}`);
          }),
        );
      } finally {
        for (const a of agents) a.destroy();
      }
    }
  }
}

if (isMain(import.meta.url)) {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (msg: { id: number; job: LoadJob }) => {
    runJob(msg.job).then(
      (result) => process.send?.({ id: msg.id, result }),
      (err: unknown) => process.send?.({ id: msg.id, error: (err as Error).message ?? String(err) }),
    );
  });
}
