/**
 * Compile speed and memory with a 1,000,000-entry domains list (issue 23, points 3 and 4). Every
 * figure comes from a fresh child process, so a peak (`VmHWM` of /proc/self/status) is that of one
 * job alone, and each is printed beside a baseline measured in the same run:
 *
 * - compile: the list's bytes (read before the clock starts) compiled into a policy, in ms and
 *   peak RSS; baseline: the same bytes split into lines and put into a plain JavaScript `Set`, and
 *   the peak of a process that only reads the file.
 * - check: `safespot check --config` with that list and 100,000 `{"host"}` lines (half of them under
 *   listed domains), wall time from spawn to exit and peak RSS; baseline: a plain `Set` script that
 *   reads the same list and answers the same 100,000 hosts (every suffix looked up), also a process.
 * - decode: the compiled bundle (written by the compile child) verified and loaded, in ms.
 * - serve: `safespot serve` with that list, a fresh state dir: time to /readyz 200, RSS 3 s after
 *   ready and the peak; then a restart with the same unchanged list and the last-good bundle on disk:
 *   the same figures and whether a compile ran (the "policy in force" log lines); baseline: serve
 *   with the demo lists (the embedded default's lists, on port 0).
 *
 *   node dist/bench/compile-memory.js [--quick] [--dist DIR] [--entries N]
 *
 * `--dist` runs another build (for a before/after in one run: a checkout of the old commit, built);
 * the synthetic list is `siteN.catM.test` hosts, as in BENCHMARKS.md's memory section.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMain, printResults, type BenchResult } from './common.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');

function statusKiB(field: 'VmHWM' | 'VmRSS', pid: number | 'self' = 'self'): number {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
const mib = (kib: number): number => kib / 1024;

// ---- children (this file run with --child MODE) -------------------------------------------------

async function child(mode: string, args: string[]): Promise<void> {
  const [dist, listPath, bundlePath] = args as [string, string, string];
  const out: Record<string, number> = {};
  if (mode === 'read') {
    const bytes = readFileSync(listPath);
    out.bytes = bytes.length;
  } else if (mode === 'set') {
    const bytes = readFileSync(listPath);
    const t0 = performance.now();
    const set = new Set<string>();
    for (const line of bytes.toString('utf8').split('\n')) if (line) set.add(line.trim().toLowerCase());
    out.ms = performance.now() - t0;
    out.size = set.size;
  } else if (mode === 'compile') {
    const policyMod = (await import(pathToFileURL(join(dist, 'policy/policy.js')).href)) as typeof import('../policy/policy.js');
    const bundleMod = (await import(pathToFileURL(join(dist, 'policy/bundle.js')).href)) as typeof import('../policy/bundle.js');
    const bytes = readFileSync(listPath);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const policy = policyMod.compilePolicy({ lists: [{ id: 'big', category: 'adult', kind: 'domains', text: bytes }] });
    out.ms = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    out.cpuMs = (cpu.user + cpu.system) / 1000;
    out.entries = policy.lists[0]!.entries;
    out.hwmCompile = statusKiB('VmHWM');
    writeFileSync(bundlePath, bundleMod.encodeBundle(policy));
  } else if (mode === 'decode') {
    const bundleMod = (await import(pathToFileURL(join(dist, 'policy/bundle.js')).href)) as typeof import('../policy/bundle.js');
    const t0 = performance.now();
    const policy = bundleMod.decodeBundle(readFileSync(bundlePath));
    out.ms = performance.now() - t0;
    out.entries = policy.lists[0]!.entries;
  } else if (mode === 'set-check') {
    // The plain baseline of `safespot check`: the list into a Set, then every suffix of each host.
    const set = new Set<string>();
    for (const line of readFileSync(listPath, 'utf8').split('\n')) if (line) set.add(line.trim().toLowerCase());
    const lines = readFileSync(bundlePath, 'utf8').split('\n');
    const outLines: string[] = [];
    for (const l of lines) {
      if (!l) continue;
      let host = (JSON.parse(l) as { host: string }).host.toLowerCase();
      let hit = false;
      for (;;) {
        if (set.has(host)) {
          hit = true;
          break;
        }
        const dot = host.indexOf('.');
        if (dot < 0) break;
        host = host.slice(dot + 1);
      }
      outLines.push(JSON.stringify({ action: hit ? 'block' : 'allow' }));
    }
    process.stdout.write(`${outLines.join('\n')}\n`);
    return;
  }
  out.hwm = statusKiB('VmHWM');
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// ---- parent ------------------------------------------------------------------------------------

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

function run(cmd: string, args: string[], opts: { stdinFile?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolveRun({ code, stdout, stderr, ms: performance.now() - t0 }));
    if (opts.stdinFile) p.stdin.end(readFileSync(opts.stdinFile));
    else p.stdin.end();
  });
}

async function childJson(mode: string, args: string[]): Promise<Record<string, number>> {
  const r = await run(process.execPath, [fileURLToPath(import.meta.url), '--child', mode, ...args]);
  if (r.code !== 0) throw new Error(`child ${mode} failed: ${r.stderr.slice(-500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function writeLines(path: string, n: number, line: (i: number) => string): Promise<void> {
  const o = createWriteStream(path);
  let chunk = '';
  for (let i = 0; i < n; i++) {
    chunk += `${line(i)}\n`;
    if (chunk.length > 1 << 16) {
      if (!o.write(chunk)) await new Promise<void>((r) => o.once('drain', () => r()));
      chunk = '';
    }
  }
  o.end(chunk);
  await new Promise<void>((r) => o.once('finish', () => r()));
}

interface ServeFigures {
  readyMs: number;
  rssMiB: number;
  peakMiB: number;
  how: string[];
}

/** Start serve with `config`, time /readyz 200 from spawn, let it settle, read its memory, stop it. */
async function serveOnce(dist: string, config: string, settle: (how: string[]) => boolean): Promise<ServeFigures> {
  const t0 = performance.now();
  const p = spawn(process.execPath, [join(dist, 'appliance/cli.js'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const how: string[] = [];
  let admin: string | null = null;
  p.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    for (const line of d.split('\n')) {
      const m = /"how":"([^"]*)"/.exec(line);
      if (m && line.includes('"msg":"policy in force"')) how.push(m[1]!);
      if (line.includes('not compiled again')) how.push('not compiled');
      const a = /"admin":"([^"]*)"/.exec(line);
      if (a) admin = a[1]!;
    }
  });
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  try {
    const deadline = Date.now() + 60_000;
    let readyMs = NaN;
    while (Date.now() < deadline && Number.isNaN(readyMs)) {
      if (p.exitCode !== null) throw new Error(`serve exited: ${err.slice(-800)}`);
      if (admin) {
        const ok = await fetch(`http://${admin}/readyz`).then((r) => r.status === 200, () => false);
        if (ok) readyMs = performance.now() - t0;
      }
      if (Number.isNaN(readyMs)) await new Promise((r) => setTimeout(r, 10));
    }
    if (Number.isNaN(readyMs)) throw new Error(`serve not ready in 60 s: ${err.slice(-800)}`);
    // Wait for the start's work to end (a compile after the last-good bundle, if one runs), then 3 s.
    const until = Date.now() + 20_000;
    while (Date.now() < until && !settle(how)) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 3000));
    return { readyMs, rssMiB: mib(statusKiB('VmRSS', p.pid!)), peakMiB: mib(statusKiB('VmHWM', p.pid!)), how: [...how] };
  } finally {
    p.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (p.exitCode === null) p.kill('SIGKILL');
  }
}

