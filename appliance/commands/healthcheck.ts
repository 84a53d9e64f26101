/**
 * `safespot healthcheck [--config FILE] [--timeout DURATION] [--admin-only]`: the container's
 * HEALTHCHECK. It checks the real path, not a port:
 *
 *   1. the admin listener answers `GET /readyz` with 200 (a valid policy is loaded), with the bearer
 *      token when one is configured;
 *   2. when a forward listener is configured, one decision through it: a self-test canary of the
 *      config (`selftest.canaries`) asked for through the proxy must come back blocked (403 block
 *      page for an http:// URL, 403 refusal for a CONNECT to a host canary).
 *
 * Exit 0 healthy, 1 unhealthy (one line per check on stdout, which Docker keeps in the health log);
 * a config that cannot be read is unhealthy (1), not a usage error: Docker reserves exit 2.
 *
 * The config comes from --config, else SAFESPOT_CONFIG, else the embedded default, exactly as for
 * `serve`. The token file: SAFESPOT_ADMIN_TOKEN_FILE when set and readable, else admin.tokenFile.
 * Listeners bound to a wildcard address (0.0.0.0, ::) are probed on loopback.
 *
 * Note: the canary request is a real guest-path decision, so the proxy counts it (and journals it)
 * like any other request on the forward listener; `--admin-only` skips it.
 */
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { SafespotError } from '../../policy/errors.js';
import { readTokenFile } from '../admin/listener.js';
import { loadConfigFile, type Config } from '../config.js';
import { defaultConfig } from '../default-config.js';
import { parseDuration } from '../duration.js';
import { parseCommandArgs, type Command } from '../io.js';

const USAGE = 'safespot healthcheck [--config FILE] [--timeout DURATION] [--admin-only]';

/** One probe: a raw HTTP/1.1 request to host:port and what makes its answer healthy. */
export interface Probe {
  /** Printable name of the check. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The request head, CRLF line ends, ending with an empty line. */
  readonly request: string;
  /** Null when the answer is healthy, else why not. */
  readonly judge: (answer: HttpAnswer) => string | null;
}

export interface HttpAnswer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** A listener's bind address as an address to connect to (wildcards become loopback). */
export function probeHost(bindHost: string): string {
  const h = bindHost.replace(/^\[|\]$/g, '');
  if (h === '0.0.0.0' || h === '') return '127.0.0.1';
  if (h === '::' || h === '::0') return '::1';
  return h;
}

