/**
 * A safespot with TLS interception, run through the real `serve`, for the interception tests:
 * - a CA made with `safespot certs init --dir` in a temp folder (what devices trust);
 * - HTTPS upstreams with their own test PKI (test/helpers/pki.ts), trusted by safespot through
 *   `intercept.upstreamCa`, plus bad ones: an expired leaf and a leaf from an unknown CA (both
 *   minted with certs/ from throwaway CAs), and a name the good leaf does not carry;
 * - the demo hotline and adult lists; the default profile intercepts (excluding excluded.test),
 *   clients from 127.0.0.2 form the profile `guests`, which does not.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCa, LeafMinter } from '../../certs/index.js';
import { CLI_DEMO_DIR as DEMO, runCli, serve, type Running } from './appliance.js';
import { makeTestPki } from './pki.js';
import { startHttpsUpstream } from './upstream.js';

export interface InterceptRig {
  readonly app: Running;
  readonly dir: string;
  /** The safespot CA certificate (PEM) and its file. */
  readonly caPem: string;
  readonly caFile: string;
  /** The test PKI's CA (what the real upstream presents), and its file. */
  readonly upstreamCaPem: string;
  readonly upstreamCaFile: string;
  /** Bound ports. */
  readonly forward: number;
  readonly tls: number;
  readonly admin: number;
  metrics(): Promise<string>;
}

/** Value of one series in Prometheus text (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

export async function startInterceptRig(t: { teardown(fn: () => unknown): void }, extraConfig: string[] = [], interceptExtra = ''): Promise<InterceptRig> {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-intercept-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const caDir = join(dir, 'ca');
  const init = await runCli(['certs', 'init', '--dir', caDir]);
  if (init.code !== 0) throw new Error(`certs init failed: ${init.stderr}`);
  const caFile = join(caDir, 'ca.crt');
  const caPem = readFileSync(caFile, 'utf8');

  const pki = makeTestPki(['allowed.test', 'blocked.test', 'hotline-canary.test', 'excluded.test', 'localhost']);
  t.teardown(() => pki.cleanup());
  const good = await startHttpsUpstream(pki);
  t.teardown(() => good.close());

  // An expired leaf: minted by a second CA with a clock 30 days back (leaves live 7 days).
  const oldCa = await generateCa({ now: new Date(Date.now() - 30 * 86_400_000) });
  const expiredLeaf = await new LeafMinter(oldCa, { now: () => Date.now() - 30 * 86_400_000 }).mint('expired.test');
  const expired = await startHttpsUpstream({ ...pki, cert: expiredLeaf.certPem, key: expiredLeaf.keyPem });
  t.teardown(() => expired.close());
  // A valid leaf from a CA safespot does not trust.
  const strangerLeaf = await new LeafMinter(await generateCa()).mint('unknownca.test');
  const stranger = await startHttpsUpstream({ ...pki, cert: strangerLeaf.certPem, key: strangerLeaf.keyPem });
  t.teardown(() => stranger.close());

  const upstreamCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(upstreamCaFile, pki.caCert + oldCa.certPem);
  const at = (p: number): string => `"127.0.0.1:${p}"`;
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'listeners: { forward: { host: 127.0.0.1, port: 0 }, tls: { host: 127.0.0.1, port: 0 } }',
      'admin: { host: 127.0.0.1, port: 0, serveCa: true }',
      'upstream:',
      `  hosts: { allowed.test: ${at(good.port)}, blocked.test: ${at(good.port)}, hotline-canary.test: ${at(good.port)}, excluded.test: ${at(good.port)}, wrongname.test: ${at(good.port)}, expired.test: ${at(expired.port)}, unknownca.test: ${at(stranger.port)} }`,
      'lists:',
      `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
      `intercept: { enabled: true, exclude: [excluded.test], upstreamCa: ${upstreamCaFile}${interceptExtra} }`,
      'profiles:',
      '  - { name: guests, clients: [127.0.0.2/32], intercept: { enabled: false } }',
      `ca: { dir: ${caDir} }`,
      'blockPage: { contact: "wifi-help@venue.test", languages: [en, sq] }',
      `journal: { path: ${join(dir, 'journal.db')} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      ...extraConfig,
      '',
    ].join('\n'),
  );
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const admin = app.admin;
  return {
    app,
    dir,
    caPem,
    caFile,
    upstreamCaPem: pki.caCert,
    upstreamCaFile: pki.caFile,
    forward: app.forward,
    tls: app.ports.tls ?? 0,
    admin,
    metrics: async () => (await fetch(`http://127.0.0.1:${admin}/metrics`)).text(),
  };
}
