/**
 * What the listener answers: local answers (blocked names, bypass signals, REFUSED, FORMERR), and
 * upstream answers made fit to pass on. An upstream answer is read once (processUpstream): its OPT is
 * left out, `ech` is removed from HTTPS/SVCB records (./svcb.ts), and every name it leads to (CNAME
 * and DNAME targets, SVCB TargetNames, owner names) is collected, so the listener can decide each of
 * them (CNAME cloaking) on every use, from the cache too, under the policy of that moment.
 *
 * The stored form has id 0 and is re-stamped for each client (serveAnswer): the client's id, its
 * question bytes (letter case kept for 0x20 randomisation), RD/CD from its query, the records' TTLs
 * aged, an OPT when the client sent one, and TC with no records when the whole answer does not fit
 * the client's UDP size (RFC 1035 §4.2.1, RFC 6891 §7).
 */
import { answerFlags, CLASS_IN, encodeName, MessageWriter, parseResponse, RCODE, rdataName, soaMinimum, TYPE, type Query } from './codec.js';
import { stripEch, svcbTarget } from './svcb.js';

/** Our advertised EDNS UDP size (the DNS Flag Day 2020 figure, avoiding IP fragmentation). */
export const OUR_UDP_SIZE = 1232;

export interface Processed {
  /** The message as stored: id 0, upstream's flags and rcode, question, records, no OPT. */
  readonly body: Uint8Array;
  /** Offsets of every record's TTL field in `body`. */
  readonly ttlOffsets: readonly number[];
  /** Seconds this answer may be kept (the smallest TTL; RFC 2308 for negative answers; 0 = do not keep). */
  readonly ttl: number;
  readonly rcode: number;
  /** Names the answer leads to other than the question's, each to be decided. */
  readonly names: readonly string[];
  /** HTTPS/SVCB records whose `ech` was removed, or that were dropped for it. */
  readonly echRemoved: number;
  /** Offset just past the question in `body`. */
  readonly questionEnd: number;
  /** `body` past the question (the records), and the TTL offsets within it: what serveAnswer copies. */
  readonly tail: Uint8Array;
  readonly tailTtlOffsets: readonly number[];
}

/** The tail fields of a Processed, from its body. */
function withTail(body: Uint8Array, questionEnd: number, ttlOffsets: readonly number[]): { tail: Uint8Array; tailTtlOffsets: number[] } {
  return { tail: body.subarray(questionEnd), tailTtlOffsets: ttlOffsets.map((o) => o - questionEnd) };
}

export interface ProcessOptions {
  /** Largest TTL kept, in seconds. */
  readonly maxTtl: number;
  /** Remove `ech` from HTTPS/SVCB records (on unless an operator turns it off). */
  readonly stripEch: boolean;
}

/** Read an upstream answer once into its stored form. Throws DnsFormatError on bytes it cannot read. */
export function processUpstream(buf: Uint8Array, opts: ProcessOptions): Processed {
  const r = parseResponse(buf);
  const w = new MessageWriter(0, r.flags & 0xfbff & ~0x0200, buf.length + 64);
  w.question(r.qname, r.qtype, r.qclass);
  const questionEnd = w.length;
  const names: string[] = [];
  let ttl = Infinity;
  let negTtl = -1;
  let echRemoved = 0;
  const note = (n: string): void => {
    if (n !== '' && n !== r.qname && !names.includes(n)) names.push(n);
  };
  for (const rec of r.records) {
    if (rec.type === TYPE.OPT) continue;
    const section = (rec.section + 1) as 1 | 2 | 3;
    if (rec.section === 0) {
      note(rec.name);
      if (rec.type === TYPE.CNAME || rec.type === TYPE.DNAME) note(rdataName(buf, rec));
    }
    if (rec.type === TYPE.SOA && rec.section === 1) negTtl = Math.min(rec.ttl, soaMinimum(buf, rec));
    if ((rec.type === TYPE.HTTPS || rec.type === TYPE.SVCB) && rec.section !== 1) {
      const rdata = buf.subarray(rec.rdata, rec.rdata + rec.rdlength);
      const target = svcbTarget(rdata);
      if (target !== null && rec.section === 0) note(target);
      if (opts.stripEch) {
        const e = stripEch(rdata);
        if (e.kind === 'drop') {
          echRemoved++;
          continue;
        }
        if (e.kind === 'edited') {
          echRemoved++;
          w.record(section, rec.name, rec.type, rec.cls, rec.ttl, e.rdata);
          ttl = Math.min(ttl, rec.ttl);
          continue;
        }
      }
    }
    w.copyRecord(section, buf, rec);
    ttl = Math.min(ttl, rec.ttl);
  }
  const rcode = r.rcode;
  const answers = r.records.some((x) => x.section === 0);
  let keep: number;
  if (rcode === RCODE.NOERROR && answers) keep = ttl;
  else if (rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && !answers)) keep = negTtl >= 0 ? negTtl : 0;
  else keep = 0;
  keep = Math.max(0, Math.min(opts.maxTtl, Number.isFinite(keep) ? keep : 0));
  const body = w.finish();
  return { body, ttlOffsets: w.ttlOffsets, ttl: keep, rcode, names, echRemoved, questionEnd, ...withTail(body, questionEnd, w.ttlOffsets) };
}