function serveConfig(dir: string, name: string, lists: string[]): string {
  const path = join(dir, `${name}.yaml`);
  mkdirSync(join(dir, name), { recursive: true });
  writeFileSync(path, [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    ...lists.map((l) => `  - ${l}`),
    `journal: { path: ${join(dir, name, 'journal.db')} }`,
    `state: { dir: ${join(dir, name, 'state')} }`,
    `ca: { dir: ${join(dir, name, 'ca')} }`,
    '',
  ].join('\n'));
  return path;
}

export async function bench(opts: { quick?: boolean; dist?: string; entries?: number } = {}): Promise<BenchResult[]> {
  const dist = resolve(opts.dist ?? join(ROOT, 'dist'));
  const entries = opts.entries ?? (opts.quick ? 200_000 : 1_000_000);
  const checks = opts.quick ? 20_000 : 100_000;
  const rounds = opts.quick ? 1 : 3;
  const dir = mkdtempSync(join(tmpdir(), 'safespot-compile-bench-'));
  const results: BenchResult[] = [];
  const n = `${entries / 1e6}M`;
  try {
    const list = join(dir, 'big.txt');
    const hosts = join(dir, 'hosts.jsonl');
    const bundle = join(dir, 'big.bundle');
    await writeLines(list, entries, (i) => `site${i}.cat${i % 97}.test`);
    // Half under listed domains (a subdomain, so the suffix walk matters), half not listed.
    await writeLines(hosts, checks, (i) => JSON.stringify({ host: i % 2 ? `www.site${(i * 7919) % entries}.cat${((i * 7919) % entries) % 97}.test` : `www.other${i}.cat1.test` }));

    const compile: Record<string, number>[] = [];
    const set: Record<string, number>[] = [];
    const read: Record<string, number>[] = [];
    for (let r = 0; r < rounds; r++) {
      compile.push(await childJson('compile', [dist, list, bundle]));
      set.push(await childJson('set', [dist, list, '']));
      read.push(await childJson('read', [dist, list, '']));
    }
    results.push({ name: `compile ${n} domains`, value: median(compile.map((c) => c.ms!)), unit: 'ms', baseline: median(set.map((c) => c.ms!)), note: 'baseline: the lines into a plain Set' });
    results.push({ name: `compile ${n} domains, CPU`, value: median(compile.map((c) => c.cpuMs!)), unit: 'ms', note: 'user + system of the compile (a loaded machine inflates wall time)' });
    results.push({ name: `compile ${n} domains, peak RSS`, value: mib(Math.max(...compile.map((c) => c.hwmCompile!))), unit: 'MiB', baseline: mib(Math.max(...read.map((c) => c.hwm!))), note: 'baseline: a process that only reads the list' });
    const decode: number[] = [];
    for (let r = 0; r < rounds; r++) decode.push((await childJson('decode', [dist, list, bundle])).ms!);
    results.push({ name: `decode the ${n} bundle`, value: median(decode), unit: 'ms', note: `${(readFileSync(bundle).length / 1e6).toFixed(1)} MB` });

    // check: the real CLI against a plain Set script, both whole processes.
    const config = join(dir, 'check.yaml');
    writeFileSync(config, `lists:\n  - { id: big, category: adult, kind: domains, source: ${list} }\nstate: { dir: ${join(dir, 'check-state')} }\n`);
    const hook = join(dir, 'hwm-hook.mjs');
    writeFileSync(hook, "import { readFileSync, writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(process.env.HWM_OUT, /VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]));\n");
    const checkMs: number[] = [];
    const setMs: number[] = [];
    let checkPeak = 0;
    let blocked = -1;
    for (let r = 0; r < rounds; r++) {
      const hwm = join(dir, `hwm-${r}`);
      const c = await run(process.execPath, ['--import', pathToFileURL(hook).href, join(dist, 'appliance/cli.js'), 'check', '--config', config], { stdinFile: hosts, env: { HWM_OUT: hwm } });
      if (c.code !== 0) throw new Error(`check failed: ${c.stderr.slice(-500)}`);
      checkMs.push(c.ms);
      checkPeak = Math.max(checkPeak, Number(readFileSync(hwm, 'utf8')));
      const b = c.stdout.split('\n').filter((l) => l.includes('"action":"block"')).length;
      const s = await run(process.execPath, [fileURLToPath(import.meta.url), '--child', 'set-check', dist, list, hosts]);
      if (s.code !== 0) throw new Error(`set-check failed: ${s.stderr.slice(-500)}`);
      setMs.push(s.ms);
      const sb = s.stdout.split('\n').filter((l) => l.includes('"block"')).length;
      if (b !== sb) throw new Error(`check blocked ${b} hosts, the Set baseline ${sb}`);
      blocked = b;
    }
    const cm = median(checkMs);
    const sm = median(setMs);
    results.push({ name: `check ${n} + ${checks / 1000}k hosts`, value: cm, unit: 'ms', baseline: sm, note: `${(cm / sm).toFixed(2)}x the plain Set process; ${blocked} blocked in both` });
    results.push({ name: `check ${n}, peak RSS`, value: mib(checkPeak), unit: 'MiB' });

    // serve: fresh start, restart from the last-good bundle, and the demo lists as the baseline.
    const demo = join(ROOT, 'appliance', 'demo');
    const small = serveConfig(dir, 'demo', [
      `{ id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(demo, 'hotline.txt')} }`,
      `{ id: demo-adult, category: adult, kind: domains, source: ${join(demo, 'adult.txt')} }`,
      `{ id: demo-malware, category: malware, kind: urls, source: ${join(demo, 'malware.txt')} }`,
      `{ id: demo-bypass, category: bypass, kind: domains, source: ${join(demo, 'bypass.txt')} }`,
    ]);
    const big = serveConfig(dir, 'big', [`{ id: big, category: adult, kind: domains, source: ${list} }`]);
    const base = await serveOnce(dist, small, () => true);
    const fresh = await serveOnce(dist, big, () => true);
    // A restart compiles after the last-good bundle only if it must: wait for that compile if one comes.
    const again = await serveOnce(dist, big, (how) => how.length >= 2);
    results.push({ name: 'serve demo lists: ready', value: base.readyMs, unit: 'ms', note: 'from spawn' });
    results.push({ name: 'serve demo lists: idle RSS', value: base.rssMiB, unit: 'MiB', note: `peak ${base.peakMiB.toFixed(0)} MiB` });
    results.push({ name: `serve ${n}, fresh: ready`, value: fresh.readyMs, unit: 'ms', baseline: base.readyMs, note: fresh.how.join(', ') });
    results.push({ name: `serve ${n}, fresh: RSS 3 s after`, value: fresh.rssMiB, unit: 'MiB', baseline: base.rssMiB });
    results.push({ name: `serve ${n}, fresh: peak RSS`, value: fresh.peakMiB, unit: 'MiB', baseline: base.peakMiB });
    results.push({ name: `serve ${n}, restart: ready`, value: again.readyMs, unit: 'ms', baseline: base.readyMs, note: again.how.join(', ') });
    results.push({ name: `serve ${n}, restart: RSS 3 s after`, value: again.rssMiB, unit: 'MiB', baseline: base.rssMiB });
    results.push({ name: `serve ${n}, restart: peak RSS`, value: again.peakMiB, unit: 'MiB', baseline: base.peakMiB });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (isMain(import.meta.url)) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await child(argv[1]!, argv.slice(2));
  } else {
    const at = (flag: string): string | undefined => {
      const i = argv.indexOf(flag);
      return i >= 0 ? argv[i + 1] : undefined;
    };
    const entries = at('--entries');
    printResults(await bench({ quick: argv.includes('--quick'), ...(at('--dist') ? { dist: at('--dist')! } : {}), ...(entries ? { entries: Number(entries) } : {}) }), 1);
  }
}
