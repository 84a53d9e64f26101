/**
 * Soak: a real `safespot serve` (a child process, or the container image; one process or a cluster)
 * under a steady mix of allowed, blocked, malformed and slow connections for a bounded time, with
 * its processes' RSS (/proc/PID/status, summed) and V8 heap (the admin listener's
 * `nodejs_heap_size_used_bytes`) sampled every few seconds (bench/soak-serve.ts starts and reads it). The figure that matters
 * is the growth after warm-up: a leak shows as a steady climb, a bounded process as a plateau.
 * Figures only, never pass/fail (test/integration/hardening-soak.test.ts runs a short version and
 * checks that nothing crashed and no connection was left open).
 *
 *   npm run build && node dist/bench/run.js soak            # 10 minutes
 *   npm run build && node dist/bench/run.js --quick soak    # 60 seconds
 *   SAFESPOT_SOAK_SECONDS=120 node dist/bench/soak.js       # any duration (also `--seconds N`)
 *   node dist/bench/soak.js --workers 2                     # a cluster (also SAFESPOT_SOAK_WORKERS)
 *   node dist/bench/soak.js --image localhost/safespot:test # the container image, with podman
 *                                                           # (also SAFESPOT_SOAK_IMAGE; bench/soak-serve.ts)
 *   node dist/bench/soak.js --image IMAGE --malloc glibc    # without the image's jemalloc: its baseline
 *   node dist/bench/soak.js --malloc jemalloc               # this tree on this machine's libjemalloc2
 *
 * Everything runs on loopback: the upstream servers live in this process, the clients too.
 */
import { chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchResult, isMain } from './common.js';
import { limitsHit, mallocOf, metricSum, metricsText, startServe, statusBytes, type ServeUnderSoak } from './soak-serve.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEMO = join(HERE, '..', '..', 'appliance', 'demo');

export interface SoakOptions {
  /** Length of the load phase. */
  seconds: number;
  /** Seconds between memory samples. */
  sampleEverySeconds?: number;
  /** Concurrent request loops (each paces itself; the mix is the same whatever this is). */
  loops?: number;
  /** Connections kept trickling request heads at all times. */
  slowClients?: number;
  /** `workers` of the config (1: one process; N: a cluster, its processes' memory summed). */
  workers?: number;
  /** Soak this container image (podman) instead of the serve of this tree. */
  image?: string;
  /** The appliance's malloc (bench/soak-serve.ts ServeOptions.malloc); unset: as the environment says. */
  malloc?: 'glibc' | 'jemalloc';
  log?: (line: string) => void;
}

export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  /** Summed over the appliance's node processes (one, or the primary and its workers). */
  rssBytes: number;
  heapUsedBytes: number;
  /**
   * The V8 heap's committed size (`nodejs_heap_size_total_bytes`): pages V8 holds whether or not
   * they are in use. RSS minus this is what native code holds (SQLite, OpenSSL, buffers, libuv,
   * the compile worker), the figure in which a native leak would show.
   */
  heapTotalBytes: number;
  /** Anonymous resident memory (`RssAnon`): what the process allocated, without mapped files. */
  rssAnonBytes: number;
  /** Memory outside the V8 heap that V8 knows of: Buffers and ArrayBuffers (`nodejs_external_memory_bytes`). */
  externalBytes: number;
  connectionsActive: number;
}

export interface SoakReport {
  seconds: number;
  samples: SoakSample[];
  /** Operations by kind and outcome (`allowed:ok`, `blocked:ok`, `malformed:ok`, `slow:ok`, `…:unexpected`). */
  counts: Record<string, number>;
  /** Answers that were not what the mix expects (a wrong status, a reset before an answer). */
  unexpected: number;
  /** The child was still running when the load ended. */
  aliveAtEnd: boolean;
  /** Sum of safespot_connections_active over the guest listeners after the load stopped and settled. */
  connectionsActiveAfter: number;
  /** safespot_limits_hit_total by limit, at the end. */
  limitsHit: Record<string, number>;
  /** Node processes of the appliance whose memory was summed (at the last sample). */
  processes: number;
  /** The malloc of each measured process (`jemalloc`, `glibc`), as /proc/PID/maps shows it. */
  malloc: string[];
  /** Exit code of the child after SIGTERM. */
  exitCode: number | null;
  /** Operational log of the child (stderr). */
  log: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** A ClientHello naming `sni` (RFC 8446 §4.1.2), enough for the proxy to route or refuse it. */
function clientHello(sni: string): Buffer {
  const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
  const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
  const name = Buffer.from(sni, 'latin1');
  const sniExt = Buffer.concat([u16(0), vec16(vec16(Buffer.concat([Buffer.from([0]), vec16(name)])))]);
  const versions = Buffer.concat([u16(43), vec16(Buffer.from([4, 3, 4, 3, 3]))]);
  const body = Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    vec16(Buffer.from([0x13, 0x01, 0x13, 0x02])),
    Buffer.from([1, 0]),
    vec16(Buffer.concat([sniExt, versions])),
  ]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
}

