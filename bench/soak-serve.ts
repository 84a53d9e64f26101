/**
 * The appliance under soak (bench/soak.ts): a `safespot serve` started either as a child process of
 * this Node, or as the container image run the way docs/deployment.md runs it (podman, host network,
 * read-only root, no capabilities), and read the way an operator would: /metrics on the admin
 * listener, and each of its processes' memory from /proc/PID/status on this machine.
 *
 * The processes are the serve and its descendants (with `workers` > 1, the cluster's workers). In a
 * container they are found from the container's PID 1 (tini, not counted) through
 * /proc/PID/task/TID/children, so the figures are those of the same node processes either way.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'appliance', 'cli.js');
const CONTAINERS_CONF = join(HERE, '..', '..', 'docker', 'containers.conf');

export async function metricsText(adminPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  return res.text();
}

/** Sum of every sample of `name` (whose labels contain `labelFilter`, when given). */
export function metricSum(text: string, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labelFilter && !rest.includes(labelFilter)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export function limitsHit(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^safespot_limits_hit_total\{limit="([a-z_]+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** VmRSS and RssAnon from one read of /proc/PID/status. */
export function statusBytes(pid: number): { rss: number; anon: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(text);
    return m ? Number(m[1]) * 1024 : NaN;
  };
  return { rss: kib('VmRSS'), anon: kib('RssAnon') };
}

/** The malloc a process runs on: jemalloc when the library is mapped (LD_PRELOAD, as the image sets it), else glibc's. */
export function mallocOf(pid: number): 'jemalloc' | 'glibc' {
  return readFileSync(`/proc/${pid}/maps`, 'utf8').includes('/libjemalloc.so') ? 'jemalloc' : 'glibc';
}

/** This machine's libjemalloc (Debian's libjemalloc2), for LD_PRELOAD. */
export function jemallocLibrary(): string {
  const dirs = readdirSync('/usr/lib').filter((d) => d.endsWith('-linux-gnu')).map((d) => join('/usr/lib', d));
  const found = [...dirs, '/usr/local/lib'].map((d) => join(d, 'libjemalloc.so.2')).find((f) => existsSync(f));
  if (!found) throw new Error('no libjemalloc.so.2 under /usr/lib/*-linux-gnu or /usr/local/lib: apt-get install libjemalloc2');
  return found;
}

/** Direct children of `pid` (every thread's: a child belongs to the thread that forked it). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // gone
  }
  for (const tid of tids) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      // the thread ended between the two reads
    }
  }
  return out;
}

/** `pid` and all its descendants, parents first. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...childrenOf(p));
  }
  return out;
}

export interface ServeUnderSoak {
  ports: Record<string, number>;
  admin: number;
  /** The operational log so far (its tail). */
  log: () => string;
  /** Pids (on this machine) of the node processes of the appliance now. */
  pids: () => number[];
  alive: () => boolean;
  /** SIGTERM (through podman for a container); resolves with the exit status. */
  stop: () => Promise<number | null>;
  /** Last resort in a `finally`: nothing left running. */
  kill: () => void;
}

export interface ServeOptions {
  /** Run this container image (podman) instead of the serve of this tree. */
  image?: string;
  /** Host directories the container needs at the same paths (config, journal, lists); the first is writable. */
  mounts?: string[];
  /**
   * `glibc`: no LD_PRELOAD (the image preloads jemalloc; `-e LD_PRELOAD=` undoes it, docs/deployment.md).
   * `jemalloc`: the image as it is; for the serve of this tree, this machine's libjemalloc preloaded.
   * Unset: whatever the environment says.
   */
  malloc?: 'glibc' | 'jemalloc';
}

function podmanArgs(args: string[]): string[] {
  return ['--runtime', 'runc', ...args];
}
const podmanEnv = { ...process.env, CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? CONTAINERS_CONF };

/** A running container's PID 1 (tini) as this machine numbers it; its node processes are below it. */
export function containerInitPid(name: string): number {
  const r = spawnSync('podman', podmanArgs(['inspect', '--format', '{{.State.Pid}}', name]), { env: podmanEnv, encoding: 'utf8' });
  const pid = Number(r.stdout.trim());
  if (!(pid > 0)) throw new Error(`podman inspect found no pid for ${name}: ${r.stderr}`);
  return pid;
}

/** Start serve on `config` and resolve once it logs "safespot serving" (its listeners' ports). */
export function startServe(config: string, opts: ServeOptions = {}): Promise<ServeUnderSoak> {
  const name = `safespot-soak-${process.pid}-${Date.now()}`;
  let child: ChildProcess;
  if (opts.image) {
    const [state, ...ro] = opts.mounts ?? [];
    const volumes = [...(state ? ['-v', `${state}:${state}`] : []), ...ro.flatMap((m) => ['-v', `${m}:${m}:ro`])];
    child = spawn('podman', podmanArgs([
      'run', '--rm', '--name', name, '--network', 'host', '--read-only', '--cap-drop', 'ALL',
      '--security-opt', 'no-new-privileges', '--health-cmd', 'none', ...volumes,
      // No admin token: the soak reads /metrics on loopback as it does from the serve of this tree.
      '-e', 'SAFESPOT_ADMIN_TOKEN_FILE=', ...(opts.malloc === 'glibc' ? ['-e', 'LD_PRELOAD='] : []), opts.image, 'serve', '--config', config,
    ]), { stdio: ['ignore', 'ignore', 'pipe'], env: podmanEnv });
  } else {
    const env = { ...process.env };
    if (opts.malloc === 'glibc') delete env.LD_PRELOAD;
    if (opts.malloc === 'jemalloc') env.LD_PRELOAD = jemallocLibrary();
    child = spawn(process.execPath, [CLI, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'], env });
  }
  let log = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  let rootPid = child.pid!;
  const pids = (): number[] => (opts.image ? processTree(rootPid).slice(1) : processTree(rootPid));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${log}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      const first = !log.includes('"safespot serving"');
      log += d.toString();
      // Keep only the tail: the log of a long soak must not grow this process without bound.
      if (log.length > 200_000) log = log.slice(-100_000);
      // Complete lines only: a chunk may end in the middle of the one we want.
      const line = first ? log.split('\n').slice(0, -1).find((l) => l.includes('"safespot serving"')) : undefined;
      if (!line) return;
      clearTimeout(timer);
      if (opts.image) {
        try {
          rootPid = containerInitPid(name);
        } catch (err) {
          reject(err as Error);
          return;
        }
      }
      const j = JSON.parse(line) as { listeners: Record<string, { port: number }>; admin: string };
      resolve({
        ports: Object.fromEntries(Object.entries(j.listeners).map(([k, v]) => [k, v.port])),
        admin: Number(j.admin.split(':').pop()),
        log: () => log,
        pids,
        alive,
        stop: () => {
          child.kill('SIGTERM'); // podman run passes it to the container's tini, which passes it to node
          return exited;
        },
        kill: () => {
          if (alive()) child.kill('SIGKILL');
          if (opts.image) spawnSync('podman', podmanArgs(['rm', '-f', '-t', '0', name]), { env: podmanEnv, stdio: 'ignore' });
        },
      });
    });
    void exited.then((code) => reject(new Error(`serve exited ${code}:\n${log}`)));
  });
}
