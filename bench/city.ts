/**
 * A city on this machine (issue 20, scale figures). Two parts, each bounded in time and stopping by
 * itself; everything on loopback.
 *
 * live: N venues, each a real `safespot serve` (the demo lists, its own journal and admin port) with
 * its own real Prometheus agent running the shipped docker/prometheus/agent.yml (its 15 s interval
 * unchanged), all remote-writing to one real Prometheus receiver; one blocked request per venue per
 * second for the run. Measured: series per venue at the receiver, samples/s appended at the receiver
 * (its own prometheus_tsdb_head_samples_appended_total over the steady part), RSS of every agent,
 * serve and the receiver (/proc) and their CPU over the steady part, bytes per sample of the real
 * series (the receiver's head written out by the admin API's snapshot), the agent's WAL per sample
 * scraped, and the time of `safespot audit report --prometheus` over the run. Venues start five at a
 * time; none starts after --start-budget seconds (a loaded machine measures the venues that started).
 * With --no-live the month part still needs one venue's series: one venue runs for 40 s first.
 *
 * month: the series the report reads (the live run's label sets: safespot_requests_total block and
 * monitor, images blocked/monitored, up, process_start_time_seconds, safespot_filtering_active) for
 * M venues over 30 days at 15 s, with a restart and a 2 h outage, written as OpenMetrics one 2 h block
 * per file (promtool 2.42 re-reads its whole input per 2 h block and has no --max-block-duration) and
 * made into TSDB blocks with `promtool tsdb create-blocks-from openmetrics`; a Prometheus on those
 * blocks; then the time of the report over the month, and bytes per sample on disk.
 *
 * Baselines, measured in the same run: samples/s against what the scrapes imply (series at the
 * receiver / 15 s); agent RSS and CPU against an agent of the same binary that scrapes nothing; serve
 * RSS against a bare Node process; receiver RSS and CPU against an idle Prometheus server nobody
 * writes to; the report's time against the same report on that idle server (process start, module
 * load and the queries on an empty store); the month's report against the same report over its
 * first day only.
 *
 * Every process this starts names a temporary folder of this run on its command line; on the way
 * out (normally, on an error, on SIGINT/SIGTERM, or at --deadline) every such process is killed and
 * the folders removed, so nothing is left behind even if a start half-failed.
 *
 *   node dist/bench/city.js [--venues 10] [--seconds 120] [--month-venues 10] [--month-days 30] [--no-live] [--no-month]
 *     [--deadline 900] [--start-budget 120]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { ProxyAgent, request } from 'undici';
import { CLI, CLI_DEMO_DIR, ROOT, serve, type Running } from '../test/helpers/appliance.js';
import { api, freePort, sleep, startProm, type Proc } from '../test/helpers/prom-process.js';
import { isMain, printResults, type BenchResult } from './common.js';

const TOKEN = 'bench-city-admin-token-0123456789';
const SCRAPE_S = 15; // docker/prometheus/agent.yml's scrape_interval, unchanged
const CLK_TCK = 100; // Linux USER_HZ: /proc/PID/stat counts CPU time in 1/100 s

// ---- Cleanup: every folder of this run, and every process whose command line names one ----------
const ourDirs = new Set<string>();
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  ourDirs.add(d);
  return d;
}
/** SIGKILL every process (not this one) whose command line contains `dir`: serves, agents, receivers, floors. */
function killUnder(dir: string): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    if (Number(pid) === process.pid) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone, or not ours to read
    }
    if (!cmd.includes(dir)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
      n++;
    } catch {
      /* exited meanwhile */
    }
  }
  return n;
}
function removeDir(dir: string): void {
  const killed = killUnder(dir);
  if (killed > 0) process.stderr.write(`city: killed ${killed} leftover process(es) under ${dir}\n`);
  rmSync(dir, { recursive: true, force: true });
  ourDirs.delete(dir);
}
function cleanupAll(): void {
  for (const d of [...ourDirs]) removeDir(d);
}

