/**
 * A small authoritative-style DNS server for tests, on loopback UDP and TCP (one port): it answers
 * from a table of records and records every question it receives, so a test can prove what never
 * left the appliance. Written by hand from RFC 1035 (its own reading and writing, independent of
 * proxy/dns/codec.ts), with uncompressed names except where a record asks for a raw answer.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server } from 'node:net';

export interface TestRecord {
  readonly name: string;
  readonly type: number;
  readonly ttl?: number;
  /** rdata bytes as they go on the wire. */
  readonly rdata: readonly number[];
}

export interface SeenQuery {
  readonly name: string;
  readonly type: number;
  readonly transport: 'udp' | 'tcp';
}

export function wireName(name: string): number[] {
  const out: number[] = [];
  if (name !== '') for (const l of name.split('.')) out.push(l.length, ...Buffer.from(l, 'latin1'));
  out.push(0);
  return out;
}

const be16 = (v: number): number[] => [(v >> 8) & 0xff, v & 0xff];
const be32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

/** rdata helpers */
export const rd = {
  a: (ip: string): number[] => ip.split('.').map(Number),
  cname: (target: string): number[] => wireName(target),
  txt: (...strings: string[]): number[] => strings.flatMap((s) => [s.length, ...Buffer.from(s)]),
  /** SVCB/HTTPS: priority, target, then [key, value bytes] in the order given. */
  svcb: (priority: number, target: string, params: ReadonlyArray<readonly [number, readonly number[]]>): number[] => [
    ...be16(priority),
    ...wireName(target),
    ...params.flatMap(([k, v]) => [...be16(k), ...be16(v.length), ...v]),
  ],
};

function readQuestion(msg: Buffer): { id: number; name: string; type: number; end: number; rd: boolean } | null {
  if (msg.length < 17) return null;
  let pos = 12;
  const labels: string[] = [];
  while (pos < msg.length && msg[pos] !== 0) {
    const len = msg[pos]!;
    if (len > 63 || pos + 1 + len > msg.length) return null;
    labels.push(msg.subarray(pos + 1, pos + 1 + len).toString('latin1').toLowerCase());
    pos += len + 1;
  }
  if (pos + 5 > msg.length) return null;
  return { id: msg.readUInt16BE(0), name: labels.join('.'), type: msg.readUInt16BE(pos + 1), end: pos + 5, rd: (msg[2]! & 1) === 1 };
}

export interface TestDnsServer {
  readonly port: number;
  readonly seen: SeenQuery[];
  /** Questions seen for this name (any type). */
  asked(name: string): number;
  close(): Promise<void>;
}

/**
 * Start on 127.0.0.1 port 0 (or `at`: an address, IPv4 or IPv6, and port, for a network namespace).
 * `records` answers exact (name, type) questions; a CNAME at the name answers any type with the CNAME
 * first, then the target's records of that type; nothing known: NXDOMAIN.
 * Over UDP an answer past 512 bytes (or the client's EDNS size) is sent truncated (TC, no records).
 */
export async function startTestDns(records: readonly TestRecord[], at: { host?: string; port?: number } = {}): Promise<TestDnsServer> {
  const host = at.host ?? '127.0.0.1';
  const seen: SeenQuery[] = [];
  const answer = (msg: Buffer, transport: 'udp' | 'tcp'): Buffer | null => {
    const q = readQuestion(msg);
    if (q === null) return null;
    seen.push({ name: q.name, type: q.type, transport });
    const out: number[][] = [];
    let name = q.name;
    for (let hops = 0; hops < 8; hops++) {
      const cname = records.find((r) => r.name === name && r.type === 5);
      if (cname && q.type !== 5) {
        out.push([...wireName(name), ...be16(5), ...be16(1), ...be32(cname.ttl ?? 300), ...be16(cname.rdata.length), ...cname.rdata]);
        const t = cname.rdata;
        const labels: string[] = [];
        for (let p = 0; t[p] !== 0; p += t[p]! + 1) labels.push(Buffer.from(t.slice(p + 1, p + 1 + t[p]!)).toString('latin1'));
        name = labels.join('.');
        continue;
      }
      for (const r of records.filter((x) => x.name === name && x.type === q.type)) {
        out.push([...wireName(name), ...be16(r.type), ...be16(1), ...be32(r.ttl ?? 300), ...be16(r.rdata.length), ...r.rdata]);
      }
      break;
    }
    const known = records.some((r) => r.name === q.name);
    const rcode = known ? 0 : 3;
    const question = [...msg.subarray(12, q.end)];
    const body = Buffer.from([...be16(q.id), 0x84 | (q.rd ? 1 : 0), 0x80 | rcode, ...be16(1), ...be16(out.length), 0, 0, 0, 0, ...question, ...out.flat()]);
    // Our EDNS size is taken from the client's OPT when it has one; else 512.
    let limit = 512;
    const optAt = q.end;
    if (msg.length >= optAt + 11 && msg[optAt] === 0 && msg.readUInt16BE(optAt + 1) === 41) limit = Math.max(512, msg.readUInt16BE(optAt + 3));
    if (transport === 'udp' && body.length > limit) {
      return Buffer.from([...be16(q.id), 0x86 | (q.rd ? 1 : 0), 0x80, ...be16(1), 0, 0, 0, 0, 0, 0, ...question]);
    }
    return body;
  };
  const udp: UdpSocket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  udp.on('message', (msg, rinfo) => {
    const a = answer(msg, 'udp');
    if (a) udp.send(a, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(at.port ?? 0, host, () => r()));
  const port = udp.address().port;
  const tcp: Server = createServer((sock) => {
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const a = answer(buf.subarray(2, 2 + len), 'tcp');
        buf = buf.subarray(2 + len);
        if (a) sock.write(Buffer.concat([Buffer.from(be16(a.length)), a]));
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(port, host, () => r()));
  return {
    port,
    seen,
    asked: (name) => seen.filter((s) => s.name === name).length,
    close: async () => {
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}
