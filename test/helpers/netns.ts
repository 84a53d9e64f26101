/**
 * Network namespaces for transparent-mode tests: three hosts on this machine, wired like a venue.
 *
 *   client (10.231.1.2) --veth-- (10.231.1.1 "guest" if) router (10.231.2.1) --veth-- (10.231.2.2) upstream
 *
 * The router forwards between the two links; the client's default route points at it, so guest
 * traffic to the upstream crosses the router, where REDIRECT rules hand it to safespot. Names are
 * unique per process, so parallel test files never collide, and `destroy()` removes everything.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Topology {
  readonly client: string;
  readonly router: string;
  readonly upstream: string;
  /** The router's interface towards the guests. */
  readonly guestIf: string;
  readonly ip: { client: string; routerGuest: string; routerUpstream: string; upstream: string };
  exec(ns: string, cmd: string, args: string[], opts?: { timeout?: number; input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  spawn(ns: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  destroy(): Promise<void>;
}

async function sh(cmd: string, args: string[]): Promise<void> {
  await run(cmd, args, { timeout: 15_000 });
}

/** null when namespaces can be made here, otherwise the reason they cannot. */
export async function namespaceSupport(): Promise<string | null> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root';
  const probe = `ssprobe${process.pid}`;
  try {
    await sh('ip', ['netns', 'add', probe]);
    await sh('ip', ['netns', 'del', probe]);
    return null;
  } catch (err) {
    return `ip netns add failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

export async function createTopology(): Promise<Topology> {
  const tag = `${process.pid % 100000}`;
  const client = `ssc${tag}`;
  const router = `ssr${tag}`;
  const upstream = `ssu${tag}`;
  const ip = { client: '10.231.1.2', routerGuest: '10.231.1.1', routerUpstream: '10.231.2.1', upstream: '10.231.2.2' };
  const names = [client, router, upstream];
  const destroy = async (): Promise<void> => {
    for (const ns of names) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  };
  try {
    for (const ns of names) {
      await sh('ip', ['netns', 'add', ns]);
      await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // veth pairs are created inside the namespaces directly, so nothing touches the host's links.
    await sh('ip', ['-n', client, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'guest0', 'netns', router]);
    await sh('ip', ['-n', router, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', upstream]);
    await sh('ip', ['-n', client, 'addr', 'add', `${ip.client}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', router, 'addr', 'add', `${ip.routerGuest}/24`, 'dev', 'guest0']);
    await sh('ip', ['-n', router, 'addr', 'add', `${ip.routerUpstream}/24`, 'dev', 'wan0']);
    await sh('ip', ['-n', upstream, 'addr', 'add', `${ip.upstream}/24`, 'dev', 'eth0']);
    for (const [ns, dev] of [[client, 'eth0'], [router, 'guest0'], [router, 'wan0'], [upstream, 'eth0']] as const) {
      await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    await sh('ip', ['-n', client, 'route', 'add', 'default', 'via', ip.routerGuest]);
    await sh('ip', ['-n', upstream, 'route', 'add', 'default', 'via', ip.routerUpstream]);
    await sh('ip', ['netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  } catch (err) {
    await destroy();
    throw err;
  }
  return {
    client,
    router,
    upstream,
    guestIf: 'guest0',
    ip,
    async exec(ns, cmd, args, opts) {
      return new Promise((resolve) => {
        const child = execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: opts?.timeout ?? 20_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
          const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : 1) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        });
        if (opts?.input !== undefined) child.stdin?.end(opts.input);
      });
    },
    spawn(ns, cmd, args, env) {
      const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
      child.on('error', () => undefined);
      return child;
    },
    destroy,
  };
}