/**
 * Write `bytes` on a fresh connection, then read until the server closes (bounded). `end`: half-close
 * after writing (node:http drops a forwarded answer to a client that half-closed, as browsers never
 * do, so only refusals use it).
 */
function exchange(port: number, bytes: Buffer | string, end = false, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.on('error', () => {});
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    s.on('connect', () => (end ? s.end(bytes) : s.write(bytes)));
  });
}

/** Run the soak and return every sample and count (bench() turns this into rows). */
export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'safespot-soak-'));
  const servers: Server[] = [];
  let app: ServeUnderSoak | null = null;
  try {
    const upstream = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('soak ok\n');
    });
    upstream.keepAliveTimeout = 1000;
    servers.push(upstream);
    const upPort = await listen(upstream);
    // Stands in for a TLS server behind allowed SNI: it answers some bytes and closes.
    const tlsSink = createNetServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end(Buffer.from([0x16, 3, 3, 0, 1, 0])));
    });
    servers.push(tlsSink);
    const sinkPort = await listen(tlsSink);

    const config = join(dir, 'config.yaml');
    writeFileSync(config, [
      'listeners:',
      '  forward: { host: 127.0.0.1, port: 0 }',
      '  http: { host: 127.0.0.1, port: 0 }',
      '  tls: { host: 127.0.0.1, port: 0 }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'upstream:',
      `  hosts: { allowed.test: "127.0.0.1:${upPort}", tls-allowed.test: "127.0.0.1:${sinkPort}" }`,
      'limits: { headersTimeout: 2s, idleTimeout: 10s, drainTimeout: 2s }',
      'tls: { clientHelloTimeout: 2s }',
      'lists:',
      `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
      `journal: { path: ${join(dir, 'journal.db')} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      `workers: ${opts.workers ?? 1}`,
      '',
    ].join('\n'));
    if (opts.image) {
      // The image runs as uid 10001: the soak's directory is its state volume.
      for (const f of ['', ...readdirSync(dir)]) chownSync(join(dir, f), 10001, 10001);
    }
    app = await startServe(config, { image: opts.image, mounts: [dir, DEMO], ...(opts.malloc ? { malloc: opts.malloc } : {}) });
    const { forward, http, tls } = app.ports as { forward: number; http: number; tls: number };
    const adminPort = app.admin;

    const counts: Record<string, number> = {};
    let unexpected = 0;
    const note = (kind: string, ok: boolean): void => {
      const key = `${kind}:${ok ? 'ok' : 'unexpected'}`;
      counts[key] = (counts[key] ?? 0) + 1;
      if (!ok) unexpected++;
    };
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const viaProxy = (url: string): Promise<number> =>
      new Promise((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port: forward, path: url, agent, headers: { host: new URL(url).host } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(-1));
        });
        req.on('error', () => resolve(-1));
        req.end();
      });
    const status = (b: Buffer): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(b.toString('latin1'))?.[1] ?? 0);

    let n = 0;
    // One step of the mix; the proportions repeat every 10 steps.
    const step = async (): Promise<void> => {
      const i = n++ % 10;
      switch (i) {
        case 0:
        case 1:
          note('allowed', (await viaProxy(`http://allowed.test/page/${n % 1000}`)) === 200);
          return;
        case 2: {
          // An allowed tunnel: CONNECT, 200, the ClientHello spliced to the sink, its bytes back.
          const r = await exchange(forward, Buffer.concat([Buffer.from('CONNECT tls-allowed.test:443 HTTP/1.1\r\nHost: tls-allowed.test:443\r\n\r\n'), clientHello('tls-allowed.test')]));
          note('connect-allowed', status(r) === 200 && r.subarray(r.indexOf('\r\n\r\n') + 4)[0] === 0x16);
          return;
        }
        case 3:
          note('blocked', (await viaProxy(`http://blocked.test/p${n % 1000}`)) === 403);
          return;
        case 4:
          note('transparent', status(await exchange(http, `GET /t${n % 100} HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n`)) === 200);
          return;
        case 5:
          note('tls-blocked', (await exchange(tls, clientHello('adult.test'))).subarray(0, 1)[0] === 0x15);
          return;
        case 6:
          note('tls-allowed', (await exchange(tls, clientHello('tls-allowed.test'))).length > 0);
          return;
        case 7: {
          const r = await exchange(forward, 'CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n');
          note('connect-blocked', status(r) === 403);
          return;
        }
        case 8: {
          const junk = Buffer.alloc(64 + (n % 200));
          for (let k = 0; k < junk.length; k++) junk[k] = (n * 31 + k * 7) & 0xff;
          junk[0] = 0x47; // 'G': starts like a method, then garbage
          const r = await exchange(forward, Buffer.concat([junk, Buffer.from('\r\n\r\n')]), true);
          note('malformed', r.length === 0 || status(r) >= 400);
          return;
        }
        default: {
          const r = await exchange(tls, Buffer.from([0x16, 3, 1, 0x40, 0, 1, 0, 0x3f]));
          note('truncated-tls', r[0] === 0x15 || r.length === 0);
          return;
        }
      }
    };

    // Slow clients: a request head trickled a byte every 500 ms; the 2 s headers timeout ends each one.
    const slowOne = async (): Promise<void> => {
      const s: Socket = connect({ host: '127.0.0.1', port: forward });
      s.on('error', () => {});
      const got: Buffer[] = [];
      s.on('data', (c: Buffer) => got.push(c));
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      const text = 'GET http://allowed.test/slow HTTP/1.1\r\nHost: allowed.test\r\nX-Pad: ';
      let k = 0;
      const timer = setInterval(() => {
        if (s.writable) s.write(text[k++ % text.length]!);
      }, 500);
      const guard = setTimeout(() => s.destroy(), 15_000);
      await closed;
      clearInterval(timer);
      clearTimeout(guard);
      note('slow', status(Buffer.concat(got)) === 408);
    };

    const samples: SoakSample[] = [];
    let processes = 0;
    let malloc: string[] = [];
    const started = Date.now();
    const endAt = started + opts.seconds * 1000;
    let stop = false;
    const loops = Array.from({ length: opts.loops ?? 6 }, async () => {
      while (!stop && Date.now() < endAt) {
        await step();
        await sleep(25);
      }
    });
    const slow = Array.from({ length: opts.slowClients ?? 8 }, async () => {
      while (!stop && Date.now() < endAt) await slowOne();
    });
    const sampler = (async () => {
      const every = (opts.sampleEverySeconds ?? 5) * 1000;
      while (!stop && Date.now() < endAt) {
        try {
          const text = await metricsText(adminPort);
          const pids = app.pids();
          processes = pids.length;
          if (malloc.length === 0) malloc = pids.map(mallocOf);
          const status = pids.map(statusBytes).reduce((a, b) => ({ rss: a.rss + b.rss, anon: a.anon + b.anon }), { rss: 0, anon: 0 });
          const s: SoakSample = {
            t: (Date.now() - started) / 1000,
            rssBytes: status.rss,
            heapUsedBytes: metricSum(text, 'nodejs_heap_size_used_bytes'),
            heapTotalBytes: metricSum(text, 'nodejs_heap_size_total_bytes'),
            rssAnonBytes: status.anon,
            externalBytes: metricSum(text, 'nodejs_external_memory_bytes'),
            connectionsActive: metricSum(text, 'safespot_connections_active', 'listener="forward"') +
              metricSum(text, 'safespot_connections_active', 'listener="http"') +
              metricSum(text, 'safespot_connections_active', 'listener="tls"'),
          };
          samples.push(s);
          log(`soak t=${s.t.toFixed(0)}s rss=${(s.rssBytes / 2 ** 20).toFixed(1)}MiB heap=${(s.heapUsedBytes / 2 ** 20).toFixed(1)}MiB heapTotal=${(s.heapTotalBytes / 2 ** 20).toFixed(1)}MiB anon=${(s.rssAnonBytes / 2 ** 20).toFixed(1)}MiB external=${(s.externalBytes / 2 ** 20).toFixed(1)}MiB conns=${s.connectionsActive} procs=${processes}`);
        } catch {
          // the child is gone: the end of the run reports it
        }
        await sleep(Math.min(every, Math.max(0, endAt - Date.now())));
      }
    })();
    await Promise.all([...loops, ...slow, sampler]);
    stop = true;
    agent.destroy();
    const aliveAtEnd = app.alive();

    // Let the server see every close (keep-alive sockets, refusals' grace timers), then read once more.
    let after = NaN;
    let text = '';
    for (let i = 0; i < 40; i++) {
      text = await metricsText(adminPort).catch(() => '');
      after = ['forward', 'http', 'tls'].reduce((a, l) => a + metricSum(text, 'safespot_connections_active', `listener="${l}"`), 0);
      if (after === 0) break;
      await sleep(250);
    }
    const hit = limitsHit(text);
    const exitCode = await app.stop();
    return {
      seconds: opts.seconds,
      samples,
      counts,
      unexpected,
      aliveAtEnd,
      connectionsActiveAfter: after,
      limitsHit: hit,
      processes,
      malloc,
      exitCode,
      log: app.log(),
    };
  } finally {
    app?.kill();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

/** Growth after warm-up: median of the last third of the samples minus median of the first third after warm-up. */
export function growth(samples: readonly SoakSample[], pick: (s: SoakSample) => number, warmupSeconds: number): { start: number; end: number; max: number } {
  const after = samples.filter((s) => s.t >= warmupSeconds);
  const third = Math.max(1, Math.floor(after.length / 3));
  return {
    start: median(after.slice(0, third).map(pick)),
    end: median(after.slice(-third).map(pick)),
    max: Math.max(...after.map(pick)),
  };
}

/** Least-squares slope of `pick` over the samples from `fromSeconds` on, per minute (the creep a plateau lacks). */
export function slopePerMinute(samples: readonly SoakSample[], pick: (s: SoakSample) => number, fromSeconds: number): number {
  const xs = samples.filter((s) => s.t >= fromSeconds);
  if (xs.length < 2) return NaN;
  const mt = xs.reduce((a, s) => a + s.t, 0) / xs.length;
  const mv = xs.reduce((a, s) => a + pick(s), 0) / xs.length;
  let num = 0;
  let den = 0;
  for (const s of xs) {
    num += (s.t - mt) * (pick(s) - mv);
    den += (s.t - mt) ** 2;
  }
  return (num / den) * 60;
}

/** `--name VALUE` on the command line, else the environment variable, else undefined. */
function option(name: string, envName: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return (i >= 0 ? process.argv[i + 1] : undefined) ?? process.env[envName];
}

function positive(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

export async function bench(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const seconds = positive(option('seconds', 'SAFESPOT_SOAK_SECONDS'), opts.quick ? 60 : 600);
  const workers = Math.floor(positive(option('workers', 'SAFESPOT_SOAK_WORKERS'), 1));
  const image = option('image', 'SAFESPOT_SOAK_IMAGE') || undefined;
  const m = option('malloc', 'SAFESPOT_SOAK_MALLOC');
  const malloc = m === 'glibc' || m === 'jemalloc' ? m : undefined;
  const r = await runSoak({ seconds, workers, image, ...(malloc ? { malloc } : {}), log: (l) => process.stderr.write(`${l}\n`) });
  const warmup = Math.min(60, Math.max(10, seconds / 5));
  const mib = (b: number): number => b / 2 ** 20;
  const rss = growth(r.samples, (s) => s.rssBytes, warmup);
  const heap = growth(r.samples, (s) => s.heapUsedBytes, warmup);
  const committed = growth(r.samples, (s) => s.heapTotalBytes, warmup);
  const native = growth(r.samples, (s) => s.rssBytes - s.heapTotalBytes, warmup);
  const anon = growth(r.samples, (s) => s.rssAnonBytes, warmup);
  const external = growth(r.samples, (s) => s.externalBytes, warmup);
  const secondHalf = seconds / 2;
  const slope = (pick: (s: SoakSample) => number): string => `${(slopePerMinute(r.samples, pick, secondHalf) / 2 ** 20).toFixed(3)} MiB/min`;
  const ops = Object.entries(r.counts).reduce((a, [, v]) => a + v, 0);
  const change = (name: string, g: { start: number; end: number; max: number }, what = ''): BenchResult => ({
    name: `${name} after warm-up → at end`, value: mib(g.end), unit: 'MiB', baseline: mib(g.start),
    note: `growth ${mib(g.end - g.start).toFixed(2)} MiB, max ${mib(g.max).toFixed(1)} MiB${what ? ` (${what})` : ''}`,
  });
  return [
    { name: 'load duration', value: seconds, unit: 's', note: `warm-up ${warmup} s, ${r.samples.length} samples; ${image ? `image ${image}` : 'serve of this tree'}, workers ${workers}` },
    { name: 'node processes measured', value: r.processes, unit: 'procs', note: `memory rows sum over them; malloc: ${r.malloc.join(', ')}` },
    { name: 'operations (all kinds)', value: ops, unit: 'ops', note: `${(ops / seconds).toFixed(0)}/s; ${Object.entries(r.counts).map(([k, v]) => `${k}=${v}`).join(' ')}` },
    { name: 'unexpected answers', value: r.unexpected, unit: 'ops' },
    { name: 'RSS after warm-up', value: mib(rss.start), unit: 'MiB' },
    { name: 'RSS at end', value: mib(rss.end), unit: 'MiB', baseline: mib(rss.start), note: `max ${mib(rss.max).toFixed(1)} MiB` },
    { name: 'RSS growth after warm-up', value: mib(rss.end - rss.start), unit: 'MiB' },
    { name: 'heap used after warm-up', value: mib(heap.start), unit: 'MiB' },
    { name: 'heap used at end', value: mib(heap.end), unit: 'MiB', baseline: mib(heap.start), note: `max ${mib(heap.max).toFixed(1)} MiB` },
    { name: 'heap growth after warm-up', value: mib(heap.end - heap.start), unit: 'MiB' },
    change('V8 heap committed', committed),
    change('RSS outside the V8 heap', native, 'RSS minus V8 committed heap'),
    change('RSS anonymous', anon, 'RssAnon: allocated memory, no mapped files'),
    change('external memory', external, 'Buffers, ArrayBuffers'),
    { name: 'slope over the second half', value: slopePerMinute(r.samples, (s) => s.rssBytes - s.heapTotalBytes, secondHalf) / 2 ** 20, unit: 'MiB/min', note: `RSS outside the V8 heap; RSS ${slope((s) => s.rssBytes)}, anonymous ${slope((s) => s.rssAnonBytes)}, heap used ${slope((s) => s.heapUsedBytes)}, external ${slope((s) => s.externalBytes)}` },
    { name: 'connections open after the load', value: r.connectionsActiveAfter, unit: 'conns' },
    { name: 'limits hit', value: Object.values(r.limitsHit).reduce((a, b) => a + b, 0), unit: 'hits', note: Object.entries(r.limitsHit).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ') },
    { name: 'child alive at end / exit code', value: r.aliveAtEnd ? 1 : 0, unit: 'bool', note: `exit ${r.exitCode}` },
  ];
}

// Run directly: `node dist/bench/soak.js [--quick] [--seconds N] [--workers N] [--image IMAGE]`.
if (isMain(import.meta.url)) {
  const rows = await bench({ quick: process.argv.includes('--quick') });
  for (const r of rows) process.stdout.write(`${r.name}\t${r.value.toFixed(2)} ${r.unit}${r.baseline !== undefined ? `\t(baseline ${r.baseline.toFixed(2)})` : ''}${r.note ? `\t${r.note}` : ''}\n`);
}
