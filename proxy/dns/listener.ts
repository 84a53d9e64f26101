/**
 * The guests' DNS: one port, UDP and TCP (RFC 7766; TCP messages carry a 2-byte length, RFC 1035
 * §4.2.2). Every question is decided through the DNS hook (./hook.ts) before anything else happens;
 * what is blocked or a bypass signal is answered here and never forwarded; what is allowed is asked
 * upstream (./upstream.ts) under our own question, cached (./cache.ts), and every name its answer
 * leads to is decided too (CNAME cloaking). HTTPS/SVCB answers lose `ech` (./answer.ts).
 *
 * Not an open resolver: clients outside `clients` get REFUSED, nothing else; a UDP answer never
 * exceeds the query's EDNS size (512 without EDNS): it goes out with TC and no records instead,
 * and TCP carries the whole answer; each client (an IPv4 address, an IPv6 /64) has a token bucket
 * (over it, UDP queries are dropped and TCP ones REFUSED, counted as limit `dns_rate`).
 *
 * Bad bytes: a query we cannot read gets FORMERR when it has a header to answer to, else it is
 * dropped; both are counted. Nothing a packet holds can throw past handle(): the process and every
 * other query carry on. TCP connections are bounded in number, idle time and queries in flight.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Decision } from '../../policy/decision.js';
import { isEncryptedDnsEndpoint } from '../../policy/encrypted-dns.js';
import type { CidrSet } from '../../policy/ip.js';
import type { BypassKind, Observer, VerdictEvent } from '../../audit/observer.js';
import { combineObservers } from '../../audit/observer.js';
import { clientKey, clientText } from '../limits.js';
import { loopbackClient } from '../hooks.js';
import type { Endpoint } from '../upstream.js';
import { blockedAnswer, cnameTo, emptyAnswer, formErr, localSoa, processUpstream, serveAnswer, type BlockAddresses, type Processed } from './answer.js';
import { AnswerCache } from './cache.js';
import { CLASS_IN, DnsFormatError, hasHeader, parseQuery, RCODE, TYPE, type Query } from './codec.js';
import type { DnsHooks, DnsVerdict } from './hook.js';
import { DnsForwarder, type DnsServer } from './upstream.js';

export interface DnsListenerOptions {
  /** Where to listen, UDP and TCP on the same port; port 0 picks one free for both. */
  readonly endpoint: Endpoint;
  /** Client networks served; others get REFUSED. */
  readonly clients: CidrSet;
  /** Upstream servers, in order (the caller resolves `upstream.dnsServers` or the system's). */
  readonly servers: readonly DnsServer[];
  /** How a blocked name is answered: `null` = A 0.0.0.0 / AAAA :: (or blockAddresses), NODATA for other types; `nxdomain`. */
  readonly blocked: 'null' | 'nxdomain';
  /** Addresses a blocked name resolves to (the transparent http listener, for the block page); 4 and 16 bytes. */
  readonly blockAddresses: BlockAddresses;
  /** TTL of local answers (blocked names, bypass signals), seconds. */
  readonly blockTtl: number;
  /** Largest TTL an upstream answer is cached for, seconds. */
  readonly maxTtl: number;
  readonly cacheEntries: number;
  readonly cacheBytes: number;
  /** `strip-ech`: remove ech from HTTPS/SVCB answers; `empty`: answer every HTTPS (type 65) query with NODATA. */
  readonly https: 'strip-ech' | 'empty';
  /** Per client (IPv4 address, IPv6 prefix): sustained queries per second and burst. */
  readonly rateLimit: { readonly queriesPerSecond: number; readonly burst: number };
  readonly tcp: { readonly idleTimeoutMs: number; readonly maxConnections: number; readonly maxInFlight: number };
  readonly upstream: { readonly tryTimeoutMs: number; readonly tries: number; readonly maxPending: number };
  /** The journal may keep the question name / the client address (journal.recordUrls / recordClients). */
  readonly recordNames: boolean;
  readonly recordClients: boolean;
  readonly clientIpv6Prefix: number;
}

export interface DnsListenerHandle {
  /** The bound address (the same port for UDP and TCP). */
  address(): Endpoint;
  /** New hooks (a new policy) for every question from now on. */
  setHooks(h: DnsHooks): void;
  /** Cached answers now (entries, bytes). */
  cacheSize(): { entries: number; bytes: number };
  close(): Promise<void>;
}

const TCP_MAX_BUFFER = 2 + 65535;
const BUCKETS_MAX = 65536;

interface Bucket {
  tokens: number;
  last: number;
}

class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  take(key: string, now: number): boolean {
    if (this.rate <= 0) return true;
    let b = this.buckets.get(key);
    if (b === undefined) {
      // Bounded: a flood of made-up IPv6 prefixes empties the table, it never grows past it.
      if (this.buckets.size >= BUCKETS_MAX) this.buckets.clear();
      b = { tokens: this.burst, last: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.last) / 1000) * this.rate);
      b.last = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

