/**
 * The container image for real, with podman (no Docker engine runs here; docs/deployment.md):
 *
 *   1. `safespot healthcheck` against a locally started `serve` (healthy, wrong token, stopped);
 *   2. the base image assembled by docker/build-base-image.sh (cached: a second run reuses it; the
 *      debootstrap tarball and npm tarballs are kept under /var/cache/safespot-ci);
 *   3. `podman build` of the real Dockerfile on it;
 *   4. the container run as documented (host network on free loopback ports, --read-only,
 *      --cap-drop ALL, a mounted config, the admin token as a secret file, state on a volume);
 *   5. its HEALTHCHECK passes; allowed and blocked traffic through the forward and transparent-http
 *      listeners; /metrics counts exactly that traffic; it runs as uid 10001 on a read-only root;
 *   6. `podman stop` drains and the process exits 0.
 *
 * Root and podman/runc/debootstrap are needed (test/setup-system.sh installs the packages); without
 * them the container steps are skipped with the exact reason. The first run builds everything
 * (minutes); later runs reuse the base image and podman's layer cache.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, createWriteStream } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerInitPid, mallocOf, processTree } from '../../bench/soak-serve.js';
import { CLI, ROOT, runCli, serve } from '../helpers/appliance.js';

t.setTimeout(20 * 60 * 1000);

const CONTAINERS_CONF = join(ROOT, 'docker', 'containers.conf');
const BASE_IMAGE = 'localhost/node:22-bookworm-slim';
const IMAGE = 'localhost/safespot:test';
const CACHE_DIR = process.env.SAFESPOT_CI_CACHE ?? '/var/cache/safespot-ci';
const UID = 10001;
const env = { ...process.env, CONTAINERS_CONF };

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], timeout = 120_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && !stderr ? String(err.message) : '') });
    });
  });
}
const podman = (args: string[], timeout?: number): Promise<Result> => sh('podman', ['--runtime', 'runc', ...args], timeout);

/** A long command with its output in a log file; resolves with the exit status and the log's tail. */
function logged(cmd: string, args: string[], logFile: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; tail: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const out = createWriteStream(logFile);
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.on('close', (code) => {
      out.end(() => {
        const lines = readFileSync(logFile, 'utf8').split('\n');
        resolve({ code: code ?? 1, tail: lines.slice(-60).join('\n'), ms: Date.now() - started });
      });
    });
  });
}

