/**
 * The container tests' shared steps (test/integration/container*.test.ts): podman with the repo's
 * containers.conf, the base images from docker/build-base-image.sh, `podman build` of the real
 * Dockerfile for one platform, and one run of the image on the host network with allowed and blocked
 * traffic through the forward and transparent-http listeners, /metrics and `podman stop`.
 *
 * Heavy commands (builds, emulated runs) go through `nice -n 10`: the machines' cores are shared
 * with work that measures CPU.
 */
import { execFile, spawn } from 'node:child_process';
import { chownSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type * as Tap from 'tap';
import { ROOT } from './appliance.js';

export const CONTAINERS_CONF = join(ROOT, 'docker', 'containers.conf');
export const CACHE_DIR = process.env.SAFESPOT_CI_CACHE ?? '/var/cache/safespot-ci';
export const UID = 10001;
/** The base images docker/build-base-image.sh assembles, by architecture. */
export const BASE_IMAGES = { amd64: 'localhost/node:22-bookworm-slim', arm64: 'localhost/node:22-bookworm-slim-arm64' } as const;
export type Arch = keyof typeof BASE_IMAGES;
const env = { ...process.env, CONTAINERS_CONF };

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function sh(cmd: string, args: string[], timeout = 120_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && !stderr ? String(err.message) : '') });
    });
  });
}
export const podman = (args: string[], timeout?: number): Promise<Result> => sh('podman', ['--runtime', 'runc', ...args], timeout);
/** podman at a lower priority, for what burns CPU (emulated runs). */
export const nicePodman = (args: string[], timeout?: number): Promise<Result> => sh('nice', ['-n', '10', 'podman', '--runtime', 'runc', ...args], timeout);

