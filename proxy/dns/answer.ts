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
  return { body: w.finish(), ttlOffsets: w.ttlOffsets, ttl: keep, rcode, names, echRemoved, questionEnd };
}

/**
 * The stored answer, stamped for one client. `ageSeconds` is taken off every TTL (never below 0).
 * `limit` is the most the client accepts (UDP: its EDNS size or 512; TCP: 65535).
 */
export function serveAnswer(p: Processed, q: Query, rawQuestion: Uint8Array, ageSeconds: number, limit: number): Uint8Array {
  const extra = q.edns ? 11 : 0;
  const size = rawQuestion.length + 12 + (p.body.length - p.questionEnd) + extra;
  if (size > limit) return truncated(q, rawQuestion, p.rcode);
  const out = new Uint8Array(size);
  out.set(p.body.subarray(0, 12), 0);
  out.set(rawQuestion, 12);
  out.set(p.body.subarray(p.questionEnd), 12 + rawQuestion.length);
  // AD is not passed on (answerFlags leaves it out): we edit records (ech), so we cannot vouch for them.
  const f = answerFlags(q, p.rcode);
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  out[2] = f >> 8;
  out[3] = f & 0xff;
  const shift = 12 + rawQuestion.length - p.questionEnd;
  if (ageSeconds > 0) {
    for (const at of p.ttlOffsets) {
      const o = at + shift;
      const t = ((out[o]! << 24) >>> 0) + ((out[o + 1]! << 16) | (out[o + 2]! << 8) | out[o + 3]!);
      const aged = Math.max(0, t - ageSeconds);
      out[o] = aged >>> 24;
      out[o + 1] = (aged >>> 16) & 0xff;
      out[o + 2] = (aged >>> 8) & 0xff;
      out[o + 3] = aged & 0xff;
    }
  }
  if (q.edns) {
    const at = size - 11;
    out.set([0, 0, TYPE.OPT, OUR_UDP_SIZE >> 8, OUR_UDP_SIZE & 0xff, 0, 0, 0, 0, 0, 0], at);
    const ar = ((out[10]! << 8) | out[11]!) + 1;
    out[10] = ar >> 8;
    out[11] = ar & 0xff;
  }
  return out;
}

/** Header and question only, TC set: "ask again over TCP" (RFC 7766 §5). */
export function truncated(q: Query, rawQuestion: Uint8Array, rcode: number): Uint8Array {
  const w = new MessageWriter(q.id, answerFlags(q, rcode) | 0x0200, 64 + rawQuestion.length);
  w.questionBytes(rawQuestion, q.qname);
  if (q.edns) w.opt(OUR_UDP_SIZE);
  return w.finish();
}

/** An answer with no records: NXDOMAIN, NODATA (NOERROR, empty), REFUSED, SERVFAIL, NOTIMP. */
export function emptyAnswer(q: Query, rawQuestion: Uint8Array, rcode: number, aa = false): Uint8Array {
  const w = new MessageWriter(q.id, answerFlags(q, rcode, aa), 64 + rawQuestion.length);
  w.questionBytes(rawQuestion, q.qname);
  if (q.edns) w.opt(OUR_UDP_SIZE);
  return w.finish();
}

/** The addresses a blocked name resolves to (A and AAAA); other types get NODATA. */
export interface BlockAddresses {
  /** 4 bytes. */
  readonly v4: Uint8Array;
  /** 16 bytes. */
  readonly v6: Uint8Array;
}

/** A blocked name, answered locally: A/AAAA with the block addresses, NODATA for other types. */
export function blockedAnswer(q: Query, rawQuestion: Uint8Array, addrs: BlockAddresses, ttl: number): Uint8Array {
  const w = new MessageWriter(q.id, answerFlags(q, RCODE.NOERROR, true), 96 + rawQuestion.length);
  w.questionBytes(rawQuestion, q.qname);
  if (q.qclass === CLASS_IN && q.qtype === TYPE.A) w.record(1, q.qname, TYPE.A, CLASS_IN, ttl, addrs.v4);
  else if (q.qclass === CLASS_IN && q.qtype === TYPE.AAAA) w.record(1, q.qname, TYPE.AAAA, CLASS_IN, ttl, addrs.v6);
  if (q.edns) w.opt(OUR_UDP_SIZE);
  return w.finish();
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
  return { body: w.finish(), ttlOffsets: w.ttlOffsets, ttl: Math.min(front.ttl, ttl), rcode: front.rcode, names: front.names, echRemoved: front.echRemoved, questionEnd };
}
