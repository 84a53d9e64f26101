/**
 * A tiny authoritative DNS server for tests (RFC 1035 §4.1, UDP only), on 127.0.0.1 port 0: it
 * answers A and AAAA questions from a fixed table (TTL 1 s) and NXDOMAIN for names it does not know,
 * and counts the questions it got. Point the proxy's resolver at it (`upstream.dnsServers`) to make
 * any name resolve anywhere — loopback, link-local, private — without touching the system resolver.
 */
import { createSocket } from 'node:dgram';
import { parseIp } from '../../policy/ip.js';

export interface DnsRecords {
  /** name (lower case, no trailing dot) -> addresses; IPv4 become A records, IPv6 AAAA records. */
  readonly [name: string]: readonly string[];
}

export interface TestDns {
  /** `127.0.0.1:PORT`, for upstream.dnsServers. */
  readonly server: string;
  readonly port: number;
  /** Questions received, as `name TYPE`. */
  readonly questions: string[];
  close(): Promise<void>;
}

const A = 1;
const AAAA = 28;

function readName(msg: Buffer, start: number): { name: string; end: number } | null {
  const labels: string[] = [];
  let pos = start;
  for (let guard = 0; guard < 128; guard++) {
    const len = msg[pos];
    if (len === undefined || len >= 0xc0) return null; // no compression in questions we accept
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: pos + 1 };
    labels.push(msg.subarray(pos + 1, pos + 1 + len).toString('latin1'));
    pos += 1 + len;
  }
  return null;
}

function answer(query: Buffer, records: DnsRecords, questions: string[]): Buffer | null {
  if (query.length < 12) return null;
  const q = readName(query, 12);
  if (!q || q.end + 4 > query.length) return null;
  const qtype = query.readUInt16BE(q.end);
  questions.push(`${q.name} ${qtype === A ? 'A' : qtype === AAAA ? 'AAAA' : qtype}`);
  const question = query.subarray(12, q.end + 4);
  const known = Object.hasOwn(records, q.name);
  const rdata: Buffer[] = [];
  for (const addr of known ? records[q.name]! : []) {
    const bytes = parseIp(addr);
    if (!bytes) continue;
    const v4 = !addr.includes(':');
    if (v4 && qtype === A) rdata.push(Buffer.from(bytes.subarray(12)));
    if (!v4 && qtype === AAAA) rdata.push(Buffer.from(bytes));
  }
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // QR AA RD, rcode
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(rdata.length, 6);
  const answers = rdata.map((d) => {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    rr.writeUInt16BE(d.length === 4 ? A : AAAA, 2);
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(1, 6); // TTL 1 s
    rr.writeUInt16BE(d.length, 10);
    return Buffer.concat([rr, d]);
  });
  return Buffer.concat([header, question, ...answers]);
}

export async function startTestDns(records: DnsRecords): Promise<TestDns> {
  const sock = createSocket('udp4');
  const questions: string[] = [];
  sock.on('message', (msg, rinfo) => {
    const reply = answer(msg, records, questions);
    if (reply) sock.send(reply, rinfo.port, rinfo.address);
  });
  sock.on('error', () => {});
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  return {
    server: `127.0.0.1:${port}`,
    port,
    questions,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}