/**
 * The stored answer, stamped for one client. `ageSeconds` is taken off every TTL (never below 0).
 * `limit` is the most the client accepts (UDP: its EDNS size or 512; TCP: 65535). `msg` is the
 * client's query: its question bytes (12..q.questionEnd) go into the answer as sent.
 * One allocation (a slice of Node's buffer pool), bytes copied and patched in place: no records are
 * decoded or built again for a cached answer.
 */
export function serveAnswer(p: Processed, q: Query, msg: Uint8Array, ageSeconds: number, limit: number): Buffer {
  const qEnd = q.questionEnd;
  const tail = p.tail;
  const size = qEnd + tail.length + (q.edns ? 11 : 0);
  if (size > limit) return truncated(q, msg, p.rcode);
  const out = Buffer.allocUnsafe(size);
  // AD is not passed on (answerFlags leaves it out): we edit records (ech), so we cannot vouch for them.
  const f = answerFlags(q, p.rcode);
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  out[2] = f >> 8;
  out[3] = f & 0xff;
  const body = p.body;
  for (let i = 4; i < 12; i++) out[i] = body[i]!;
  for (let i = 12; i < qEnd; i++) out[i] = msg[i]!;
  out.set(tail, qEnd);
  if (ageSeconds > 0) {
    for (const at of p.tailTtlOffsets) {
      const o = at + qEnd;
      const t = ((out[o]! << 24) >>> 0) + ((out[o + 1]! << 16) | (out[o + 2]! << 8) | out[o + 3]!);
      const aged = Math.max(0, t - ageSeconds);
      out[o] = aged >>> 24;
      out[o + 1] = (aged >>> 16) & 0xff;
      out[o + 2] = (aged >>> 8) & 0xff;
      out[o + 3] = aged & 0xff;
    }
  }
  if (q.edns) {
    writeOpt(out, size - 11);
    const ar = ((out[10]! << 8) | out[11]!) + 1;
    out[10] = ar >> 8;
    out[11] = ar & 0xff;
  }
  return out;
}

/** Our OPT record (RFC 6891 §6.1.2: root owner, our UDP size, no extended rcode, no options) at `at`. */
function writeOpt(out: Uint8Array, at: number): void {
  out[at] = 0;
  out[at + 1] = 0;
  out[at + 2] = TYPE.OPT;
  out[at + 3] = OUR_UDP_SIZE >> 8;
  out[at + 4] = OUR_UDP_SIZE & 0xff;
  for (let i = at + 5; i < at + 11; i++) out[i] = 0;
}

/**
 * The SOA a local negative answer (NXDOMAIN, NODATA) carries in its authority section, so that
 * resolvers and stubs cache it for `ttl` seconds (RFC 2308 §3, §5: the negative TTL is the smaller
 * of the SOA record's TTL and its MINIMUM; both are `ttl` here). Its owner is the question's name,
 * as if each answered name were its own zone; MNAME and RNAME are under `.invalid` (RFC 6761 §6.4),
 * names that never resolve.
 */
export interface LocalSoa {
  readonly ttl: number;
  readonly rdata: Uint8Array;
}

export const SOA_MNAME = 'safespot.invalid';
export const SOA_RNAME = 'hostmaster.safespot.invalid';

export function localSoa(ttl: number): LocalSoa {
  const m = encodeName(SOA_MNAME);
  const r = encodeName(SOA_RNAME);
  const rdata = new Uint8Array(m.length + r.length + 20);
  rdata.set(m, 0);
  rdata.set(r, m.length);
  const dv = new DataView(rdata.buffer);
  const at = m.length + r.length;
  dv.setUint32(at, 1); // SERIAL
  dv.setUint32(at + 4, 3600); // REFRESH
  dv.setUint32(at + 8, 600); // RETRY
  dv.setUint32(at + 12, 86400); // EXPIRE
  dv.setUint32(at + 16, ttl); // MINIMUM: the negative-caching TTL
  return { ttl, rdata };
}

/**
 * A locally made answer, written straight into one buffer: header, the client's question bytes,
 * at most one answer record (owner: a pointer to the question name), at most one authority SOA,
 * and our OPT when the client sent one. Local answers (a question of at most 259 bytes, one record)
 * always fit in 512 bytes.
 */
