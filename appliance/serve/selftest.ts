/**
 * The self-test: configured canaries (a URL or host per category that must be blocked, such as the
 * test URLs list providers put in their lists) are decided through the live policy on a schedule.
 * A canary passes when it is blocked under its expected category, by the policy and by every
 * configured listener a guest reaches (forward, transparent http, transparent tls, dns: canaryProbes).
 * Results go to the metrics and
 * the journal, so an auditor can ask "does a test URL get blocked right now?" and "did it all period?".
 */
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { SELFTEST_ALPN } from '../../proxy/hooks.js';
import { SOA_MNAME } from '../../proxy/dns/answer.js';
import { CLASS_IN, encodeName, parseResponse, rdataName, RCODE, SELFTEST_EDNS_OPTION, TYPE } from '../../proxy/dns/codec.js';
import type { Decision, Subject } from '../../policy/decision.js';

export interface Canary {
  /** The bounded id from the config (appliance/config.ts CANARY_ID): its name in metrics and journal. */
  readonly id: string;
  readonly category: string;
  readonly url?: string | undefined;
  readonly host?: string | undefined;
}

export interface CanaryResult {
  readonly id: string;
  readonly category: string;
  readonly ok: boolean;
  /** Why it failed, without the canary's URL (canaries can come from a hashed list's provider). */
  readonly detail: string;
}

export function canarySubject(c: Canary): Subject | null {
  if (c.url) return { kind: 'url', url: c.url };
  if (c.host) return { kind: 'host', host: c.host };
  return null;
}

/** Decide every canary with `decide`; one result per canary. */
export function runCanaries(canaries: readonly Canary[], decide: ((s: Subject) => Decision) | null): CanaryResult[] {
  return canaries.map((c) => {
    const subject = canarySubject(c);
    const r = { id: c.id, category: c.category };
    if (!subject) return { ...r, ok: false, detail: 'canary has neither url nor host' };
    if (!decide) return { ...r, ok: false, detail: 'no policy loaded' };
    const d = decide(subject);
    if (d.action !== 'block') return { ...r, ok: false, detail: `not blocked (action ${d.action})` };
    if (d.category !== c.category) return { ...r, ok: false, detail: `blocked as ${d.category ?? 'none'}, expected ${c.category}` };
    return { ...r, ok: true, detail: `blocked by list ${d.list ?? '?'}` };
  });
}

/** Where a probe dials a listener bound to `host` (a wildcard bind is reached on loopback). */
function dialHost(host: string): string {
  return host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host.replace(/^\[|\]$/g, '');
}

/**
 * One marked HTTP request to a listener of the appliance (loopback clients may mark requests with
 * `X-Safespot-Selftest`; their verdicts count under the `selftest` listener, never as guest traffic).
 * Resolves with an error text, or null when the listener answered with a block (403).
 */
function probeHttp(listener: string, host: string, port: number, path: string, hostHeader: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request({ host: dialHost(host), port, method: 'GET', path, headers: { host: hostHeader, 'x-safespot-selftest': 'selftest', connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 403 ? null : `the ${listener} listener answered ${res.statusCode ?? '?'} instead of a block`);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`the ${listener} listener is unreachable (${err.message})`));
    req.end();
  });
}

/** Ask the forward listener itself for an http:// canary (an absolute URL, as a browser's proxy request). */
export function probeForwardListener(host: string, port: number, url: string, timeoutMs = 5000): Promise<string | null> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve('canary url does not parse');
  }
  return probeHttp('forward', host, port, url, u.host, timeoutMs);
}

/** Ask the transparent http listener for a canary the way a redirected guest's browser does: origin-form path and Host. */
export function probeTransparentHttp(host: string, port: number, canaryHost: string, path: string, timeoutMs = 5000): Promise<string | null> {
  return probeHttp('transparent http', host, port, path, canaryHost, timeoutMs);
}

/**
 * Open a TLS connection to the transparent TLS listener with the canary host as SNI, offering the
 * self-test ALPN id (a loopback client offering it is counted under `selftest`). A block is the
 * refusal alert (access_denied) before any handshake, or, where the category is intercepted, a
 * handshake with the appliance's CA and a 403 block page; anything else is a failure.
 */
export function probeTlsListener(host: string, port: number, sni: string, timeoutMs = 5000): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: dialHost(host), port, servername: sni, ALPNProtocols: [SELFTEST_ALPN, 'http/1.1'], rejectUnauthorized: false });
    expectTlsBlock(socket, 'transparent tls', sni, timeoutMs, resolve);
  });
}

/**
 * Wait on a TLS client socket for a block: the refusal alert (access_denied) before any handshake,
 * or, where the category is intercepted, a handshake with the appliance's CA and a 403 block page.
 */