function udpType(host: string): 'udp4' | 'udp6' {
  return isIP(host) === 6 ? 'udp6' : 'udp4';
}

export async function startDnsListener(opts: DnsListenerOptions, hooks: DnsHooks, rawObserver: Observer): Promise<DnsListenerHandle> {
  const observer = combineObservers(rawObserver);
  let current = hooks;
  const cache = new AnswerCache(opts.cacheEntries, opts.cacheBytes);
  const forwarder = new DnsForwarder(opts.servers, opts.upstream);
  const limiter = new RateLimiter(opts.rateLimit.queriesPerSecond, opts.rateLimit.burst);
  const processOpts = { maxTtl: opts.maxTtl, stripEch: opts.https === 'strip-ech' };

  const bypass = (kind: BypassKind): void => observer.bypass?.(kind);

  /**
   * Per client address: in `clients`, and its rate-limit / budget key. Parsing the address on every
   * query was a few per cent of a blocked answer (bench/dns.ts); bounded like proxy/limits.ts's cache.
   */
  const known = new Map<string, { readonly ok: boolean; readonly key: string }>();
  const who = (client: string): { readonly ok: boolean; readonly key: string } => {
    let w = known.get(client);
    if (w === undefined) {
      if (known.size >= 4096) known.clear();
      w = { ok: opts.clients.contains(client), key: clientKey(client, opts.clientIpv6Prefix) };
      known.set(client, w);
    }
    return w;
  };

  const report = (client: string, q: Query, d: Decision, started: number): void => {
    const e: VerdictEvent = {
      // The self-test's probe (marked in its OPT record, from loopback only: guests never are) counts
      // under `selftest`, never as a guest's query.
      listener: q.edns?.selftest === true && loopbackClient(client) ? 'selftest' : 'dns',
      protocol: 'dns',
      action: d.action,
      category: d.category,
      list: d.list,
      durationSeconds: (performance.now() - started) / 1000,
    };
    if (opts.recordNames) e.url = q.qname;
    // Blocks only: the journal keeps a keyed hash of the name, to count distinct sites.
    if (d.action === 'block' || d.action === 'monitor') e.site = q.qname;
    if (opts.recordClients) e.client = client;
    else e.budgetKey = who(client).key;
    observer.verdict(e);
  };

  /** The answer cache's entry for a question, if fresh: the processed answer and its age in seconds. */
  const cached = (name: string, type: number, cls: number): { answer: Processed; age: number } | null => {
    const now = Date.now();
    const hit = cache.get(AnswerCache.key(name, type, cls), now);
    return hit ? { answer: hit.answer, age: Math.floor((now - hit.stored) / 1000) } : null;
  };

  /** Asked upstream, processed, cached. Throws on upstream failure. */
  const fetchUpstream = async (name: string, type: number, cls: number): Promise<Processed> => {
    const raw = await forwarder.query(name, type, cls);
    const answer = processUpstream(raw, processOpts);
    cache.set(AnswerCache.key(name, type, cls), answer, Date.now());
    return answer;
  };

  /** Local negative answers (NXDOMAIN, NODATA) carry this SOA: negative TTL = dns.blockTtl (RFC 2308). */
  const soa = localSoa(opts.blockTtl);

  const blockedReply = (q: Query, msg: Uint8Array): Uint8Array =>
    opts.blocked === 'nxdomain' ? emptyAnswer(q, msg, RCODE.NXDOMAIN, true, soa) : blockedAnswer(q, msg, opts.blockAddresses, opts.blockTtl, soa);

  /**
   * A processed answer (cached or fresh) made the client's: every name it leads to decided (CNAME
   * cloaking), counted, stamped. Synchronous: a cached answer costs no promise.
   */
  const answerWith = (q: Query, msg: Uint8Array, client: string, verdict: DnsVerdict & { kind: 'forward' | 'cname' }, answer: Processed, age: number, limit: number, started: number): Uint8Array => {
    if (verdict.kind === 'cname') answer = cnameTo(q.qname, verdict.target, answer, opts.blockTtl);
    // CNAME cloaking: every name the answer leads to is decided like the question's.
    let decision = verdict.decision;
    const names = answer.names;
    for (let i = verdict.kind === 'cname' ? -1 : 0; i < names.length; i++) {
      const n = i < 0 ? (verdict as { target: string }).target : names[i]!;
      let d: Decision;
      try {
        d = current.onAnswerName(n, client);
      } catch {
        d = FAILED;
      }
      if (d.action === 'block') {
        bypass('cname_cloaking');
        report(client, q, d, started);
        return blockedReply(q, msg);
      }
      if (d.action === 'monitor' && decision.action === 'allow') decision = d;
    }
    if (answer.echRemoved > 0) bypass('ech_removed');
    report(client, q, decision, started);
    return serveAnswer(answer, q, msg, age, limit);
  };

  const upstreamFailed = (q: Query, msg: Uint8Array, client: string, verdict: DnsVerdict, started: number, err: unknown): Uint8Array => {
    observer.upstreamError(err instanceof DnsFormatError ? 'other' : 'timeout');
    report(client, q, verdict.decision, started);
    return emptyAnswer(q, msg, RCODE.SERVFAIL);
  };

  /**
   * One query's answer: the bytes at once (local answers, cached answers, refusals), a promise only
   * when the answer must be asked upstream, or null to send nothing. `msg` is the client's query;
   * the answer copies its question bytes. May throw only on a bug (the callers count and drop it).
   */
  const handle = (msg: Uint8Array, client: string, transport: 'udp' | 'tcp'): Uint8Array | null | Promise<Uint8Array> => {
    let q: Query;
    try {
      q = parseQuery(msg);
    } catch (err) {
      if (!(err instanceof DnsFormatError)) throw err;
      if (hasHeader(msg)) {
        observer.dnsMalformed?.('formerr');
        return formErr(msg);
      }
      observer.dnsMalformed?.('dropped');
      return null;
    }
    const w = who(client);
    if (!w.ok) {
      observer.limitHit('client_forbidden');
      return emptyAnswer(q, msg, RCODE.REFUSED);
    }
    if (!limiter.take(w.key, Date.now())) {
      observer.limitHit('dns_rate');
      return transport === 'udp' ? null : emptyAnswer(q, msg, RCODE.REFUSED);
    }
    if (q.opcode !== 0) return emptyAnswer(q, msg, RCODE.NOTIMP);
    if (q.edns && q.edns.version !== 0) {
      // RFC 6891 §6.1.3 wants BADVERS (an extended rcode carried in our OPT); FORMERR without an OPT,
      // what a server without EDNS answers, tells the client the same: ask again with version 0.
      observer.dnsMalformed?.('formerr');
      return emptyAnswer({ ...q, edns: null }, msg, RCODE.FORMERR);
    }
    // Zone transfers, other classes (CH version.bind, …) and meta types are not ours to serve.
    if (q.qclass !== CLASS_IN || q.qtype === 251 || q.qtype === 252 || q.qtype === TYPE.OPT) return emptyAnswer(q, msg, RCODE.REFUSED);
    // Local answers (one record at most, a question of at most 259 bytes) always fit in 512 bytes.
    const limit = transport === 'tcp' ? 65535 : q.edns ? Math.min(q.edns.udpSize, 4096) : 512;
    const started = performance.now();
    let verdict: DnsVerdict;
    try {
      verdict = current.onQuestion(q.qname, q.qtype, client);
    } catch {
      verdict = { kind: 'block', decision: FAILED };
    }
    switch (verdict.kind) {
      case 'signal':
        bypass(verdict.signal);
        report(client, q, verdict.decision, started);
        return emptyAnswer(q, msg, verdict.answer === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.NOERROR, true, soa);
      case 'block':
        if (verdict.decision.category === 'bypass' && isEncryptedDnsEndpoint(q.qname)) bypass('encrypted_dns_endpoint');
        report(client, q, verdict.decision, started);
        return blockedReply(q, msg);
      case 'forward':
      case 'cname':
        break;
      default:
        return assertNeverVerdict(verdict);
    }
    if (q.qtype === TYPE.HTTPS && opts.https === 'empty') {
      bypass('https_refused');
      report(client, q, verdict.decision, started);
      return emptyAnswer(q, msg, RCODE.NOERROR, false, soa);
    }
    const v = verdict;
    const askName = v.kind === 'cname' ? v.target : q.qname;
    const hit = cached(askName, q.qtype, q.qclass);
    if (hit !== null) return answerWith(q, msg, client, v, hit.answer, hit.age, limit, started);
    const qq = q;
    return fetchUpstream(askName, q.qtype, q.qclass).then(
      (answer) => answerWith(qq, msg, client, v, answer, 0, limit, started),
      (err: unknown) => upstreamFailed(qq, msg, client, v, started, err),
    );
  };

  /** handle(), and whatever it throws (a bug) counted as a dropped query: never past here. */
  const safeHandle = (msg: Uint8Array, client: string, transport: 'udp' | 'tcp'): Uint8Array | null | Promise<Uint8Array | null> => {
    const dropped = (): null => {
      observer.dnsMalformed?.('dropped');
      return null;
    };
    try {
      const out = handle(msg, client, transport);
      return out instanceof Promise ? out.catch(dropped) : out;
    } catch {
      return dropped();
    }
  };

  // --- TCP ------------------------------------------------------------------------------
  const tcpSockets = new Set<Socket>();
  const tcp: Server = createServer({ pauseOnConnect: false }, (sock) => {
    sock.on('error', () => sock.destroy());
    tcpSockets.add(sock);
    observer.connectionOpened('dns');
    sock.once('close', () => {
      tcpSockets.delete(sock);
      observer.connectionClosed('dns');
    });
    sock.setTimeout(opts.tcp.idleTimeoutMs, () => sock.destroy());
    sock.setNoDelay(true);
    const client = clientText(sock.remoteAddress);
    let pending: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    const sendTcp = (msg: Uint8Array, out: Uint8Array | null): void => {
      if (out === null) {
        // Unreadable even as a header: the stream may be out of step; end it.
        if (!hasHeader(msg)) sock.destroy();
      } else if (!sock.destroyed) {
        const framed = Buffer.allocUnsafe(out.length + 2);
        framed.writeUInt16BE(out.length, 0);
        framed.set(out, 2);
        sock.write(framed);
      }
    };
    const pump = (): void => {
      while (pending.length >= 2 && inFlight < opts.tcp.maxInFlight) {
        const len = pending.readUInt16BE(0);
        if (pending.length < len + 2) break;
        const msg = new Uint8Array(pending.subarray(2, len + 2));
        pending = pending.subarray(len + 2);
        const out = safeHandle(msg, client, 'tcp');
        if (!(out instanceof Promise)) {
          sendTcp(msg, out);
          continue;
        }
        inFlight++;
        void out.then((o) => {
          inFlight--;
          sendTcp(msg, o);
          if (sock.isPaused() && inFlight < opts.tcp.maxInFlight) sock.resume();
          pump();
        });
      }
      if (inFlight >= opts.tcp.maxInFlight) sock.pause();
    };
    sock.on('data', (d: Buffer) => {
      pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
      if (pending.length > TCP_MAX_BUFFER + 65537) {
        sock.destroy();
        return;
      }
      pump();
    });
    sock.on('end', () => {
      if (inFlight === 0) sock.end();
    });
  });
  tcp.maxConnections = opts.tcp.maxConnections;
  tcp.on('drop', () => observer.limitHit('connections'));
  tcp.on('error', () => {});

  // --- UDP ------------------------------------------------------------------------------
  let udp: UdpSocket | null = null;
  const bindBoth = async (port: number): Promise<Endpoint> => {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host: opts.endpoint.host, port, backlog: 256 }, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    const a = tcp.address();
    if (a === null || typeof a === 'string') throw new Error('DNS listener has no address');
    const s = createSocket({ type: udpType(opts.endpoint.host), reuseAddr: false, ipv6Only: false });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind({ address: opts.endpoint.host, port: a.port, exclusive: true }, () => {
          s.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      s.close();
      await new Promise<void>((r) => tcp.close(() => r()));
      throw err;
    }
    udp = s;
    s.on('error', () => {});
    s.on('message', (msg, rinfo) => {
      const client = clientText(rinfo.address);
      // Local and cached answers go out in this same call: no promise, no extra turn. No send
      // callback: with one, each answer costs a send request and a callback (cpu profile under
      // bench/dns.ts, blocked names: doSend 62 % -> 48 % of busy time).
      const out = safeHandle(msg, client, 'udp');
      if (out instanceof Promise) void out.then((o) => o !== null && s.send(o, rinfo.port, rinfo.address));
      else if (out !== null) s.send(out, rinfo.port, rinfo.address);
    });
    return { host: a.address, port: a.port };
  };

  let bound: Endpoint | null = null;
  // Port 0: the TCP port the kernel picked may be taken for UDP; try a few times.
  for (let i = 0; i < (opts.endpoint.port === 0 ? 8 : 1) && bound === null; i++) {
    try {
      bound = await bindBoth(opts.endpoint.port);
    } catch (err) {
      if (opts.endpoint.port !== 0 || i === 7) {
        forwarder.close();
        throw err;
      }
    }
  }
  const address = bound!;

  let closing: Promise<void> | null = null;
  return {
    address: () => address,
    setHooks: (h) => {
      current = h;
    },
    cacheSize: () => ({ entries: cache.size, bytes: cache.byteSize }),
    close: () => {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => tcp.close(() => r()));
        for (const s of tcpSockets) s.destroy();
        await new Promise<void>((r) => (udp ? udp.close(() => r()) : r()));
        forwarder.close();
        await closed;
      })();
      return closing;
    },
  };
}

const FAILED: Decision = Object.freeze({
  action: 'block',
  category: null,
  list: null,
  rule: 'no-policy',
  reason: 'the decision failed; failing closed',
});

function assertNeverVerdict(v: never): never {
  throw new Error(`unknown DNS verdict ${JSON.stringify(v)}`);
}