function localAnswer(q: Query, msg: Uint8Array, flags: number, answer: Uint8Array | null, answerTtl: number, soa: LocalSoa | null): Buffer {
  const qEnd = q.questionEnd;
  const size = qEnd + (answer ? 12 + answer.length : 0) + (soa ? 12 + soa.rdata.length : 0) + (q.edns ? 11 : 0);
  const out = Buffer.allocUnsafe(size);
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  out[2] = flags >> 8;
  out[3] = flags & 0xff;
  out[4] = 0;
  out[5] = 1;
  out[6] = 0;
  out[7] = answer ? 1 : 0;
  out[8] = 0;
  out[9] = soa ? 1 : 0;
  out[10] = 0;
  out[11] = q.edns ? 1 : 0;
  for (let i = 12; i < qEnd; i++) out[i] = msg[i]!;
  let at = qEnd;
  if (answer) at = writeRecord(out, at, q.qtype, answerTtl, answer);
  if (soa) at = writeRecord(out, at, TYPE.SOA, soa.ttl, soa.rdata);
  if (q.edns) writeOpt(out, at);
  return out;
}

/** One IN record owned by the question name (pointer 0xc00c) at `at`; the offset past it. */
function writeRecord(out: Uint8Array, at: number, type: number, ttl: number, rdata: Uint8Array): number {
  out[at] = 0xc0;
  out[at + 1] = 12;
  out[at + 2] = type >> 8;
  out[at + 3] = type & 0xff;
  out[at + 4] = 0;
  out[at + 5] = CLASS_IN;
  out[at + 6] = ttl >>> 24;
  out[at + 7] = (ttl >>> 16) & 0xff;
  out[at + 8] = (ttl >>> 8) & 0xff;
  out[at + 9] = ttl & 0xff;
  out[at + 10] = rdata.length >> 8;
  out[at + 11] = rdata.length & 0xff;
  out.set(rdata, at + 12);
  return at + 12 + rdata.length;
}

/** Header and question only, TC set: "ask again over TCP" (RFC 7766 §5). */
export function truncated(q: Query, msg: Uint8Array, rcode: number): Buffer {
  return localAnswer(q, msg, answerFlags(q, rcode) | 0x0200, null, 0, null);
}

/**
 * An answer with no records: NXDOMAIN, NODATA (NOERROR, empty), REFUSED, SERVFAIL, NOTIMP. With
 * `soa`, the authority section carries it (local NXDOMAIN and NODATA, RFC 2308).
 */
export function emptyAnswer(q: Query, msg: Uint8Array, rcode: number, aa = false, soa: LocalSoa | null = null): Buffer {
  return localAnswer(q, msg, answerFlags(q, rcode, aa), null, 0, soa);
}

/** The addresses a blocked name resolves to (A and AAAA); other types get NODATA. */
export interface BlockAddresses {
  /** 4 bytes. */
  readonly v4: Uint8Array;
  /** 16 bytes. */
  readonly v6: Uint8Array;
}

/** A blocked name, answered locally: A/AAAA with the block addresses, NODATA (with `soa`) for other types. */
export function blockedAnswer(q: Query, msg: Uint8Array, addrs: BlockAddresses, ttl: number, soa: LocalSoa | null): Buffer {
  const flags = answerFlags(q, RCODE.NOERROR, true);
  if (q.qclass === CLASS_IN && q.qtype === TYPE.A) return localAnswer(q, msg, flags, addrs.v4, ttl, null);
  if (q.qclass === CLASS_IN && q.qtype === TYPE.AAAA) return localAnswer(q, msg, flags, addrs.v6, ttl, null);
  return localAnswer(q, msg, flags, null, 0, soa);
}

/** FORMERR for bytes with a readable header: the id echoed, no question (we could not read one). */
export function formErr(buf: Uint8Array): Uint8Array {
  const out = new Uint8Array(12);
  out[0] = buf[0]!;
  out[1] = buf[1]!;
  out[2] = 0x80 | (buf[2]! & 0x79);
  out[3] = 0x80 | RCODE.FORMERR;
  return out;
}

/**
 * SafeSearch: the question's name answered with a CNAME to the provider's enforced front end, then
 * the front end's own records (from its processed upstream answer), as the providers document for
 * networks. `front` is the processed answer for (target, qtype).
 */
export function cnameTo(qname: string, target: string, front: Processed, ttl: number): Processed {
  const r = parseResponse(front.body);
  const w = new MessageWriter(0, (front.body[2]! << 8) | front.body[3]!, front.body.length + 320);
  w.question(qname, r.qtype, r.qclass);
  const questionEnd = w.length;
  w.record(1, qname, TYPE.CNAME, CLASS_IN, ttl, encodeName(target));
  for (const rec of r.records) w.copyRecord((rec.section + 1) as 1 | 2 | 3, front.body, rec);
  const body = w.finish();
  return { body, ttlOffsets: w.ttlOffsets, ttl: Math.min(front.ttl, ttl), rcode: front.rcode, names: front.names, echRemoved: front.echRemoved, questionEnd, ...withTail(body, questionEnd, w.ttlOffsets) };
}