// ---- Measuring processes ----------------------------------------------------------------------
function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15). */
function cpuS(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after "pid (comm) ": field 3 is f[0]
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] ?? 0, median: s[Math.floor(s.length / 2)] ?? 0, max: s[s.length - 1] ?? 0, mean: s.reduce((a, n) => a + n, 0) / (s.length || 1) };
};

async function selfMetric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) n += Number(line.split(' ').pop());
  return n;
}

/**
 * Samples the centre holds for `selector` over the last `rangeS` seconds, counted here from the raw
 * range vector (count_over_time drops the metric name, and series differing only by name collide).
 */
async function samplesOf(base: string, selector: string, rangeS: number): Promise<number> {
  return (await api(base, `${selector}[${rangeS}s]`)).reduce((a, s) => a + (s.values?.length ?? 0), 0);
}

interface ReportOut { venues: unknown[]; city: { blockedRequests: { total: number }; venuesWithGaps: string[]; counterResets: number; restarts: number }; source: { queries: number } }

/** Run the city report CLI over [from, to); wall time in ms and the parsed report. Killed after 5 minutes. */
async function timeReport(centre: string, from: number, to: number): Promise<{ ms: number; report: ReportOut }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [CLI, 'audit', 'report', '--prometheus', centre, '--from', new Date(from).toISOString(), '--to', new Date(to).toISOString()], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(killer);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code !== 0) throw new Error(`report failed (${code}): ${err}`);
  return { ms, report: JSON.parse(out) as ReportOut };
}

/**
 * Start `count` things five at a time; every one that started is kept by `keep` even if others fail.
 * No new batch begins after `budgetMs`: on a loaded machine the run measures the venues that started.
 */
async function inBatches<T>(count: number, budgetMs: number, start: (k: number) => Promise<T>, keep: (t: T) => void): Promise<number> {
  const t0 = Date.now();
  let i = 0;
  for (; i < count && Date.now() - t0 < budgetMs; i += 5) {
    const got = await Promise.allSettled(Array.from({ length: Math.min(5, count - i) }, (_, j) => start(i + j)));
    for (const g of got) if (g.status === 'fulfilled') keep(g.value);
    const bad = got.find((g): g is PromiseRejectedResult => g.status === 'rejected');
    if (bad) throw bad.reason;
    process.stderr.write(`city: ${Math.min(i + 5, count)} of ${count} venues up after ${((Date.now() - t0) / 1000).toFixed(1)} s, load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}\n`);
  }
  return Math.min(i, count);
}

interface Live {
  results: BenchResult[];
  /** One venue's report series (label sets, name included), for the month part. */
  seriesOfOneVenue: Array<Record<string, string>>;
}

interface Venue { serve: Running; agent: Proc; proxy: ProxyAgent }