/** Free TCP ports on 127.0.0.1 (bound, then released: the container binds them right after). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createNetServer>>((resolve) => {
      const s = createNetServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function waitFor<T>(what: string, fn: () => Promise<T | null>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown = null;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== null) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** One sample of the exposition text (labels in any order). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[a-z_:]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const have = new Map([...(m[1] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[2]);
  }
  return null;
}

function upstreamServer(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`upstream says hello to ${req.headers.host}${req.url}`);
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

function writeConfig(path: string, p: { forward: number; http: number; admin: number; upstream: number }, paths: { demo: string; state: string; token: string }): void {
  writeFileSync(path, [
    'listeners:',
    `  forward: { host: 127.0.0.1, port: ${p.forward} }`,
    `  http: { host: 127.0.0.1, port: ${p.http} }`,
    `admin: { host: 127.0.0.1, port: ${p.admin}, tokenFile: ${paths.token} }`,
    'upstream:',
    `  hosts: { allowed.test: "127.0.0.1:${p.upstream}" }`,
    'lists:',
    `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${paths.demo}/hotline.txt, overridable: false }`,
    `  - { id: demo-adult, category: adult, kind: domains, source: ${paths.demo}/adult.txt }`,
    `journal: { path: ${paths.state}/journal.db }`,
    `state: { dir: ${paths.state}/state }`,
    `ca: { dir: ${paths.state}/ca }`,
    'selftest:',
    '  canaries:',
    '    - { category: adult, url: "http://blocked.test/" }',
    '    - { category: csam, url: "http://csam-canary.test/" }',
    '',
  ].join('\n'));
}

function curl(args: string[]): Promise<Result> {
  return sh('curl', ['-sS', '--max-time', '10', ...args], 20_000);
}

t.test('safespot healthcheck against a running serve: healthy, wrong token, stopped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-hc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const up = await upstreamServer();
  t.teardown(() => new Promise<void>((r) => up.close(() => r())));
  const [forward, http, admin] = await freePorts(3);
  const ports = { forward: forward!, http: http!, admin: admin!, upstream: (up.address() as AddressInfo).port };
  writeFileSync(join(dir, 'token'), 'healthcheck-token-0123456789abcdef\n');
  writeFileSync(join(dir, 'wrong-token'), 'not-the-token-0123456789abcdef\n');
  const cfg = join(dir, 'config.yaml');
  writeConfig(cfg, ports, { demo: join(ROOT, 'appliance', 'demo'), state: join(dir, 'state'), token: join(dir, 'token') });

  const app = await serve(cfg);
  t.teardown(() => void app.child.kill('SIGKILL'));

  const ok = await runCli(['healthcheck', '--config', cfg]);
  t.equal(ok.code, 0, `healthy:\n${ok.stdout}${ok.stderr}`);
  t.match(ok.stdout, /^ok: admin 127\.0\.0\.1:\d+ \/readyz$/m, 'the admin listener was checked');
  t.match(ok.stdout, /^ok: forward 127\.0\.0\.1:\d+ GET http:\/\/blocked\.test\/$/m, 'one canary decision through the forward listener');

  // The token comes from SAFESPOT_ADMIN_TOKEN_FILE when set: a wrong one is a clear failure.
  const wrong = await new Promise<Result>((resolve) => {
    execFile(process.execPath, [CLI, 'healthcheck', '--config', cfg], { env: { ...process.env, SAFESPOT_ADMIN_TOKEN_FILE: join(dir, 'wrong-token') } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code ?? 1) : 0, stdout, stderr }));
  });
  t.equal(wrong.code, 1, 'a refused token is unhealthy (exit 1)');
  t.match(wrong.stdout, /FAIL: admin .*401/, 'and says so');

  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'serve drained and exited 0');
  const down = await runCli(['healthcheck', '--config', cfg, '--timeout', '2s']);
  t.equal(down.code, 1, 'nothing listening: unhealthy (exit 1, never the reserved 2)');
  t.match(down.stdout, /ECONNREFUSED/, 'with the reason');
});

/** Why the container steps cannot run here, or null. */
async function containerSupport(): Promise<string | null> {
  if (process.platform !== 'linux') return 'podman containers need Linux';
  if (process.getuid?.() !== 0) return 'the container test runs podman as root (rootful storage, host network); run the suite as root';
  const missing: string[] = [];
  for (const tool of ['podman', 'runc', 'debootstrap', 'curl', 'npm']) {
    if ((await sh('sh', ['-c', `command -v ${tool}`])).code !== 0) missing.push(tool);
  }
  if (missing.length) return `missing ${missing.join(', ')} (test/setup-system.sh installs podman, runc, debootstrap and curl)`;
  const info = await podman(['info', '--format', '{{.Host.CgroupManager}}']);
  if (info.code !== 0) return `podman cannot run here: ${info.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  return null;
}

t.test('the image built and run for real with podman', async (t) => {
  const reason = await containerSupport();
  if (reason) {
    t.skip(`container steps skipped: ${reason}`, () => undefined);
    return;
  }
  const timings: string[] = [];
  t.teardown(() => {
    t.comment(`timings: ${timings.join(', ')}`);
  });
  const dir = mkdtempSync(join(tmpdir(), 'safespot-container-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  // --- base image ------------------------------------------------------------------------------
  const base = await logged('bash', [join(ROOT, 'docker', 'build-base-image.sh')], join(dir, 'base.log'), { CACHE_DIR });
  timings.push(`base image ${(base.ms / 1000).toFixed(1)} s`);
  if (base.code !== 0) {
    t.fail(`docker/build-base-image.sh failed (exit ${base.code}):\n${base.tail}`);
    return;
  }
  const nodeV = await podman(['run', '--rm', '--network', 'host', BASE_IMAGE, 'node', '-v']);
  t.match(nodeV.stdout, /^v22\./, `the base image runs Node 22 (${nodeV.stdout.trim()})`);

  // --- image -----------------------------------------------------------------------------------
  const before = (await podman(['image', 'inspect', '--format', '{{.Id}}', IMAGE])).stdout.trim();
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const revision = (await sh('git', ['-C', ROOT, 'rev-parse', 'HEAD'])).stdout.trim() || 'unknown';
  const buildArgs = ['--runtime', 'runc', 'build', '--format', 'docker', '--network', 'host', '--build-arg', `BASE_IMAGE=${BASE_IMAGE}`,
    '--build-arg', `CREATED=${new Date().toISOString()}`, '--build-arg', `VERSION=${version}`, '--build-arg', `REVISION=${revision}`, '-t', IMAGE];
  // Behind a TLS-inspecting egress proxy npm needs its CA inside the build step (never in a layer).
  // Without NODE_EXTRA_CA_CERTS, the host's system bundle (which holds such a proxy's CA when the
  // host's own npm works) is the best guess.
  const ca = [process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt'].find((p) => p && existsSync(p));
  if (ca) buildArgs.push('--secret', `id=build_ca,src=${ca}`);
  const build = await logged('podman', [...buildArgs, ROOT], join(dir, 'build.log'));
  timings.push(`image build ${(build.ms / 1000).toFixed(1)} s`);
  if (build.code !== 0) {
    t.fail(`podman build failed (exit ${build.code}):\n${build.tail}`);
    return;
  }
  const after = (await podman(['image', 'inspect', '--format', '{{.Id}}', IMAGE])).stdout.trim();
  // The replaced image would otherwise pile up, one per source change (its build layers stay cached).
  if (before && before !== after) await podman(['rmi', before]);

  const cfgJson = JSON.parse((await podman(['image', 'inspect', '--format', '{{json .Config}}', IMAGE])).stdout) as {
    User: string;
    ExposedPorts: Record<string, unknown>;
    Labels: Record<string, string>;
    Entrypoint: string[];
    Volumes: Record<string, unknown>;
  };
  const healthcheck = JSON.parse((await podman(['image', 'inspect', '--format', '{{json .HealthCheck}}', IMAGE])).stdout) as { Test?: string[] } | null;
  t.equal(cfgJson.User, `${UID}:${UID}`, 'image runs as uid 10001');
  t.same(Object.keys(cfgJson.ExposedPorts).sort(), ['3128/tcp', '8080/tcp', '8443/tcp', '9090/tcp'], 'exposed ports');
  t.equal(cfgJson.Labels['org.opencontainers.image.title'], 'safespot', 'OCI labels');
  t.equal(cfgJson.Labels['org.opencontainers.image.version'], version, 'version label from package.json');
  t.same(healthcheck?.Test?.slice(-2), ['/app/dist/appliance/cli.js', 'healthcheck'], `HEALTHCHECK kept (docker format): ${JSON.stringify(healthcheck)}`);
  t.same(cfgJson.Entrypoint.slice(0, 2), ['/usr/bin/tini', '--'], 'tini as PID 1');
  t.ok('/var/lib/safespot' in cfgJson.Volumes, 'state volume declared');

  // --- run -------------------------------------------------------------------------------------
  const up = await upstreamServer();
  t.teardown(() => new Promise<void>((r) => up.close(() => r())));
  const [forward, http, admin] = await freePorts(3);
  const ports = { forward: forward!, http: http!, admin: admin!, upstream: (up.address() as AddressInfo).port };
  const state = join(dir, 'state');
  const token = 'container-test-token-0123456789abcdef';
  writeFileSync(join(dir, 'admin-token'), `${token}\n`, { mode: 0o644 });
  writeConfig(join(dir, 'config.yaml'), ports, { demo: '/app/appliance/demo', state: '/var/lib/safespot', token: '/run/secrets/admin-token' });
  mkdirSync(state);
  chownSync(state, UID, UID);

  const name = `safespot-test-${process.pid}`;
  t.teardown(async () => {
    await podman(['rm', '-f', '-t', '0', name]);
  });
  const run = await podman([
    'run', '-d', '--name', name, '--network', 'host',
    '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    '-v', `${state}:/var/lib/safespot`,
    '-v', `${join(dir, 'config.yaml')}:/etc/safespot/config.yaml:ro`,
    '-v', `${join(dir, 'admin-token')}:/run/secrets/admin-token:ro`,
    IMAGE,
  ]);
  t.equal(run.code, 0, `podman run: ${run.stderr.trim()}`);
  if (run.code !== 0) return;
  const logs = async (): Promise<string> => {
    const l = await podman(['logs', name]);
    return `${l.stdout}${l.stderr}`;
  };

  const startedAt = Date.now();
  const health = await waitFor('the container health check', async () => {
    const r = await podman(['healthcheck', 'run', name], 60_000);
    return r.code === 0 ? r : null;
  }, 90_000).catch(async (err) => {
    t.fail(`${(err as Error).message}\ncontainer log:\n${await logs()}`);
    return null;
  });
  if (!health) return;
  timings.push(`healthy after ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  t.pass('podman healthcheck run: healthy');

  const metrics = async (): Promise<string> => {
    const r = await curl(['-H', `Authorization: Bearer ${token}`, `http://127.0.0.1:${ports.admin}/metrics`]);
    if (r.code !== 0) throw new Error(`GET /metrics: ${r.stderr}`);
    return r.stdout;
  };
  const unauth = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${ports.admin}/metrics`]);
  t.equal(unauth.stdout, '401', '/metrics needs the admin token');
  const m0 = await metrics();

  // Explicit proxy: an allowed host mapped to the host's loopback upstream, a blocked demo host over
  // plain HTTP and over CONNECT.
  const proxy = `http://127.0.0.1:${ports.forward}`;
  const allowed = await curl(['-x', proxy, 'http://allowed.test/hello?x=1']);
  t.equal(allowed.code, 0, `allowed request passes: ${allowed.stderr}`);
  t.equal(allowed.stdout, 'upstream says hello to allowed.test/hello?x=1', 'byte-exact upstream answer through the container');
  const blocked = await curl(['-x', proxy, '-o', '/dev/null', '-w', '%{http_code} %{content_type}', 'http://blocked.test/']);
  t.match(blocked.stdout, /^403 text\/html/, 'blocked demo host gets the block page');
  const tunnel = await curl(['-x', proxy, 'https://blocked.test/']);
  t.not(tunnel.code, 0, 'CONNECT to a blocked host is refused');
  t.match(tunnel.stderr, /403/, `the proxy answered the CONNECT with 403: ${tunnel.stderr.trim()}`);
  // Transparent HTTP listener: routed by the Host header.
  const viaHttp = await curl(['-H', 'Host: allowed.test', `http://127.0.0.1:${ports.http}/t`]);
  t.equal(viaHttp.stdout, 'upstream says hello to allowed.test/t', 'transparent http listener forwards an allowed host');
  const blockedHttp = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: adult.test', `http://127.0.0.1:${ports.http}/`]);
  t.equal(blockedHttp.stdout, '403', 'transparent http listener blocks a listed host');

  const m1 = await metrics();
  const delta = (labels: Record<string, string>): number =>
    (sample(m1, 'safespot_requests_total', labels) ?? NaN) - (sample(m0, 'safespot_requests_total', labels) ?? NaN);
  t.equal(delta({ listener: 'forward', protocol: 'http', action: 'allow', category: 'none' }), 1, 'metrics: one allowed forward request');
  t.ok(delta({ listener: 'forward', protocol: 'http', action: 'block', category: 'adult' }) >= 1, 'metrics: the blocked forward request (health checks add their own)');
  t.equal(delta({ listener: 'forward', protocol: 'connect', action: 'block', category: 'adult' }), 1, 'metrics: one blocked CONNECT');
  t.equal(delta({ listener: 'http', protocol: 'http', action: 'allow', category: 'none' }), 1, 'metrics: one allowed transparent request');
  t.equal(delta({ listener: 'http', protocol: 'http', action: 'block', category: 'adult' }), 1, 'metrics: one blocked transparent request');
  t.equal(sample(m1, 'safespot_filtering_active'), 1, 'filtering active');
  t.equal(sample(m1, 'safespot_selftest_success', { category: 'adult' }), 1, 'self-test adult passes');
  t.equal(sample(m1, 'safespot_selftest_success', { category: 'csam' }), 1, 'self-test csam passes');
  t.ok((sample(m1, 'safespot_policy_entries', { list: 'demo-adult' }) ?? 0) > 0, 'the demo list is loaded');
  const rss = sample(m1, 'process_resident_memory_bytes');
  if (rss !== null) timings.push(`resident memory ${(rss / 1024 / 1024).toFixed(0)} MiB`);

  // jemalloc is the serving process's malloc (the Dockerfile's LD_PRELOAD; under glibc's malloc RSS
  // creeps, BENCHMARKS.md "Soak"). Read on this machine: the container's tini and the node below it.
  const tini = containerInitPid(name);
  const nodes = processTree(tini).slice(1);
  t.equal(nodes.length, 1, `one node process below the container's tini (${tini})`);
  for (const pid of nodes) t.equal(mallocOf(pid), 'jemalloc', `serve (pid ${pid}) runs on jemalloc`);
  // The documented opt-out: `-e LD_PRELOAD=` runs on glibc's malloc.
  const mapsOf = (extra: string[]): Promise<Result> => podman(['run', '--rm', '--network', 'none', '--health-cmd', 'none', ...extra, '--entrypoint', 'node', IMAGE,
    '-e', 'process.stdout.write(String(require("fs").readFileSync("/proc/self/maps", "utf8").includes("/libjemalloc.so")))']);
  t.equal((await mapsOf([])).stdout, 'true', 'any node in the image preloads jemalloc');
  t.equal((await mapsOf(['-e', 'LD_PRELOAD='])).stdout, 'false', '-e LD_PRELOAD= turns it off');

  // Non-root on a read-only root filesystem, state on the volume.
  const id = await podman(['exec', name, 'id', '-u']);
  t.equal(id.stdout.trim(), String(UID), 'the process user is 10001');
  const top = await podman(['top', name, 'user', 'args']);
  t.notMatch(top.stdout, /^root\s/m, `no process runs as root:\n${top.stdout}`);
  const ro = await podman(['inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', name]);
  t.equal(ro.stdout.trim(), 'true', 'started with --read-only');
  const write = await podman(['exec', name, 'sh', '-c', 'echo x > /app/probe']);
  t.not(write.code, 0, 'the root filesystem refuses writes');
  t.match(write.stderr, /Read-only file system|Permission denied/, write.stderr.trim());
  t.ok(existsSync(join(state, 'journal.db')), 'the journal is on the volume');
  t.equal(statSync(join(state, 'journal.db')).uid, UID, 'written by uid 10001');

  // Stop: SIGTERM through tini; safespot drains and exits 0 well within the timeout.
  const stopStarted = Date.now();
  const stop = await podman(['stop', '-t', '30', name], 60_000);
  const stopMs = Date.now() - stopStarted;
  timings.push(`stop ${(stopMs / 1000).toFixed(1)} s`);
  t.equal(stop.code, 0, `podman stop: ${stop.stderr.trim()}`);
  const exit = await podman(['inspect', '--format', '{{.State.ExitCode}}', name]);
  t.equal(exit.stdout.trim(), '0', 'the container exited 0 (drained; a SIGKILL after the timeout would be 137)');
  const log = await logs();
  t.match(log, /"msg":"draining","signal":"SIGTERM"/, 'safespot saw SIGTERM and drained');
  t.match(log, /"msg":"stopped"/, 'and stopped cleanly');
  t.notMatch(log, /container-test-token/, 'the admin token never appears in the log');

  // The audit report from the stopped appliance's volume, as docs/deployment.md shows: the image's
  // entrypoint runs any safespot command, here on a read-only root too.
  const day = new Date().toISOString().slice(0, 10);
  const next = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
  const report = await podman([
    'run', '--rm', '--network', 'none', '--read-only', '--cap-drop', 'ALL', '--health-cmd', 'none',
    '-v', `${state}:/var/lib/safespot`,
    '-v', `${join(dir, 'config.yaml')}:/etc/safespot/config.yaml:ro`,
    IMAGE, 'audit', 'report', '--config', '/etc/safespot/config.yaml', '--from', day, '--to', next, '--format', 'json',
  ]);
  t.equal(report.code, 0, `audit report ran: ${report.stderr.trim()}`);
  const parsed = (() => {
    try {
      return JSON.parse(report.stdout) as { blockedRequests?: { byCategory?: Record<string, number> } };
    } catch {
      return null;
    }
  })();
  // Our three adult blocks (forward, CONNECT, transparent), plus any health-check canaries.
  t.ok((parsed?.blockedRequests?.byCategory?.adult ?? 0) >= 3, `the report counts the adult blocks: ${JSON.stringify(parsed?.blockedRequests)}`);

  // The image's own configuration (docker/config.example.yaml: every listener on 0.0.0.0, the admin
  // token from /run/secrets) with a fresh named volume, in the container's own network namespace so
  // its fixed ports cannot collide with anything on this machine.
  const own = `${name}-default`;
  const volume = `${name}-state`;
  t.teardown(async () => {
    await podman(['rm', '-f', '-t', '0', own]);
    await podman(['volume', 'rm', '-f', volume]);
  });
  const ownRun = await podman([
    'run', '-d', '--name', own, '--network', 'none', '--read-only', '--cap-drop', 'ALL',
    '-v', `${volume}:/var/lib/safespot`, '-v', `${join(dir, 'admin-token')}:/run/secrets/admin-token:ro`, IMAGE,
  ]);
  t.equal(ownRun.code, 0, `podman run with the image's config: ${ownRun.stderr.trim()}`);
  const ownHealth = await waitFor('the default-config container health check', async () => {
    const r = await podman(['exec', own, 'node', '/app/dist/appliance/cli.js', 'healthcheck']);
    return r.code === 0 ? r : null;
  }, 60_000).catch(async (err) => {
    const l = await podman(['logs', own]);
    t.fail(`${(err as Error).message}\n${l.stdout}${l.stderr}`);
    return null;
  });
  if (ownHealth) {
    t.match(ownHealth.stdout, /ok: admin 127\.0\.0\.1:9090 \/readyz\nok: forward 127\.0\.0\.1:3128 GET http:\/\/blocked\.test\//, 'healthy on the shipped ports');
    const ownLog = await podman(['logs', own]);
    t.match(ownLog.stderr + ownLog.stdout, /"forward":\{"host":"0\.0\.0\.0","port":3128\},"http":\{"host":"0\.0\.0\.0","port":8080\},"tls":\{"host":"0\.0\.0\.0","port":8443\}/, 'listeners on 0.0.0.0');
    const owner = await podman(['exec', own, 'stat', '-c', '%u', '/var/lib/safespot/journal.db']);
    t.equal(owner.stdout.trim(), String(UID), 'a new named volume is writable by uid 10001');
  }
});
