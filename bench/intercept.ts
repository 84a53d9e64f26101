/**
 * TLS interception: `safespot serve` (a child process, so its CPU is its own) with a profile that
 * intercepts every host except `spliced.bench.test`, an HTTPS upstream on loopback, and clients in
 * this process (undici through the explicit proxy, trusting the safespot CA). Same run, same
 * upstream, same request:
 * - requests per second and proxy CPU per request, intercepted beside spliced, on keep-alive
 *   connections (8 at a time) and with a new connection per request (4 at a time);
 * - time to first byte of a request to a host never seen (the leaf is minted) beside a host whose
 *   leaf is cached, each on a new connection.
 * Proxy CPU is utime + stime of the serve process from /proc/PID/stat (10 ms ticks; the counts are
 * large enough for that). Figures only, never pass/fail.
 *
 *   npm run build && node dist/bench/intercept.js [--quick]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProxyAgent, request } from 'undici';
import { type BenchResult, isMain } from './common.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'appliance', 'cli.js');
const TICKS_PER_SECOND = 100; // USER_HZ (`getconf CLK_TCK`)
const NEW_HOSTS = 60;

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};

/** An upstream CA and one leaf for *.bench.test, made with openssl in `dir`. */
function makePki(dir: string): { caFile: string; cert: string; key: string } {
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'up-ca.key', '-out', 'up-ca.pem', '-days', '2', '-subj', '/CN=safespot bench upstream CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=bench.test']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:*.bench.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'up-ca.pem', '-CAkey', 'up-ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { caFile: join(dir, 'up-ca.pem'), cert: readFileSync(join(dir, 'leaf.pem'), 'utf8'), key: readFileSync(join(dir, 'leaf.key'), 'utf8') };
}

function startUpstream(cert: string, key: string): Promise<Server> {
  const server = createServer({ cert, key, keepAliveTimeout: 30_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function startSafespot(config: string): Promise<{ child: ChildProcess; forward: number }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let started = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`safespot serve did not start:\n${log.slice(-2000)}`)), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`safespot serve exited (${code}):\n${log.slice(-2000)}`));
    });
    child.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-65_536);
      const line = log.split('\n').find((l) => l.includes('"safespot serving"'));
      if (!line || started) return;
      started = true;
      clearTimeout(timer);
      const j = JSON.parse(line) as { listeners: Record<string, { port: number }> };
      resolve({ child, forward: j.listeners.forward?.port ?? 0 });
    });
  });
}

/** `n` GETs of `url`, `concurrency` at a time; a fresh agent per request when `fresh` (new connection each). */
async function load(proxy: string, caPem: string, url: string, n: number, concurrency: number, fresh: boolean): Promise<void> {
  const shared = fresh ? null : new ProxyAgent({ uri: proxy, requestTls: { ca: caPem }, connections: concurrency });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const agent = shared ?? new ProxyAgent({ uri: proxy, requestTls: { ca: caPem } });
      const r = await request(url, { dispatcher: agent });
      const body = await r.body.text();
      if (r.statusCode !== 200 || body !== 'ok\n') throw new Error(`${url}: ${r.statusCode} ${body.slice(0, 200)}`);
      if (!shared) await agent.close();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await shared?.close();
}