function expectTlsBlock(socket: TLSSocket, listener: string, sni: string, timeoutMs: number, resolve: (r: string | null) => void, timer?: NodeJS.Timeout): void {
  let done = false;
  const end = (r: string | null): void => {
    if (done) return;
    done = true;
    clearTimeout(own);
    clearTimeout(timer);
    socket.destroy();
    resolve(r);
  };
  const own = setTimeout(() => end(`the ${listener} listener did not answer in time`), timeoutMs);
  socket.on('error', (err: Error & { code?: string }) => {
    end(err.code === 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED' ? null : `the ${listener} listener failed otherwise than a block (${err.code ?? err.message})`);
  });
  socket.on('close', () => end(`the ${listener} listener closed without a block`));
  socket.on('secureConnect', () => {
    // Intercepted: the appliance terminated TLS; its answer must be the block page.
    let head = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      head += d;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) end(m[1] === '403' ? null : `the ${listener} listener answered ${m[1]} instead of a block`);
      else if (head.length > 64) end(`the ${listener} listener answered something other than HTTP`);
    });
    socket.write(`GET / HTTP/1.1\r\nHost: ${sni}\r\nX-Safespot-Selftest: selftest\r\nConnection: close\r\n\r\n`);
  });
}

/**
 * Ask the forward listener for a tunnel to the canary host, the way a browser set to use the proxy
 * opens every https:// page: `CONNECT host:443`, marked. A block is a 403, or, where the category is
 * intercepted, a 200 whose TLS then ends in the block page (or the refusal alert).
 */