async function live(n: number, seconds: number, startBudgetS: number): Promise<Live> {
  const dir = tempDir('safespot-bench-city-');
  const procs: Proc[] = [];
  const venues: Venue[] = [];
  let floor: ChildProcess | undefined;
  try {
    writeFileSync(join(dir, 'admin-token'), TOKEN, { mode: 0o600 });
    writeFileSync(join(dir, 'rw-token'), 'central', { mode: 0o600 });
    writeFileSync(join(dir, 'receiver.yml'), 'global: { scrape_interval: 1m }\n');
    const receiverPort = await freePort();
    const centre = `http://127.0.0.1:${receiverPort}`;
    const receiver = await startProm([`--config.file=${join(dir, 'receiver.yml')}`, `--storage.tsdb.path=${join(dir, 'receiver')}`, '--web.enable-remote-write-receiver', '--web.enable-admin-api'], receiverPort);
    procs.push(receiver);
    // Baselines: a Prometheus server nobody writes to, an agent that scrapes nothing, a bare Node process.
    const idlePort = await freePort();
    const idle = await startProm([`--config.file=${join(dir, 'receiver.yml')}`, `--storage.tsdb.path=${join(dir, 'idle')}`, '--web.enable-remote-write-receiver'], idlePort);
    procs.push(idle);
    writeFileSync(join(dir, 'idle-agent.yml'), stringify({ global: { scrape_interval: `${SCRAPE_S}s`, external_labels: { venue: 'idle' } }, remote_write: [{ url: `${centre}/api/v1/write` }] }));
    const idleAgent = await startProm(['--enable-feature=agent', `--config.file=${join(dir, 'idle-agent.yml')}`, `--storage.agent.path=${join(dir, 'idle-wal')}`], await freePort());
    procs.push(idleAgent);
    floor = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', dir], { stdio: 'ignore' });

    const shipped = readFileSync(join(ROOT, 'docker', 'prometheus', 'agent.yml'), 'utf8');
    const t0 = Date.now();
    const wanted = n;
    n = await inBatches(
      wanted,
      startBudgetS * 1000,
      async (k): Promise<Venue> => {
        const vdir = join(dir, `venue-${k}`);
        mkdirSync(vdir);
        const admin = await freePort();
        const config = join(vdir, 'config.yaml');
        writeFileSync(
          config,
          [
            'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
            `admin: { host: 127.0.0.1, port: ${admin}, tokenFile: ${join(dir, 'admin-token')} }`,
            'lists:',
            `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
            `  - { id: demo-malware, category: malware, kind: urls, source: ${join(CLI_DEMO_DIR, 'malware.txt')} }`,
            `journal: { path: ${join(vdir, 'journal.db')} }`,
            `state: { dir: ${join(vdir, 'state')} }`,
            '',
          ].join('\n'),
        );
        const run = await serve(config);
        const a = parse(shipped);
        a.scrape_configs[0].static_configs[0].targets = [`127.0.0.1:${admin}`];
        a.scrape_configs[0].authorization.credentials_file = join(dir, 'admin-token');
        a.remote_write[0].url = `${centre}/api/v1/write`;
        a.remote_write[0].authorization.credentials_file = join(dir, 'rw-token');
        writeFileSync(join(vdir, 'agent.yml'), stringify(a));
        // A failed agent start leaves `run` behind: killUnder(dir) ends it (its config is under dir).
        const agent = await startProm(['--enable-feature=agent,expand-external-labels', `--config.file=${join(vdir, 'agent.yml')}`, `--storage.agent.path=${join(vdir, 'wal')}`], await freePort(), { VENUE: `venue-${k}` });
        return { serve: run, agent, proxy: new ProxyAgent({ uri: `http://127.0.0.1:${run.forward}`, proxyTunnel: false }) };
      },
      (v) => {
        venues.push(v);
        procs.push(v.agent);
      },
    );
    const startupS = (Date.now() - t0) / 1000;

    // Traffic: one blocked request per venue per second, for `seconds`.
    const from = Date.now();
    let sent = 0;
    let failed = 0;
    const watched = () => ({
      t: Date.now(),
      receiver: cpuS(receiver.child.pid),
      idle: cpuS(idle.child.pid),
      idleAgent: cpuS(idleAgent.child.pid),
      agents: venues.map((v) => cpuS(v.agent.child.pid)),
      serves: venues.map((v) => cpuS(v.serve.child.pid)),
    });
    let measureStart: (ReturnType<typeof watched> & { n: number }) | null = null;
    const warmup = Math.min(45, seconds / 3) * 1000;
    while (Date.now() - from < seconds * 1000) {
      const tick = Date.now();
      await Promise.all(
        venues.map(async (v) => {
          try {
            const r = await request('http://blocked.test/bench', { dispatcher: v.proxy, headersTimeout: 10_000, bodyTimeout: 10_000 });
            await r.body.dump();
            if (r.statusCode === 403) sent++;
            else failed++;
          } catch {
            failed++;
          }
        }),
      );
      if (!measureStart && Date.now() - from >= warmup) measureStart = { ...watched(), n: await selfMetric(centre, 'prometheus_tsdb_head_samples_appended_total') };
      await sleep(Math.max(0, 1000 - (Date.now() - tick)));
    }
    const measureEnd = { ...watched(), n: await selfMetric(centre, 'prometheus_tsdb_head_samples_appended_total') };
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const agentRss = stats(venues.map((v) => rssMiB(v.agent.child.pid)));
    const serveRss = stats(venues.map((v) => rssMiB(v.serve.child.pid)));
    const receiverRss = rssMiB(receiver.child.pid);
    const idleRss = rssMiB(idle.child.pid);
    const idleAgentRss = rssMiB(idleAgent.child.pid);
    const floorRss = rssMiB(floor.pid);
    await sleep(20_000); // the last scrapes reach the centre (15 s interval, batches sent within 5 s)
    const perVenue = await api(centre, 'count by (venue) ({venue=~"venue-.*"})');
    const series = stats(perVenue.map((s) => Number(s.value![1])));
    const seriesAll = perVenue.reduce((a, s) => a + Number(s.value![1]), 0);
    const headSeries = await selfMetric(centre, 'prometheus_tsdb_head_series');
    const dt = measureStart ? (measureEnd.t - measureStart.t) / 1000 : 0;
    const rate = measureStart ? (measureEnd.n - measureStart.n) / dt : 0;
    const pct = (a: number, b: number) => (dt > 0 ? ((b - a) / dt) * 100 : 0);
    const ms = measureStart;
    const agentCpu = ms ? stats(venues.map((_, i) => pct(ms.agents[i]!, measureEnd.agents[i]!))) : stats([]);
    const serveCpu = ms ? stats(venues.map((_, i) => pct(ms.serves[i]!, measureEnd.serves[i]!))) : stats([]);
    const to = Date.now() - 16_000;
    const rep = await timeReport(centre, from, to);
    const repIdle = await timeReport(`http://127.0.0.1:${idlePort}`, from, to);
    const reportSeries = await api(
      centre,
      '{__name__=~"safespot_requests_total|safespot_images_blocked_total|safespot_images_monitored_total|up|process_start_time_seconds|safespot_filtering_active", venue="venue-0", listener!="selftest", action=~"block|monitor|"}',
    );
    // Bytes per sample of the real series: the receiver's head written out as a block (admin API snapshot).
    const snap = (await (await fetch(`${centre}/api/v1/admin/tsdb/snapshot`, { method: 'POST' })).json()) as { data: { name: string } };
    const onDisk = du(join(dir, 'receiver', 'snapshots', snap.data.name));
    const keptSamples = await samplesOf(centre, '{venue=~"venue-.*"}', Math.ceil((Date.now() - t0) / 1000) + 120);
    // The agent's WAL: what it keeps per sample scraped (it grows the same while the centre is down).
    const wal = du(join(dir, 'venue-0', 'wal'));
    const walSamples = await samplesOf(centre, '{venue="venue-0"}', Math.ceil((Date.now() - t0) / 1000) + 120);
    const note = `N=${n}, ${seconds} s, shipped ${SCRAPE_S} s interval, load ${load}`;
    const steady = `steady part: ${dt.toFixed(0)} s after ${(warmup / 1000).toFixed(0)} s of warm-up`;
    return {
      seriesOfOneVenue: reportSeries.map((s) => s.metric),
      results: [
        { name: `city live N=${n}: start of ${n} serves + ${n} agents`, value: startupS, unit: 's', note: n < wanted ? `${note}; ${wanted} wanted, start budget of ${startBudgetS} s spent` : note },
        { name: `city live N=${n}: series per venue (median; min ${series.min}, max ${series.max})`, value: series.median, unit: 'series', note: `${perVenue.length} venues at the receiver, ${seriesAll} venue series, receiver head ${headSeries} series` },
        { name: `city live N=${n}: samples appended/s at the receiver`, value: rate, baseline: seriesAll / SCRAPE_S, unit: 'samples/s', note: `baseline = venue series / ${SCRAPE_S} s; ${steady}` },
        { name: `city live N=${n}: receiver CPU`, value: pct(ms?.receiver ?? 0, measureEnd.receiver), baseline: pct(ms?.idle ?? 0, measureEnd.idle), unit: '% of a core', note: `baseline = an idle Prometheus server; ${steady}` },
        { name: `city live N=${n}: receiver RSS`, value: receiverRss, baseline: idleRss, unit: 'MiB', note: 'baseline = an idle Prometheus server, same binary and flags' },
        { name: `city live N=${n}: agent RSS (mean; max ${agentRss.max.toFixed(1)})`, value: agentRss.mean, baseline: idleAgentRss, unit: 'MiB', note: `${venues.length} agents; baseline = an agent scraping nothing` },
        { name: `city live N=${n}: agent CPU (mean; max ${agentCpu.max.toFixed(2)})`, value: agentCpu.mean, baseline: pct(ms?.idleAgent ?? 0, measureEnd.idleAgent), unit: '% of a core', note: 'baseline = an agent scraping nothing' },
        { name: `city live N=${n}: serve RSS (mean; max ${serveRss.max.toFixed(1)})`, value: serveRss.mean, baseline: floorRss, unit: 'MiB', note: `baseline = a bare Node process; serve CPU mean ${serveCpu.mean.toFixed(2)} % of a core at 1 blocked request/s` },
        { name: `city live N=${n}: bytes per sample on disk, the live series`, value: onDisk.all / keptSamples, unit: 'B/sample', note: `receiver head snapshot: ${(onDisk.all / 2 ** 20).toFixed(2)} MiB for ${keptSamples} samples (${(keptSamples / (seriesAll || 1)).toFixed(0)} per series), chunks ${(onDisk.chunks / keptSamples).toFixed(3)} B/sample; a chunk holds up to 120 samples, so short runs pay per-series overhead` },
        { name: `city live N=${n}: agent WAL, bytes per sample scraped (venue-0)`, value: wal.all / (walSamples || 1), unit: 'B/sample', note: `${(wal.all / 2 ** 20).toFixed(2)} MiB for ${walSamples} samples since the agent started, before any WAL truncation (the shipped default compression)` },
        { name: `city live N=${n}: audit report --prometheus over the run`, value: rep.ms, baseline: repIdle.ms, unit: 'ms', note: `baseline = the same report on the idle server; ${rep.report.venues.length} venues, ${rep.report.source.queries} queries (idle: ${repIdle.report.source.queries}), city blocked ${rep.report.city.blockedRequests.total} of ${sent} sent (the rest after the report's end or its last scrape), ${failed} requests failed, venues with gaps ${rep.report.city.venuesWithGaps.length}` },
      ],
    };
  } finally {
    for (const v of venues) await v.proxy.close();
    for (const v of venues) v.serve.child.kill('SIGKILL');
    floor?.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.stop()));
    removeDir(dir);
  }
}

