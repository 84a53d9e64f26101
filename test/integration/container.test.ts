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
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerInitPid, mallocOf, processTree } from '../../bench/soak-serve.js';
import { CLI, ROOT, runCli, serve } from '../helpers/appliance.js';
import {
  BASE_IMAGES, UID, baseImage, buildImage, containerSupport, exerciseTraffic, freePorts, imageSize, podman, sample, startContainer, stopAndDrain,
  upstreamServer, waitFor, writeConfig, type Result,
} from '../helpers/container.js';

t.setTimeout(20 * 60 * 1000);

const BASE_IMAGE = BASE_IMAGES.amd64;
const IMAGE = 'localhost/safespot:test';

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
  const base = await baseImage('amd64', join(dir, 'base.log'));
  timings.push(`base image ${(base.ms / 1000).toFixed(1)} s`);
  if (base.code !== 0) {
    t.fail(`docker/build-base-image.sh failed (exit ${base.code}):\n${base.tail}`);
    return;
  }
  const nodeV = await podman(['run', '--rm', '--network', 'host', BASE_IMAGE, 'node', '-v']);
  t.match(nodeV.stdout, /^v22\./, `the base image runs Node 22 (${nodeV.stdout.trim()})`);

  // --- image -----------------------------------------------------------------------------------
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const build = await buildImage('amd64', IMAGE, join(dir, 'build.log'));
  timings.push(`image build ${(build.ms / 1000).toFixed(1)} s`);
  if (build.code !== 0) {
    t.fail(`podman build failed (exit ${build.code}):\n${build.tail}`);
    return;
  }
  timings.push(`image size ${(await imageSize(IMAGE) / 1e6).toFixed(1)} MB`);

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
  const arch = await podman(['image', 'inspect', '--format', '{{.Architecture}}', IMAGE]);
  t.equal(arch.stdout.trim(), 'amd64', 'an amd64 image');

  // Distroless: no shell and no tool beside node and tini, so a foothold in the process finds nothing
  // to run; and none is needed (the health check and every command are node).
  const shell = await podman(['run', '--rm', '--network', 'none', '--health-cmd', 'none', '--entrypoint', '/bin/sh', IMAGE, '-c', 'true']);
  t.not(shell.code, 0, `the image has no /bin/sh: ${shell.stderr.trim()}`);
  const files = await podman(['run', '--rm', '--network', 'none', '--health-cmd', 'none', '--entrypoint', 'node', IMAGE, '-e',
    'const fs=require("fs");console.log(JSON.stringify(["/bin","/sbin","/usr/bin","/usr/sbin"].flatMap((d)=>{try{return fs.readdirSync(d).map((f)=>d+"/"+f)}catch{return []}})))']);
  t.same(JSON.parse(files.stdout || 'null'), ['/usr/bin/tini'], `the only program beside node is tini: ${files.stdout.trim()}${files.stderr.trim()}`);

  // --- run -------------------------------------------------------------------------------------
  const c = await startContainer(t, IMAGE, dir, { healthyWithinMs: 90_000, timings });
  if (!c) return;
  const { name, state } = c;
  const m1 = await exerciseTraffic(t, c);
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
  // No id, sh or stat in the image: node asks.
  const inContainer = (name: string, code: string): Promise<Result> => podman(['exec', name, 'node', '-e', code]);
  const id = await inContainer(name, 'process.stdout.write(String(process.getuid()))');
  t.equal(id.stdout.trim(), String(UID), 'the process user is 10001');
  const top = await podman(['top', name, 'user', 'args']);
  t.notMatch(top.stdout, /^root\s/m, `no process runs as root:\n${top.stdout}`);
  const ro = await podman(['inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', name]);
  t.equal(ro.stdout.trim(), 'true', 'started with --read-only');
  const write = await inContainer(name, 'require("fs").writeFileSync("/app/probe", "x")');
  t.not(write.code, 0, 'the root filesystem refuses writes');
  t.match(write.stderr, /EROFS|EACCES/, write.stderr.trim().split('\n').find((l) => /Error/.test(l)) ?? write.stderr.trim());
  t.ok(existsSync(join(state, 'journal.db')), 'the journal is on the volume');
  t.equal(statSync(join(state, 'journal.db')).uid, UID, 'written by uid 10001');

  // Stop: SIGTERM through tini; safespot drains and exits 0 well within the timeout.
  await stopAndDrain(t, c, timings);

  // The audit report from the stopped appliance's volume, as docs/deployment.md shows: the image's
  // entrypoint runs any safespot command, here on a read-only root too.
  const day = new Date().toISOString().slice(0, 10);
  const next = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
  const report = await podman([
    'run', '--rm', '--network', 'none', '--read-only', '--cap-drop', 'ALL', '--health-cmd', 'none',
    '-v', `${state}:/var/lib/safespot`,
    '-v', `${c.config}:/etc/safespot/config.yaml:ro`,
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
    const owner = await inContainer(own, 'process.stdout.write(String(require("fs").statSync("/var/lib/safespot/journal.db").uid))');
    t.equal(owner.stdout.trim(), String(UID), 'a new named volume is writable by uid 10001');
  }
});
