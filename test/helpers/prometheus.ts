/**
 * A real Prometheus server for tests (Debian package `prometheus`; test/setup-system.sh installs it).
 * It scrapes the given targets every second on loopback, keeps its TSDB in a temp folder and
 * listens on a free loopback port of its own.
 *
 *   const prom = await startPrometheus({ targets: [`127.0.0.1:${admin.port}`] });
 *   t.teardown(() => prom.stop());
 *   … drive traffic …
 *   await prom.waitForScrape();
 *   t.equal(await prom.query('sum(safespot_requests_total{action="block"})'), 3);
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PrometheusOptions {
  /** host:port of each scrape target (loopback). */
  targets: string[];
  /** Sent as `Authorization: Bearer …` on every scrape. */
  bearerToken?: string;
  metricsPath?: string;
  /** Give up waiting for readiness or a scrape after this long (a guard against hanging, not a test threshold). */
  giveUpMs?: number;
}

export interface PrometheusHandle {
  /** Base URL of Prometheus's own web/API listener. */
  url: string;
  /** Run an instant query; the result must be a scalar or a vector of exactly one sample. */
  query(promql: string): Promise<number>;
  /** Resolve after every target has been scraped (successfully) by a scrape that started after this call. */
  waitForScrape(): Promise<void>;
  stop(): Promise<void>;
}

/** Whether the prometheus binary is installed (for a clear failure message). */
export function havePrometheus(): boolean {
  return spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusHandle> {
  if (!havePrometheus()) {
    throw new Error('prometheus is not installed: run `bash test/setup-system.sh` as root (or `apt-get install -y prometheus`)');
  }
  const giveUpMs = opts.giveUpMs ?? 60_000;
  const dir = mkdtempSync(join(tmpdir(), 'safespot-prometheus-'));
  const auth = opts.bearerToken ? (writeFileSync(join(dir, 'token'), opts.bearerToken, { mode: 0o600 }), true) : false;
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 900ms',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: safespot',
    `    metrics_path: ${JSON.stringify(opts.metricsPath ?? '/metrics')}`,
    ...(auth ? ['    authorization:', '      type: Bearer', `      credentials_file: ${JSON.stringify(join(dir, 'token'))}`] : []),
    '    static_configs:',
    `      - targets: ${JSON.stringify(opts.targets)}`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);

  // A port can be taken between freePort() and Prometheus binding it; retry a few times.
  let attempt = 0;
  for (;;) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-8000);
    });
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));

    const stop = async (): Promise<void> => {
      if (!exited) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exit;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    };

    const deadline = Date.now() + giveUpMs;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/-/ready`);
        await res.arrayBuffer();
        if (res.status === 200) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    if (!ready) {
      await stop().catch(() => {});
      if (exited && /address already in use/.test(stderr) && ++attempt < 5) continue;
      throw new Error(`prometheus did not become ready: ${stderr || 'no output'}`);
    }

    const api = async (path: string): Promise<unknown> => {
      const res = await fetch(`${url}${path}`);
      const body = (await res.json()) as { status: string; data?: unknown; error?: string };
      if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
      return body.data;
    };

    return {
      url,
      async query(promql) {
        const data = (await api(`/api/v1/query?query=${encodeURIComponent(promql)}`)) as
          | { resultType: 'vector'; result: Array<{ metric: unknown; value: [number, string] }> }
          | { resultType: 'scalar'; result: [number, string] }
          | { resultType: string; result: unknown };
        if (data.resultType === 'scalar') return Number((data.result as [number, string])[1]);
        if (data.resultType === 'vector') {
          const v = data.result as Array<{ metric: unknown; value: [number, string] }>;
          if (v.length !== 1) throw new Error(`${promql}: expected one sample, got ${v.length}: ${JSON.stringify(v).slice(0, 500)}`);
          return Number(v[0]!.value[1]);
        }
        throw new Error(`${promql}: unexpected result type ${data.resultType}`);
      },
      async waitForScrape() {
        const since = Date.now();
        const until = since + giveUpMs;
        for (;;) {
          const data = (await api('/api/v1/targets?state=active')) as {
            activeTargets: Array<{ scrapeUrl: string; lastScrape: string; health: string; lastError: string }>;
          };
          const targets = data.activeTargets;
          const fresh = targets.filter((x) => Date.parse(x.lastScrape.replace(/(\.\d{3})\d+/, '$1')) > since);
          if (targets.length === opts.targets.length && fresh.length === targets.length) {
            const bad = fresh.filter((x) => x.health !== 'up');
            if (bad.length) throw new Error(`scrape failed: ${bad.map((x) => `${x.scrapeUrl}: ${x.lastError}`).join('; ')}`);
            return;
          }
          if (exited) throw new Error(`prometheus exited: ${stderr}`);
          if (Date.now() > until) throw new Error(`no scrape after ${giveUpMs} ms: ${JSON.stringify(targets).slice(0, 500)}`);
          await sleep(100);
        }
      },
      stop,
    };
  }
}
