/**
 * The load generator (bench/proxy-load.ts) in its own process, driven job by job over IPC: what
 * bench/proxy.ts and bench/cores.ts both start, so the load's CPU is not the proxy's or the
 * upstream's. No `bench` export: bench/run.ts skips this module.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadJob, LoadResult } from './proxy-load.js';

export interface LoadChild {
  /** The generator's process id, for reading its CPU time. */
  readonly pid: number;
  /** Run one job; rejects with the generator's error, or when it exits first. */
  run(job: LoadJob): Promise<LoadResult>;
}

/** Fork the load generator; it is pushed on `children` so the caller's clean-up kills it. */
export function startLoad(children: ChildProcess[]): LoadChild {
  const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'proxy-load.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  children.push(child);
  const waiting = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  child.on('message', (m: { id: number; result?: LoadResult; error?: string }) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error !== undefined) w?.reject(new Error(`load generator: ${m.error}`));
    else w?.resolve(m.result as LoadResult);
  });
  child.once('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`load generator exited (${code})`));
    waiting.clear();
  });
  return {
    pid: child.pid!,
    run: (job) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        child.send({ id, job });
      }),
  };
}