/** Time to the first response byte on a new connection. */
async function ttfb(proxy: string, caPem: string, url: string): Promise<number> {
  const agent = new ProxyAgent({ uri: proxy, requestTls: { ca: caPem } });
  const t0 = process.hrtime.bigint();
  const r = await request(url, { dispatcher: agent });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await r.body.text();
  await agent.close();
  if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode}`);
  return ms;
}

export async function bench(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const keepAliveN = opts.quick ? 100 : 300;
  const freshN = opts.quick ? 40 : 100;
  const newHosts = opts.quick ? 15 : NEW_HOSTS;
  const dir = mkdtempSync(join(tmpdir(), 'safespot-bench-intercept-'));
  let child: ChildProcess | undefined;
  let upstream: Server | undefined;
  try {
    const pki = makePki(dir);
    upstream = await startUpstream(pki.cert, pki.key);
    const port = (upstream.address() as AddressInfo).port;
    const caDir = join(dir, 'ca');
    execFileSync(process.execPath, [CLI, 'certs', 'init', '--dir', caDir], { stdio: 'ignore' });
    const caPem = readFileSync(join(caDir, 'ca.crt'), 'utf8');
    const hosts = ['intercepted', 'spliced', 'cached', ...Array.from({ length: newHosts }, (_, i) => `new${i}`)];
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
        'admin: null',
        `upstream: { hosts: { ${hosts.map((h) => `${h}.bench.test: "127.0.0.1:${port}"`).join(', ')} } }`,
        `intercept: { enabled: true, exclude: [spliced.bench.test], upstreamCa: ${pki.caFile} }`,
        `ca: { dir: ${caDir} }`,
        `journal: { path: ${join(dir, 'journal.db')} }`,
        `state: { dir: ${join(dir, 'state')} }`,
        '',
      ].join('\n'),
    );
    const started = await startSafespot(config);
    child = started.child;
    const pid = child.pid!;
    const proxy = `http://127.0.0.1:${started.forward}`;
    // The client trusts both CAs: ours (intercepted) and the upstream's (spliced: its own certificate).
    const trust = caPem + readFileSync(pki.caFile, 'utf8');

    const measure = async (url: string, n: number, concurrency: number, fresh: boolean): Promise<{ rps: number; cpuMs: number }> => {
      await load(proxy, trust, url, Math.min(20, n), concurrency, fresh); // warm-up (pools, JIT, the leaf)
      const c0 = cpuSeconds(pid);
      const t0 = process.hrtime.bigint();
      await load(proxy, trust, url, n, concurrency, fresh);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      return { rps: n / secs, cpuMs: ((cpuSeconds(pid) - c0) * 1000) / n };
    };
    const rows: BenchResult[] = [];
    for (const [label, fresh, n, conc] of [
      ['keep-alive', false, keepAliveN, 8],
      ['new connection each', true, freshN, 4],
    ] as const) {
      const spliced = await measure('https://spliced.bench.test/', n, conc, fresh);
      const intercepted = await measure('https://intercepted.bench.test/', n, conc, fresh);
      rows.push(
        { name: `intercepted HTTPS requests/s (${label})`, value: intercepted.rps, unit: 'req/s', baseline: spliced.rps, note: `baseline: spliced; ${n} requests, ${conc} at a time` },
        { name: `proxy CPU per intercepted request (${label})`, value: intercepted.cpuMs, unit: 'ms', baseline: spliced.cpuMs, note: 'baseline: spliced; /proc utime+stime of serve' },
      );
    }

    await ttfb(proxy, trust, 'https://cached.bench.test/'); // mints and caches it
    const firstMs: number[] = [];
    const cachedMs: number[] = [];
    for (let i = 0; i < newHosts; i++) {
      firstMs.push(await ttfb(proxy, trust, `https://new${i}.bench.test/`));
      cachedMs.push(await ttfb(proxy, trust, 'https://cached.bench.test/'));
    }
    rows.push(
      { name: 'time to first byte, new host (leaf minted)', value: median(firstMs), unit: 'ms', baseline: median(cachedMs), note: `baseline: cached leaf; medians of ${newHosts}, new connection each` },
      { name: 'time to first byte, cached host', value: median(cachedMs), unit: 'ms' },
    );
    return rows;
  } finally {
    child?.kill('SIGKILL');
    upstream?.closeAllConnections();
    upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  const rows = await bench({ quick });
  for (const r of rows) {
    const base = r.baseline === undefined ? '' : `  (baseline ${r.baseline.toFixed(2)})`;
    console.log(`${r.name.padEnd(52)} ${r.value.toFixed(2).padStart(10)} ${r.unit}${base}${r.note ? `  ${r.note}` : ''}`);
  }
}