/** Bytes of the files under `p`, and of those in chunks/ folders. */
function du(p: string): { all: number; chunks: number } {
  const n = { all: 0, chunks: 0 };
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const q = join(p, e.name);
    if (e.isDirectory()) {
      const d = du(q);
      n.all += d.all;
      n.chunks += e.name === 'chunks' ? d.all : d.chunks;
    } else n.all += statSync(q).size;
  }
  return n;
}

/** promtool on one file of one 2 h block; resolves when it has written the block. */
function promtoolBlock(file: string, blocks: string): Promise<void> {
  const c = spawn('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', file, blocks], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return once(c, 'exit').then(([code]) => {
    if (code !== 0) throw new Error(`promtool ${code}: ${err}`);
  });
}

/** A month of the report's series for `m` venues, backfilled into TSDB blocks, then the report over it. */
async function month(m: number, days: number, series: Array<Record<string, string>>): Promise<BenchResult[]> {
  if (series.length === 0) throw new Error('month: no series from the live part to copy');
  const dir = tempDir('safespot-bench-month-');
  try {
    const STEP = SCRAPE_S * 1000;
    const BLOCK = 2 * 3_600_000;
    const end = Math.floor(Date.now() / BLOCK) * BLOCK - BLOCK; // whole blocks, in the past
    const start = end - days * 86_400_000;
    const blocks = join(dir, 'blocks');
    mkdirSync(blocks);
    // Per venue: the live venue's series with the venue renamed; counters walk up by a few blocks a minute.
    const fams = new Map<string, Array<Record<string, string>>>();
    for (const s of series) {
      const name = s.__name__!;
      if (!fams.has(name)) fams.set(name, []);
      fams.get(name)!.push(s);
    }
    const restartAt = start + Math.floor(days / 2) * 86_400_000 + 3_600_000; // venue-0 restarts mid-month
    const outageFrom = start + Math.min(10, Math.floor(days / 3)) * 86_400_000; // venue-1: 2 h without samples
    const outage = { from: outageFrom, to: outageFrom + 2 * 3_600_000 };
    const value = new Map<string, number>();
    let samples = 0;
    let expectedBlocked = 0;
    const t0 = Date.now();
    process.stderr.write(`city: month of ${m} venues x ${series.length} series (${[...fams.keys()].join(', ')})\n`);
    let pending: Promise<void> = Promise.resolve();
    let slot = 0;
    for (let b = start; b < end; b += BLOCK) {
      // Two files in turn: this block is written while promtool makes the previous one (two cores).
      const file = join(dir, `block-${slot++ % 2}.om`);
      const out = createWriteStream(file);
      const write = (s: string) => (out.write(s) ? Promise.resolve() : once(out, 'drain').then(() => undefined));
      for (const [name, list] of fams) {
        await write(`# TYPE ${name} unknown\n`);
        for (let v = 0; v < m; v++) {
          for (const labels of list) {
            const l = Object.entries({ ...labels, venue: `venue-${v}` })
              .filter(([k]) => k !== '__name__')
              .map(([k, x]) => `${k}=${JSON.stringify(x)}`)
              .join(',');
            const key = `${v}\u0000${name}{${l}}`;
            const lines: string[] = [];
            for (let ts = b; ts < b + BLOCK; ts += STEP) {
              if (v === 1 && ts >= outage.from && ts < outage.to) continue;
              const restarted = v === 0 && ts >= restartAt;
              let x: number;
              if (name === 'up' || name === 'safespot_filtering_active') x = 1;
              else if (name === 'process_start_time_seconds') x = (restarted ? restartAt : start - 86_400_000) / 1000;
              else {
                if (v === 0 && ts >= restartAt && ts - STEP < restartAt) value.set(key, 0);
                const inc = labels.action === 'block' && labels.listener === 'forward' && (ts / STEP + v) % 4 === 0 ? 1 : 0;
                if (name === 'safespot_requests_total') expectedBlocked += inc;
                x = (value.get(key) ?? 0) + inc;
                value.set(key, x);
              }
              lines.push(`${name}{${l}} ${x} ${(ts / 1000).toFixed(3)}\n`);
              samples++;
            }
            await write(lines.join(''));
          }
        }
      }
      await write('# EOF\n');
      out.end();
      await once(out, 'finish');
      await pending; // at most one promtool at a time, and it is done with the file we write next
      pending = promtoolBlock(file, blocks);
      if ((b - start + BLOCK) % 86_400_000 === 0) process.stderr.write(`city: month, day ${(b - start + BLOCK) / 86_400_000} of ${days} written, ${(samples / 1e6).toFixed(1)} M samples, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    }
    await pending;
    const backfillS = (Date.now() - t0) / 1000;
    for (const f of readdirSync(dir)) if (f.endsWith('.om')) rmSync(join(dir, f));
    const bytes = du(blocks);
    const blockCount = readdirSync(blocks).length;
    const port = await freePort();
    writeFileSync(join(dir, 'prom.yml'), 'global: { scrape_interval: 1m }\n');
    // min = max block duration: no compaction during the measurement (it would compete for the CPU).
    const prom = await startProm(
      [`--config.file=${join(dir, 'prom.yml')}`, `--storage.tsdb.path=${blocks}`, '--storage.tsdb.retention.time=400d', '--storage.tsdb.min-block-duration=2h', '--storage.tsdb.max-block-duration=2h'],
      port,
    );
    try {
      const centre = `http://127.0.0.1:${port}`;
      const rss0 = rssMiB(prom.child.pid);
      const day = await timeReport(centre, start, start + 86_400_000);
      const cold = await timeReport(centre, start, end);
      const warm = await timeReport(centre, start, end);
      const rss = rssMiB(prom.child.pid);
      const note = `${m} venues x ${series.length} series, ${days} days at ${SCRAPE_S} s, ${blockCount} blocks of 2 h (not compacted)`;
      return [
        { name: `city month M=${m}: samples backfilled`, value: samples / 1e6, unit: 'M samples', note },
        { name: `city month M=${m}: backfill (write OpenMetrics + promtool)`, value: backfillS, unit: 's' },
        { name: `city month M=${m}: bytes per sample on disk, all block files`, value: bytes.all / samples, unit: 'B/sample', note: `${(bytes.all / 2 ** 20).toFixed(1)} MiB of blocks, ${(bytes.chunks / 2 ** 20).toFixed(1)} MiB of it chunks (${(bytes.chunks / samples).toFixed(3)} B/sample)` },
        { name: `city month M=${m}: audit report --prometheus over ${days} days, first run`, value: cold.ms, baseline: day.ms, unit: 'ms', note: `baseline = the same report over the first day; ${cold.report.source.queries} queries (day: ${day.report.source.queries}), city blocked ${cold.report.city.blockedRequests.total} of ${expectedBlocked} written, resets ${cold.report.city.counterResets}, restarts ${cold.report.city.restarts}, venues with gaps ${cold.report.city.venuesWithGaps.join(' ') || 'none'}` },
        { name: `city month M=${m}: audit report --prometheus over ${days} days, second run`, value: warm.ms, baseline: day.ms, unit: 'ms' },
        { name: `city month M=${m}: Prometheus RSS after the reports`, value: rss, baseline: rss0, unit: 'MiB', note: 'baseline = the same process after opening the blocks, before any report' },
      ];
    } finally {
      await prom.stop();
    }
  } finally {
    removeDir(dir);
  }
}

export async function run(opts: { venues: number; seconds: number; startBudget: number; monthVenues: number; monthDays: number; live: boolean; month: boolean }): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  let series: Array<Record<string, string>> = [];
  try {
    if (opts.live || opts.month) {
      const l = await live(opts.live ? opts.venues : 1, opts.live ? opts.seconds : 40, opts.startBudget);
      if (opts.live) out.push(...l.results);
      series = l.seriesOfOneVenue;
      if (out.length > 0) printResults(out, 1);
    }
    if (opts.month) {
      const r = await month(opts.monthVenues, opts.monthDays, series);
      printResults(r, 1);
      out.push(...r);
    }
  } finally {
    cleanupAll();
  }
  return out;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      venues: { type: 'string', default: '10' },
      seconds: { type: 'string', default: '120' },
      'month-venues': { type: 'string', default: '10' },
      'month-days': { type: 'string', default: '30' },
      'no-live': { type: 'boolean', default: false },
      'no-month': { type: 'boolean', default: false },
      deadline: { type: 'string', default: '900' },
      'start-budget': { type: 'string', default: '120' },
    },
  });
  const bail = (why: string, code: number) => {
    process.stderr.write(`city: ${why}, cleaning up\n`);
    cleanupAll();
    process.exit(code);
  };
  process.once('SIGINT', () => bail('SIGINT', 130));
  process.once('SIGTERM', () => bail('SIGTERM', 143));
  const deadline = setTimeout(() => bail(`--deadline ${values.deadline} s reached`, 2), Number(values.deadline) * 1000);
  try {
    await run({
      venues: Number(values.venues),
      seconds: Number(values.seconds),
      startBudget: Number(values['start-budget']),
      monthVenues: Number(values['month-venues']),
      monthDays: Number(values['month-days']),
      live: !values['no-live'],
      month: !values['no-month'],
    });
  } catch (err) {
    process.stderr.write(`city: ${(err as Error).stack ?? String(err)}\n`);
    cleanupAll();
    process.exit(1);
  }
  clearTimeout(deadline);
  process.exit(0);
}