function hostHeader(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The canary to ask the forward listener for: an http:// URL (GET), else a host or a bare https:// URL (CONNECT). */
export function pickCanary(canaries: ReadonlyArray<Omit<Config['selftest']['canaries'][number], 'id'>>): { kind: 'get'; url: URL; category: string } | { kind: 'connect'; host: string; category: string } | null {
  const parsed = canaries.map((c) => {
    let url: URL | null = null;
    try {
      url = c.url ? new URL(c.url) : null;
    } catch {
      url = null;
    }
    return { c, url };
  });
  const http = parsed.find((p) => p.url?.protocol === 'http:');
  if (http?.url) return { kind: 'get', url: http.url, category: http.c.category };
  const host = parsed.find((p) => p.c.host);
  if (host?.c.host) return { kind: 'connect', host: host.c.host, category: host.c.category };
  // A CONNECT decides on the host alone: only an https:// canary without a path is blocked by it.
  const https = parsed.find((p) => p.url?.protocol === 'https:' && (p.url.pathname === '/' || p.url.pathname === '') && !p.url.search);
  if (https?.url) return { kind: 'connect', host: https.url.hostname, category: https.c.category };
  return null;
}

/** The checks for a config: /readyz on the admin listener, and one canary decision through the forward listener. */
export function planProbes(config: Readonly<Config>, token: string | undefined, opts: { adminOnly?: boolean } = {}): { probes: Probe[]; notes: string[] } {
  const probes: Probe[] = [];
  const notes: string[] = [];
  if (config.admin) {
    const host = probeHost(config.admin.host);
    const port = config.admin.port;
    const auth = token ? `Authorization: Bearer ${token}\r\n` : '';
    probes.push({
      name: `admin ${hostHeader(host, port)} /readyz`,
      host,
      port,
      request: `GET /readyz HTTP/1.1\r\nHost: ${hostHeader(host, port)}\r\n${auth}Connection: close\r\n\r\n`,
      judge: (a) => {
        if (a.status === 200) return null;
        if (a.status === 401) return '401: the admin token was refused (SAFESPOT_ADMIN_TOKEN_FILE / admin.tokenFile)';
        return `${a.status}: ${a.body.trim().slice(0, 300)}`;
      },
    });
  } else {
    notes.push('admin listener disabled: /readyz not checked');
  }

  const fwd = config.listeners.forward;
  if (opts.adminOnly) {
    notes.push('--admin-only: no decision through the forward listener');
  } else if (!fwd) {
    notes.push('no forward listener: no decision checked');
  } else {
    const canary = pickCanary(config.selftest.canaries);
    const host = probeHost(fwd.host);
    const where = `forward ${hostHeader(host, fwd.port)}`;
    if (!canary) {
      notes.push('no http:// or host self-test canary configured: no decision checked (add one under selftest.canaries)');
    } else if (canary.kind === 'get') {
      const target = canary.url.href;
      probes.push({
        name: `${where} GET ${target}`,
        host,
        port: fwd.port,
        request: `GET ${target} HTTP/1.1\r\nHost: ${canary.url.host}\r\nUser-Agent: safespot-healthcheck\r\nX-Safespot-Selftest: healthcheck\r\nConnection: close\r\n\r\n`,
        judge: (a) => judgeBlock(a, canary.category, 'text/html'),
      });
    } else {
      const authority = hostHeader(canary.host, 443);
      probes.push({
        name: `${where} CONNECT ${authority}`,
        host,
        port: fwd.port,
        request: `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: safespot-healthcheck\r\n\r\n`,
        judge: (a) => judgeBlock(a, canary.category, 'text/plain'),
      });
    }
  }
  return { probes, notes };
}

/** The canary must be blocked by the filter: 403 with the block page / refusal, not another refusal. */
function judgeBlock(a: HttpAnswer, category: string, type: string): string | null {
  if (a.status === 503) return `503: the proxy has no valid policy (${a.body.trim().slice(0, 200)})`;
  if (a.status !== 403) return `${a.status}: the ${category} canary was not blocked`;
  if (/not allowed to use the proxy/.test(a.body)) return '403: the proxy refuses this client address; add 127.0.0.0/8 (and ::1/128) to `clients`';
  if (!(a.headers['content-type'] ?? '').startsWith(type)) return `403 with content-type ${a.headers['content-type'] ?? '(none)'}: not the block answer`;
  return null;
}

/** Send one raw request; resolve with the answer once its head and Content-Length body are in, or at end. */
export function exchange(probe: Pick<Probe, 'host' | 'port' | 'request'>, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: probe.host, port: probe.port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null, answer?: HttpAnswer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    const tryParse = (atEnd: boolean): void => {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        if (atEnd) finish(new Error(buf.length ? 'malformed HTTP answer' : 'connection closed without an answer'));
        return;
      }
      const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
      if (!m) {
        finish(new Error(`not an HTTP answer: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`));
        return;
      }
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const body = buf.subarray(headEnd + 4);
      const length = headers['content-length'] === undefined ? NaN : Number(headers['content-length']);
      if (atEnd || (Number.isFinite(length) && body.length >= length)) {
        finish(null, { status: Number(m[1]), headers, body: body.toString('utf8') });
      }
    };
    socket.on('connect', () => socket.write(probe.request));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > 1024 * 1024) finish(new Error('answer larger than 1 MiB'));
      else tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('close', () => tryParse(true));
    socket.on('error', (err) => finish(err));
  });
}

/** The token the admin listener expects: SAFESPOT_ADMIN_TOKEN_FILE when it names a file, else admin.tokenFile. */
export function tokenFileFor(config: Readonly<Config>, env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env.SAFESPOT_ADMIN_TOKEN_FILE;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  return config.admin?.tokenFile;
}

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(
    args,
    { config: { type: 'string', short: 'c' }, timeout: { type: 'string' }, 'admin-only': { type: 'boolean' } },
    USAGE,
  );
  const timeoutMs = values.timeout === undefined ? 5000 : parseDuration(values.timeout);
  if (timeoutMs === null || timeoutMs <= 0) throw new SafespotError('ERR_USAGE', `--timeout: "${values.timeout}" is not a duration\nusage: ${USAGE}`);

  let config: Readonly<Config>;
  let token: string | undefined;
  try {
    const path = values.config ?? process.env.SAFESPOT_CONFIG;
    config = path ? loadConfigFile(path) : defaultConfig();
    const tokenFile = tokenFileFor(config, process.env);
    token = tokenFile ? readTokenFile(tokenFile) : undefined;
  } catch (err) {
    // Unhealthy, not "bad usage": Docker reserves exit status 2 of a health check.
    const e = err as SafespotError;
    io.stdout.write(`unhealthy: ${e.code ?? 'error'}: ${e.message}\n`);
    for (const d of e.details ?? []) io.stdout.write(`  - ${d}\n`);
    return 1;
  }

  const { probes, notes } = planProbes(config, token, { adminOnly: values['admin-only'] === true });
  for (const n of notes) io.stdout.write(`note: ${n}\n`);
  if (probes.length === 0) {
    io.stdout.write('unhealthy: nothing to check (no admin listener and no forward listener)\n');
    return 1;
  }
  let healthy = true;
  for (const p of probes) {
    let verdict: string | null;
    try {
      verdict = p.judge(await exchange(p, timeoutMs));
    } catch (err) {
      verdict = (err as Error).message;
    }
    io.stdout.write(verdict === null ? `ok: ${p.name}\n` : `FAIL: ${p.name}: ${verdict}\n`);
    if (verdict !== null) healthy = false;
  }
  io.stdout.write(healthy ? 'healthy\n' : 'unhealthy\n');
  return healthy ? 0 : 1;
};
