/**
 * Forwarding to the upstream DNS servers (`upstream.dnsServers`, or the system's from
 * /etc/resolv.conf). The listener never forwards a guest's bytes: it asks its own question (the
 * name it decided, the type and class, RD, our EDNS size) under a fresh random id, so what leaves is
 * exactly what was decided, and nothing the guest added (TSIG, EDNS options, other records) goes out.
 *
 * An answer is taken only from the server the question went to (address and port), with our id and
 * our question (name case-insensitively, type, class): a guess at the id alone does not poison the
 * cache. A truncated UDP answer is asked again over TCP. Each try has a timeout; on a timeout the
 * next server is tried; identical questions in flight share one upstream query; the number in
 * flight is bounded.
 */
import { randomFillSync } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP, connect } from 'node:net';
import { encodeName, MessageWriter, readName, u16 } from './codec.js';
import { OUR_UDP_SIZE } from './answer.js';

export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

export class DnsUpstreamError extends Error {
  constructor(readonly reason: 'timeout' | 'overload' | 'no_servers' | 'other', message: string) {
    super(message);
  }
}

/** `addr`, `addr:port`, `[v6]:port` or a bare IPv6 address; throws on anything else. */
export function parseServer(s: string): DnsServer {
  const t = s.trim();
  if (isIP(t)) return { host: t, port: 53 };
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(t);
  const v4 = /^([^:]+):(\d+)$/.exec(t);
  const m = v6 ?? v4;
  if (m && isIP(m[1]!) && Number(m[2]) > 0 && Number(m[2]) < 65536) return { host: m[1]!, port: Number(m[2]) };
  throw new Error(`not a DNS server address: ${s}`);
}

/** The system's DNS servers: `nameserver` lines of /etc/resolv.conf, else Node's dns.getServers(). */
export function systemServers(resolvConf = '/etc/resolv.conf'): DnsServer[] {
  const out: DnsServer[] = [];
  try {
    for (const line of readFileSync(resolvConf, 'utf8').split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (m && isIP(m[1]!.replace(/%.*$/, ''))) out.push({ host: m[1]!.replace(/%.*$/, ''), port: 53 });
    }
  } catch {
    // no resolv.conf: Node's own view below
  }
  if (out.length > 0) return out;
  for (const s of getServers()) {
    try {
      out.push(parseServer(s));
    } catch {
      // skip what we cannot read
    }
  }
  return out;
}

export interface ForwarderOptions {
  /** Milliseconds one try waits for an answer. */
  readonly tryTimeoutMs: number;
  /** Tries in all (over the servers in order, round and round). */
  readonly tries: number;
  /** Upstream questions in flight at most; beyond, a query fails at once (the listener answers SERVFAIL). */
  readonly maxPending: number;
}

interface Pending {
  readonly server: DnsServer;
  readonly name: string;
  readonly type: number;
  readonly cls: number;
  readonly done: (buf: Uint8Array | null) => void;
}

const ids = new Uint16Array(256);
let idAt = ids.length;
function randomId(): number {
  if (idAt >= ids.length) {
    randomFillSync(ids);
    idAt = 0;
  }
  return ids[idAt++]!;
}

function sameHost(a: string, b: string): boolean {
  const norm = (x: string): string => (x.startsWith('::ffff:') && x.includes('.') ? x.slice(7) : x).toLowerCase();
  return norm(a) === norm(b);
}

export class DnsForwarder {
  private readonly pending = new Map<number, Pending>();
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  private udp4: UdpSocket | null = null;
  private udp6: UdpSocket | null = null;
  private closed = false;

  constructor(
    readonly servers: readonly DnsServer[],
    private readonly opts: ForwarderOptions,
  ) {}

