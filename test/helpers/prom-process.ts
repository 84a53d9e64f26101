/**
 * Prometheus processes for the city tests (Debian package `prometheus`): any flags (agent mode, a
 * remote-write receiver, a plain server), on a port of the caller's choice so a stopped one can come
 * back on the same address, and the HTTP query API. Every wait has a deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export interface Proc { child: ChildProcess; log: () => string; stop: () => Promise<void> }

/** A prometheus process on a given port; resolves once /-/ready answers 200. */
export async function startProm(args: string[], port: number, env: Record<string, string> = {}): Promise<Proc> {
  const child = spawn('prometheus', [...args, `--web.listen-address=127.0.0.1:${port}`, '--log.level=info'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let log = '';
  child.stderr!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-20_000)));
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exit;
    clearTimeout(killer);
  };
  await waitFor(`prometheus on ${port} ready`, async () => {
    if (exited) throw new Error(`exited: ${log}`);
    const res = await fetch(`http://127.0.0.1:${port}/-/ready`);
    await res.arrayBuffer();
    return res.status === 200;
  }, 30_000).catch(async (err) => {
    await stop();
    throw err;
  });
  return { child, log: () => log, stop };
}

export type Series = { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] };

export async function api(base: string, promql: string, time?: number): Promise<Series[]> {
  const q = new URLSearchParams({ query: promql });
  if (time !== undefined) q.set('time', String(time));
  const res = await fetch(`${base}/api/v1/query?${q}`);
  const body = (await res.json()) as { status: string; data: { result: Series[] }; error?: string };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data.result;
}