/** A long command with its output in a log file; resolves with the exit status and the log's tail. */
export function logged(cmd: string, args: string[], logFile: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; tail: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const out = createWriteStream(logFile);
    const child = spawn('nice', ['-n', '10', cmd, ...args], { cwd: ROOT, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
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
export async function freePorts(n: number): Promise<number[]> {
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

export async function waitFor<T>(what: string, fn: () => Promise<T | null>, ms: number): Promise<T> {
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
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[a-z_:]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const have = new Map([...(m[1] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[2]);
  }
  return null;
}

export function upstreamServer(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`upstream says hello to ${req.headers.host}${req.url}`);
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

export interface Ports {
  forward: number;
  http: number;
  admin: number;
  upstream: number;
}

export function writeConfig(path: string, p: Ports, paths: { demo: string; state: string; token: string }): void {
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

export function curl(args: string[], maxTime = 10): Promise<Result> {
  return sh('curl', ['-sS', '--max-time', String(maxTime), ...args], (maxTime + 10) * 1000);
}

/** Why the container steps cannot run here, or null. */
export async function containerSupport(): Promise<string | null> {
  if (process.platform !== 'linux') return 'podman containers need Linux';
  if (process.getuid?.() !== 0) return 'the container test runs podman as root (rootful storage, host network); run the suite as root';
  const missing: string[] = [];
  for (const tool of ['podman', 'runc', 'debootstrap', 'curl', 'npm', 'nice']) {
    if ((await sh('sh', ['-c', `command -v ${tool}`])).code !== 0) missing.push(tool);
  }
  if (missing.length) return `missing ${missing.join(', ')} (test/setup-system.sh installs podman, runc, debootstrap and curl)`;
  const info = await podman(['info', '--format', '{{.Host.CgroupManager}}']);
  if (info.code !== 0) return `podman cannot run here: ${info.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  return null;
}

/** Why arm64 binaries cannot run on this (x86-64) machine, or null: qemu-user-static in binfmt_misc. */
export function arm64EmulationSupport(): string | null {
  if (process.arch === 'arm64') return null;
  const entry = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
  if (!existsSync('/proc/sys/fs/binfmt_misc/status')) return 'binfmt_misc is not mounted (test/setup-system.sh mounts it as root)';
  if (!existsSync(entry)) return 'no qemu-aarch64 in binfmt_misc (test/setup-system.sh installs qemu-user-static and binfmt-support)';
  const text = readFileSync(entry, 'utf8');
  if (!/^enabled$/m.test(text)) return `${entry} is disabled`;
  if (!/^flags:.*F/m.test(text)) return `${entry} lacks the F flag, so it cannot run inside containers`;
  return null;
}

/** The base image for `arch`, built or reused by docker/build-base-image.sh. */
export async function baseImage(arch: Arch, logFile: string): Promise<{ code: number; tail: string; ms: number }> {
  return logged('bash', [join(ROOT, 'docker', 'build-base-image.sh'), '--arch', arch], logFile, { CACHE_DIR });
}

/**
 * `podman build` of the real Dockerfile for one platform, tagged `image`; the image it replaces is
 * removed (its build layers stay cached).
 */
export async function buildImage(arch: Arch, image: string, logFile: string): Promise<{ code: number; tail: string; ms: number }> {
  const before = (await podman(['image', 'inspect', '--format', '{{.Id}}', image])).stdout.trim();
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const revision = (await sh('git', ['-C', ROOT, 'rev-parse', 'HEAD'])).stdout.trim() || 'unknown';
  // --pull=never: the bases are local (no registry is reachable); with the default policy podman 4.3
  // tries to pull a stage's base when the stages' platforms differ, and fails.
  const args = ['--runtime', 'runc', 'build', '--pull=never', '--format', 'docker', '--network', 'host', '--platform', `linux/${arch}`,
    // podman 4.3 does not fill BUILDPLATFORM in FROM lines by itself (docker buildx does): the js stage
    // runs on this host's platform, with the host's base.
    '--build-arg', `BASE_IMAGE=${BASE_IMAGES[arch]}`, '--build-arg', `BUILD_BASE_IMAGE=${BASE_IMAGES.amd64}`, '--build-arg', 'BUILDPLATFORM=linux/amd64',
    '--build-arg', `CREATED=${new Date().toISOString()}`, '--build-arg', `VERSION=${version}`, '--build-arg', `REVISION=${revision}`, '-t', image];
  // Behind a TLS-inspecting egress proxy npm needs its CA inside the build step (never in a layer).
  // Without NODE_EXTRA_CA_CERTS, the host's system bundle (which holds such a proxy's CA when the
  // host's own npm works) is the best guess.
  const ca = [process.env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt'].find((p) => p && existsSync(p));
  if (ca) args.push('--secret', `id=build_ca,src=${ca}`);
  const build = await logged('podman', [...args, ROOT], logFile);
  if (build.code === 0) {
    const after = (await podman(['image', 'inspect', '--format', '{{.Id}}', image])).stdout.trim();
    if (before && before !== after) await podman(['rmi', before]);
  }
  return build;
}

/** Image size in bytes as podman counts it (the figure `podman images` prints). */
export async function imageSize(image: string): Promise<number> {
  return Number((await podman(['image', 'inspect', '--format', '{{.Size}}', image])).stdout.trim());
}

export interface RunningContainer {
  name: string;
  ports: Ports;
  token: string;
  /** The state directory on the host (mounted at /var/lib/safespot). */
  state: string;
  /** The config file on the host (mounted at /etc/safespot/config.yaml). */
  config: string;
  logs: () => Promise<string>;
  metrics: () => Promise<string>;
}

/** The tap test that reports; tap's own type (a type-only import: nothing of tap loads here). */
type TapLike = Tap.Test;

/**
 * Run `image` as documented (host network on free loopback ports, --read-only, --cap-drop ALL, a
 * mounted config, the admin token as a secret file, state in `dir`/state) and wait until its own
 * HEALTHCHECK passes (`podman healthcheck run`). Null (with the failure reported) if it never does.
 */
export async function startContainer(t: TapLike, image: string, dir: string, opts: { healthyWithinMs: number; timings: string[] }): Promise<RunningContainer | null> {
  const up = await upstreamServer();
  t.teardown(() => new Promise<void>((r) => up.close(() => r())));
  const [forward, http, admin] = await freePorts(3);
  const ports = { forward: forward!, http: http!, admin: admin!, upstream: (up.address() as AddressInfo).port };
  const state = join(dir, 'state');
  const token = 'container-test-token-0123456789abcdef';
  writeFileSync(join(dir, 'admin-token'), `${token}\n`, { mode: 0o644 });
  const config = join(dir, 'config.yaml');
  writeConfig(config, ports, { demo: '/app/appliance/demo', state: '/var/lib/safespot', token: '/run/secrets/admin-token' });
  mkdirSync(state);
  chownSync(state, UID, UID);

  const name = `safespot-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  t.teardown(async () => {
    await podman(['rm', '-f', '-t', '0', name]);
  });
  const run = await podman([
    'run', '-d', '--name', name, '--network', 'host',
    '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    '-v', `${state}:/var/lib/safespot`,
    '-v', `${config}:/etc/safespot/config.yaml:ro`,
    '-v', `${join(dir, 'admin-token')}:/run/secrets/admin-token:ro`,
    image,
  ]);
  t.equal(run.code, 0, `podman run: ${run.stderr.trim()}`);
  if (run.code !== 0) return null;
  const logs = async (): Promise<string> => {
    const l = await podman(['logs', name]);
    return `${l.stdout}${l.stderr}`;
  };
  const startedAt = Date.now();
  const health = await waitFor('the container health check', async () => {
    const r = await podman(['healthcheck', 'run', name], 60_000);
    return r.code === 0 ? r : null;
  }, opts.healthyWithinMs).catch(async (err) => {
    t.fail(`${(err as Error).message}\ncontainer log:\n${await logs()}`);
    return null;
  });
  if (!health) return null;
  opts.timings.push(`healthy after ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  t.pass('podman healthcheck run: healthy');
  const metrics = async (): Promise<string> => {
    const r = await curl(['-H', `Authorization: Bearer ${token}`, `http://127.0.0.1:${ports.admin}/metrics`]);
    if (r.code !== 0) throw new Error(`GET /metrics: ${r.stderr}`);
    return r.stdout;
  };
  return { name, ports, token, state, config, logs, metrics };
}

/**
 * Allowed and blocked requests through the forward listener (plain HTTP and CONNECT) and the
 * transparent http listener, and /metrics counting exactly that traffic. Returns the last scrape.
 */
export async function exerciseTraffic(t: TapLike, c: RunningContainer, maxTime = 10): Promise<string> {
  const unauth = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${c.ports.admin}/metrics`], maxTime);
  t.equal(unauth.stdout, '401', '/metrics needs the admin token');
  const m0 = await c.metrics();

  // Explicit proxy: an allowed host mapped to the host's loopback upstream, a blocked demo host over
  // plain HTTP and over CONNECT.
  const proxy = `http://127.0.0.1:${c.ports.forward}`;
  const allowed = await curl(['-x', proxy, 'http://allowed.test/hello?x=1'], maxTime);
  t.equal(allowed.code, 0, `allowed request passes: ${allowed.stderr}`);
  t.equal(allowed.stdout, 'upstream says hello to allowed.test/hello?x=1', 'byte-exact upstream answer through the container');
  const blocked = await curl(['-x', proxy, '-o', '/dev/null', '-w', '%{http_code} %{content_type}', 'http://blocked.test/'], maxTime);
  t.match(blocked.stdout, /^403 text\/html/, 'blocked demo host gets the block page');
  const tunnel = await curl(['-x', proxy, 'https://blocked.test/'], maxTime);
  t.not(tunnel.code, 0, 'CONNECT to a blocked host is refused');
  t.match(tunnel.stderr, /403/, `the proxy answered the CONNECT with 403: ${tunnel.stderr.trim()}`);
  // Transparent HTTP listener: routed by the Host header.
  const viaHttp = await curl(['-H', 'Host: allowed.test', `http://127.0.0.1:${c.ports.http}/t`], maxTime);
  t.equal(viaHttp.stdout, 'upstream says hello to allowed.test/t', 'transparent http listener forwards an allowed host');
  const blockedHttp = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: adult.test', `http://127.0.0.1:${c.ports.http}/`], maxTime);
  t.equal(blockedHttp.stdout, '403', 'transparent http listener blocks a listed host');

  const m1 = await c.metrics();
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
  return m1;
}

/** `podman stop`: SIGTERM through tini; safespot drains and exits 0 within the timeout. */
export async function stopAndDrain(t: TapLike, c: RunningContainer, timings: string[]): Promise<string> {
  const stopStarted = Date.now();
  const stop = await podman(['stop', '-t', '30', c.name], 60_000);
  timings.push(`stop ${((Date.now() - stopStarted) / 1000).toFixed(1)} s`);
  t.equal(stop.code, 0, `podman stop: ${stop.stderr.trim()}`);
  const exit = await podman(['inspect', '--format', '{{.State.ExitCode}}', c.name]);
  t.equal(exit.stdout.trim(), '0', 'the container exited 0 (drained; a SIGKILL after the timeout would be 137)');
  const log = await c.logs();
  t.match(log, /"msg":"draining","signal":"SIGTERM"/, 'safespot saw SIGTERM and drained');
  t.match(log, /"msg":"stopped"/, 'and stopped cleanly');
  t.ok(!log.includes(c.token), 'the admin token never appears in the log');
  return log;
}