  /** The upstream's answer (raw bytes, id and question checked) to (name, type, class). */
  query(name: string, type: number, cls: number): Promise<Uint8Array> {
    const key = `${type}/${cls}/${name}`;
    const same = this.inflight.get(key);
    if (same) return same;
    const p = this.ask(name, type, cls).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async ask(name: string, type: number, cls: number): Promise<Uint8Array> {
    if (this.servers.length === 0) throw new DnsUpstreamError('no_servers', 'no upstream DNS server');
    if (this.pending.size >= this.opts.maxPending) throw new DnsUpstreamError('overload', 'too many upstream queries in flight');
    const qname = encodeName(name);
    for (let i = 0; i < this.opts.tries; i++) {
      if (this.closed) break;
      const server = this.servers[i % this.servers.length]!;
      const got = await this.tryUdp(server, name, qname, type, cls);
      if (got === null) continue;
      if (got[2]! & 0x02) {
        const full = await this.tryTcp(server, name, qname, type, cls);
        if (full !== null) return full;
        continue;
      }
      return got;
    }
    throw new DnsUpstreamError('timeout', 'no upstream DNS server answered');
  }

  private socket(host: string): UdpSocket {
    const v6 = isIP(host) === 6;
    const existing = v6 ? this.udp6 : this.udp4;
    if (existing) return existing;
    const s = createSocket(v6 ? 'udp6' : 'udp4');
    s.on('error', () => {
      // An ICMP unreachable or a send error: the try times out and the next server is asked.
    });
    s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
    s.unref();
    if (v6) this.udp6 = s;
    else this.udp4 = s;
    return s;
  }

  private message(id: number, qname: Uint8Array, type: number, cls: number): Uint8Array {
    const w = new MessageWriter(id, 0x0100, 64 + qname.length);
    w.bytes(qname);
    w.bytes(Uint8Array.of(type >> 8, type & 0xff, cls >> 8, cls & 0xff));
    w.opt(OUR_UDP_SIZE);
    const out = w.finish();
    out[5] = 1; // QDCOUNT (the question went in as bytes)
    return out;
  }

  private onMessage(msg: Buffer, address: string, port: number): void {
    if (msg.length < 12) return;
    const id = (msg[0]! << 8) | msg[1]!;
    const p = this.pending.get(id);
    if (p === undefined || p.server.port !== port || !sameHost(p.server.host, address)) return;
    if (!matchesQuestion(msg, p)) return;
    this.pending.delete(id);
    p.done(new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
  }

  private tryUdp(server: DnsServer, name: string, qname: Uint8Array, type: number, cls: number): Promise<Uint8Array | null> {
    return new Promise((resolve) => {
      let id = randomId();
      for (let n = 0; this.pending.has(id) && n < 16; n++) id = randomId();
      if (this.pending.has(id)) return resolve(null);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, this.opts.tryTimeoutMs);
      this.pending.set(id, {
        server,
        name,
        type,
        cls,
        done: (buf) => {
          clearTimeout(timer);
          resolve(buf);
        },
      });
      this.socket(server.host).send(this.message(id, qname, type, cls), server.port, server.host, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(null);
      });
    });
  }

  private tryTcp(server: DnsServer, name: string, qname: Uint8Array, type: number, cls: number): Promise<Uint8Array | null> {
    return new Promise((resolve) => {
      const id = randomId();
      const q = this.message(id, qname, type, cls);
      const sock = connect({ host: server.host, port: server.port });
      let got: Buffer = Buffer.alloc(0);
      let settled = false;
      const finish = (v: Uint8Array | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => finish(null), this.opts.tryTimeoutMs);
      sock.on('error', () => finish(null));
      sock.on('close', () => finish(null));
      sock.on('connect', () => {
        const framed = Buffer.alloc(q.length + 2);
        framed.writeUInt16BE(q.length, 0);
        framed.set(q, 2);
        sock.write(framed);
      });
      sock.on('data', (d: Buffer) => {
        got = got.length === 0 ? d : Buffer.concat([got, d]);
        if (got.length < 2) return;
        const len = got.readUInt16BE(0);
        if (got.length < len + 2) return;
        const msg = got.subarray(2, len + 2);
        if (msg.length >= 12 && msg.readUInt16BE(0) === id && matchesQuestion(msg, { name, type, cls })) finish(new Uint8Array(msg));
        else finish(null);
      });
    });
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) p.done(null);
    this.pending.clear();
    this.udp4?.close();
    this.udp6?.close();
    this.udp4 = null;
    this.udp6 = null;
  }
}

/** Does this response carry our question (QR set, one question, same name, type and class)? */
function matchesQuestion(msg: Uint8Array, p: { name: string; type: number; cls: number }): boolean {
  try {
    if ((msg[2]! & 0x80) === 0 || u16(msg, 4) !== 1) return false;
    const n = readName(msg, 12);
    return n.name === p.name && u16(msg, n.next) === p.type && u16(msg, n.next + 2) === p.cls;
  } catch {
    return false;
  }
}