export function probeForwardConnect(host: string, port: number, canaryHost: string, timeoutMs = 5000): Promise<string | null> {
  return new Promise((resolve) => {
    let done = false;
    const end = (r: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => end('the forward listener did not answer the CONNECT in time'), timeoutMs);
    const authority = `${isIP(canaryHost) === 6 ? `[${canaryHost}]` : canaryHost}:443`;
    const sock = netConnect({ host: dialHost(host), port }, () => {
      sock.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nX-Safespot-Selftest: selftest\r\n\r\n`);
    });
    sock.on('error', (err) => end(`the forward listener is unreachable for CONNECT (${err.message})`));
    sock.on('close', () => end('the forward listener closed the CONNECT without an answer'));
    let head = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const stop = head.indexOf('\r\n\r\n');
      if (stop < 0) {
        if (head.length > 8192) end('the forward listener answered the CONNECT with something other than HTTP');
        return;
      }
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1', 0, stop))?.[1];
      if (status === '403') return end(null);
      if (status !== '200') return end(`the forward listener answered the CONNECT with ${status ?? 'no status'} instead of a block`);
      // A tunnel: intercepted categories show their block page inside TLS.
      sock.off('data', onData);
      sock.removeAllListeners('close');
      sock.removeAllListeners('error');
      sock.on('error', () => {});
      done = true;
      const tls = tlsConnect({ socket: sock, servername: isIP(canaryHost) ? undefined : canaryHost, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
      expectTlsBlock(tls, 'forward (CONNECT)', canaryHost, timeoutMs, (r) => {
        sock.destroy();
        resolve(r);
      }, timer);
    };
    sock.on('data', onData);
  });
}

/** A query for `name` type A over UDP, with an OPT record carrying the self-test option (empty data). */
export function selftestQuery(id: number, name: string): Buffer {
  const qname = encodeName(name);
  const q = Buffer.alloc(12 + qname.length + 4 + 15);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(0x0100, 2); // RD
  q.writeUInt16BE(1, 4); // one question
  q.writeUInt16BE(1, 10); // one additional: the OPT
  q.set(qname, 12);
  let o = 12 + qname.length;
  q.writeUInt16BE(TYPE.A, o);
  q.writeUInt16BE(CLASS_IN, o + 2);
  o += 4;
  q[o] = 0; // the root owns the OPT
  q.writeUInt16BE(TYPE.OPT, o + 1);
  q.writeUInt16BE(1232, o + 3); // UDP payload size
  q.writeUInt32BE(0, o + 5);
  q.writeUInt16BE(4, o + 9); // rdata: one option
  q.writeUInt16BE(SELFTEST_EDNS_OPTION, o + 11);
  q.writeUInt16BE(0, o + 13);
  return q;
}

/**
 * Whether `answer` (to selftestQuery's id and name) is the DNS listener's own block: authoritative,
 * and either the block address as the A record (`dns.blocked: null`) or NXDOMAIN / NODATA with the
 * listener's local SOA (safespot.invalid), which no upstream answer carries. Null when it is; else why not.
 */
export function dnsBlockVerdict(answer: Uint8Array, id: number, name: string, blockV4: string): string | null {
  let r;
  try {
    r = parseResponse(answer);
  } catch (err) {
    return `the dns listener answered something that does not parse (${(err as Error).message})`;
  }
  if (r.id !== id || r.qname !== name.toLowerCase().replace(/\.$/, '')) return 'the dns listener answered another question';
  if (r.rcode === RCODE.REFUSED) return 'the dns listener refused the appliance\'s own query (clients must include loopback)';
  if ((r.flags & 0x0400) === 0) return 'the dns listener forwarded the name instead of blocking it';
  const soa = r.records.find((x) => x.section === 1 && x.type === TYPE.SOA);
  if ((r.rcode === RCODE.NXDOMAIN || r.rcode === RCODE.NOERROR) && soa && rdataName(answer, soa) === SOA_MNAME) return null;
  const a = r.records.filter((x) => x.section === 0 && x.type === TYPE.A);
  if (r.rcode === RCODE.NOERROR && a.length > 0 && a.every((x) => x.rdlength === 4 && [...answer.subarray(x.rdata, x.rdata + 4)].join('.') === blockV4)) return null;
  return `the dns listener answered rcode ${r.rcode} instead of a block`;
}

/**
 * Ask the DNS listener for the canary host, marked as the self-test's own query (an EDNS option a
 * loopback client may send: its verdict counts under `selftest`). Resolves with an error text, or
 * null when the listener answered with its block.
 */
export function probeDnsListener(host: string, port: number, name: string, blockV4: string, timeoutMs = 5000): Promise<string | null> {
  return new Promise((resolve) => {
    const to = dialHost(host);
    const sock = createSocket(isIP(to) === 6 ? 'udp6' : 'udp4');
    const id = (Math.random() * 0x10000) & 0xffff;
    let done = false;
    const end = (r: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(r);
    };
    const timer = setTimeout(() => end('the dns listener did not answer in time'), timeoutMs);
    sock.on('error', (err) => end(`the dns listener is unreachable (${err.message})`));
    sock.on('message', (msg) => end(dnsBlockVerdict(msg, id, name, blockV4)));
    let query: Buffer;
    try {
      query = selftestQuery(id, name);
    } catch {
      end('canary host is not a DNS name');
      return;
    }
    sock.send(query, port, to);
  });
}

/** The listeners a self-test probes, as bound. */
export interface ProbedListeners {
  readonly forward?: { host: string; port: number } | undefined;
  readonly http?: { host: string; port: number } | undefined;
  readonly tls?: { host: string; port: number } | undefined;
  /** The DNS listener, and the IPv4 address it answers blocked names with (dns.blockAddress). */
  readonly dns?: { host: string; port: number; blockV4: string } | undefined;
}

/**
 * The listener paths a canary is probed on (issue 21, point 6): the policy deciding it is not
 * enough, the listener a guest reaches must block it too. An http:// URL canary goes through the
 * forward listener (absolute URL) and the transparent http one (path + Host); a host canary through
 * the transparent http one (`/` on it) and, when the policy blocks the host itself (not only some
 * of its URLs), the transparent tls one by SNI, the forward one by CONNECT and the DNS listener by
 * name. `hostBlocked` says whether it does.
 */
export function canaryProbes(c: Canary, listeners: ProbedListeners, hostBlocked: (host: string) => boolean, timeoutMs = 5000): Array<Promise<string | null>> {
  const probes: Array<Promise<string | null>> = [];
  let host: string;
  let path = '/';
  let plain = false;
  if (c.url) {
    let u: URL;
    try {
      u = new URL(c.url);
    } catch {
      return [Promise.resolve('canary url does not parse')];
    }
    host = u.hostname;
    plain = u.protocol === 'http:';
    path = `${u.pathname}${u.search}`;
    if (plain && listeners.forward) probes.push(probeForwardListener(listeners.forward.host, listeners.forward.port, c.url, timeoutMs));
    if (plain && listeners.http) probes.push(probeTransparentHttp(listeners.http.host, listeners.http.port, u.host, path, timeoutMs));
  } else if (c.host) {
    host = c.host;
    if (listeners.http) probes.push(probeTransparentHttp(listeners.http.host, listeners.http.port, host, '/', timeoutMs));
  } else {
    return [];
  }
  if (listeners.tls && hostBlocked(host)) probes.push(probeTlsListener(listeners.tls.host, listeners.tls.port, host, timeoutMs));
  // An https:// page through the explicit proxy is a CONNECT to the host: blocked host, blocked tunnel.
  if (listeners.forward && hostBlocked(host)) probes.push(probeForwardConnect(listeners.forward.host, listeners.forward.port, host, timeoutMs));
  // DNS decides names only: a canary whose host the policy blocks as a whole must be blocked there too.
  if (listeners.dns && hostBlocked(host)) probes.push(probeDnsListener(listeners.dns.host, listeners.dns.port, host, listeners.dns.blockV4, timeoutMs));
  return probes;
}

/**
 * The category gauge's value for each category: the minimum of its canaries (1 only when every
 * canary of the category passed). A last-one-wins gauge hid a failing canary behind a passing one.
 */
export function categoryResults(results: readonly CanaryResult[]): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const r of results) out.set(r.category, (out.get(r.category) ?? true) && r.ok);
  return out;
}
