/**
 * The DNS wire format (RFC 1035 §4, EDNS RFC 6891), as much of it as the listener needs: the header,
 * the one question, names with compression, and a walk over resource records that keeps every
 * record's bytes as they came and reads only the rdata the listener acts on (CNAME, DNAME and the
 * name-carrying RFC 1035 types, HTTPS/SVCB via ./svcb.ts). Why our own codec and not an npm one:
 * docs/dns.md ("The codec").
 *
 * Every reader is bounded by the buffer and throws DnsFormatError, never anything else, on bytes it
 * cannot read: a pointer that does not point strictly backwards (so no loops), more than 127 labels,
 * a name past 255 octets, a reserved label type, a count that runs past the end. The listener turns
 * a DnsFormatError into FORMERR or a silent drop (./listener.ts).
 */

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, DNAME: 39, OPT: 41, SVCB: 64, HTTPS: 65, ANY: 255 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const CLASS_IN = 1;
const HEADER = 12;
const MAX_NAME = 255;
const MAX_LABELS = 127;

export class DnsFormatError extends Error {}

function fail(why: string): never {
  throw new DnsFormatError(why);
}

/** A name as text: lower case, dot-separated, no trailing dot ('' for the root). */
export interface NameRead {
  readonly name: string;
  /** Offset just past the name where it was read (past the pointer, if it ended in one). */
  readonly next: number;
}

/**
 * Bytes a label may carry as themselves in the text form: letters, digits, `-`, `_`, `*`. Anything
 * else (including a `.` inside one label) is written `\DDD`, as dig does, so that one label with a
 * dot can never read as two labels of another name; policy/ then fails to canonicalise it and the
 * name is blocked, not forwarded undecided.
 */
function plainByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x5f || b === 0x2a;
}

/** Where readName's fast path gathers a name's text bytes (a name's text is at most 253 plain bytes). */
const nameScratch = Buffer.allocUnsafe(MAX_NAME);

/**
 * Read a (possibly compressed) name at `off`. Pointers must point before the label that holds them.
 * The common name (letters, digits, `-`, `_`, `*` only) is gathered as bytes and made one string;
 * building it a character at a time was a string per byte on every query (bench/dns.ts profile).
 * Any other byte falls back to the escaping reader, which applies the same bounds.
 */
export function readName(buf: Uint8Array, off: number): NameRead {
  let pos = off;
  let next = -1;
  let labels = 0;
  let n = 0;
  let floor = off;
  for (;;) {
    if (pos >= buf.length) fail('name runs past the end');
    const len = buf[pos]!;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      return { name: n === 0 ? '' : nameScratch.toString('latin1', 0, n), next };
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) fail('pointer runs past the end');
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (next < 0) next = pos + 2;
      if (target < HEADER || target >= floor) fail('compression pointer does not point backwards');
      floor = target;
      pos = target;
      continue;
    }
    if (kind !== 0) fail('reserved label type');
    if (pos + 1 + len > buf.length) fail('label runs past the end');
    if (++labels > MAX_LABELS) fail('too many labels');
    // Text length = octets - 2 (no leading length byte, no root): the 255-octet bound, checked alike.
    if (n + (n > 0 ? 1 : 0) + len + 2 > MAX_NAME) fail('name longer than 255 octets');
    if (n > 0) nameScratch[n++] = 0x2e;
    for (let i = pos + 1; i <= pos + len; i++) {
      let b = buf[i]!;
      if (b >= 0x41 && b <= 0x5a) b |= 0x20;
      if (!plainByte(b)) return readNameEscaped(buf, off);
      nameScratch[n++] = b;
    }
    pos += len + 1;
  }
}

/** readName for names with bytes written `\DDD`, a character at a time. */
function readNameEscaped(buf: Uint8Array, off: number): NameRead {
  let pos = off;
  let next = -1;
  let labels = 0;
  let octets = 1;
  let text = '';
  // A pointer must point strictly before the smallest offset seen so far: each jump goes back, so the walk ends.
  let floor = off;
  for (;;) {
    if (pos >= buf.length) fail('name runs past the end');
    const len = buf[pos]!;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      return { name: text, next };
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) fail('pointer runs past the end');
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (next < 0) next = pos + 2;
      if (target < HEADER || target >= floor) fail('compression pointer does not point backwards');
      floor = target;
      pos = target;
      continue;
    }
    if (kind !== 0) fail('reserved label type');
    if (pos + 1 + len > buf.length) fail('label runs past the end');
    if (++labels > MAX_LABELS) fail('too many labels');
    octets += len + 1;
    if (octets > MAX_NAME) fail('name longer than 255 octets');
    if (text.length > 0) text += '.';
    for (let i = pos + 1; i <= pos + len; i++) {
      let b = buf[i]!;
      if (b >= 0x41 && b <= 0x5a) b |= 0x20;
      if (plainByte(b)) text += String.fromCharCode(b);
      else text += `\\${b.toString().padStart(3, '0')}`;
    }
    pos += len + 1;
  }
}

/** Skip a name without building its text (bounds and pointer rules as readName). */
export function skipName(buf: Uint8Array, off: number): number {
  let pos = off;
  for (let labels = 0; labels <= MAX_LABELS + 1; labels++) {
    if (pos >= buf.length) fail('name runs past the end');
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) fail('pointer runs past the end');
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target < HEADER || target >= off) fail('compression pointer does not point backwards');
      return pos + 2;
    }
    if ((len & 0xc0) !== 0) fail('reserved label type');
    pos += len + 1;
  }
  return fail('too many labels');
}

/** Encode a text name (as readName writes it: `\DDD` escapes allowed) as uncompressed labels. */
export function encodeName(name: string): Uint8Array {
  if (name === '') return Uint8Array.of(0);
  const out: number[] = [];
  for (const label of name.split('.')) {
    const bytes: number[] = [];
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i);
      if (c === 0x5c && /^\d{3}$/.test(label.slice(i + 1, i + 4))) {
        bytes.push(Number(label.slice(i + 1, i + 4)) & 0xff);
        i += 3;
      } else bytes.push(c & 0xff);
    }
    if (bytes.length === 0 || bytes.length > 63) throw new DnsFormatError('label of bad length');
    out.push(bytes.length, ...bytes);
  }
  out.push(0);
  if (out.length > MAX_NAME) throw new DnsFormatError('name longer than 255 octets');
  return Uint8Array.from(out);
}

export interface Edns {
  /** Requestor's UDP payload size (values below 512 count as 512, RFC 6891 §6.2.5). */
  readonly udpSize: number;
  readonly version: number;
  /** DNSSEC OK bit. */
  readonly dnssecOk: boolean;
  /**
   * The query carries the SELFTEST_EDNS_OPTION option: the appliance's own self-test probe. Only
   * believed from a loopback client (the listener checks); never forwarded (our upstream query is ours).
   */
  readonly selftest?: true;
}

/**
 * The EDNS option code a self-test probe puts in its OPT record: 65001 is the first code of the range
 * RFC 6891 §9 keeps for local and experimental use, so no resolver gives it a meaning.
 */
export const SELFTEST_EDNS_OPTION = 65001;

/** Whether OPT rdata [pos, end) holds option `code` (a run of code, length, data; a malformed tail is not read). */
function hasOption(buf: Uint8Array, pos: number, end: number, code: number): boolean {
  while (pos + 4 <= end) {
    const len = (buf[pos + 2]! << 8) | buf[pos + 3]!;
    if (pos + 4 + len > end) return false;
    if (((buf[pos]! << 8) | buf[pos + 1]!) === code) return true;
    pos += 4 + len;
  }
  return false;
}

/** A parsed query: header fields, the one question, and EDNS when present. */
export interface Query {
  readonly id: number;
  /** Header flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE). */
  readonly flags: number;
  readonly opcode: number;
  readonly qname: string;
  readonly qtype: number;
  readonly qclass: number;
  /** Offset just past the question: bytes 12..questionEnd are the question as the client sent it. */
  readonly questionEnd: number;
  readonly edns: Edns | null;
}

export function u16(buf: Uint8Array, off: number): number {
  if (off + 2 > buf.length) fail('short read');
  return (buf[off]! << 8) | buf[off + 1]!;
}

export function u32(buf: Uint8Array, off: number): number {
  if (off + 4 > buf.length) fail('short read');
  return ((buf[off]! << 24) >>> 0) + ((buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!);
}

/** Can a FORMERR answer be built for these bytes (enough of a header to echo the id)? */
export function hasHeader(buf: Uint8Array): boolean {
  return buf.length >= HEADER && (buf[2]! & 0x80) === 0;
}

/**
 * Parse a query. Exactly one question, no answer or authority records; the additional section may
 * hold one OPT record (anything else there, such as TSIG, is read past and not forwarded: the
 * listener builds its own upstream query). A response (QR set) is a format error here.
 */
export function parseQuery(buf: Uint8Array): Query {
  if (buf.length < HEADER) fail('shorter than a header');
  const id = u16(buf, 0);
  const flags = u16(buf, 2);
  if (flags & 0x8000) fail('a response, not a query');
  const qd = u16(buf, 4);
  const an = u16(buf, 6);
  const ns = u16(buf, 8);
  const ar = u16(buf, 10);
  const opcode = (flags >> 11) & 0xf;
  if (qd !== 1) fail('not exactly one question');
  if (an !== 0 || ns !== 0) fail('a query with answer or authority records');
  const q = readName(buf, HEADER);
  const qtype = u16(buf, q.next);
  const qclass = u16(buf, q.next + 2);
  const questionEnd = q.next + 4;
  let pos = questionEnd;
  let edns: Edns | null = null;
  for (let i = 0; i < ar; i++) {
    const nameStart = pos;
    pos = skipName(buf, pos);
    const type = u16(buf, pos);
    const cls = u16(buf, pos + 2);
    const ttl = u32(buf, pos + 4);
    const rdlen = u16(buf, pos + 8);
    pos += 10;
    if (pos + rdlen > buf.length) fail('rdata runs past the end');
    if (type === TYPE.OPT) {
      // RFC 6891 §6.1.1: one OPT, owner the root.
      if (edns !== null || buf[nameStart] !== 0) fail('bad OPT record');
      edns = { udpSize: Math.max(512, cls), version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0 };
      if (rdlen >= 4 && hasOption(buf, pos, pos + rdlen, SELFTEST_EDNS_OPTION)) edns = { ...edns, selftest: true };
    }
    pos += rdlen;
  }
  if (pos !== buf.length) fail('bytes after the last record');
  return { id, flags, opcode, qname: q.name, qtype, qclass, questionEnd, edns };
}

/** One resource record as found in a message: where its parts are, and its owner name. */
export interface RecordView {
  readonly section: 0 | 1 | 2;
  readonly name: string;
  readonly type: number;
  readonly cls: number;
  readonly ttl: number;
  /** Offset of the rdata and its length, in the message buffer. */
  readonly rdata: number;
  readonly rdlength: number;
}

/** A parsed response: header, question, and every record (rdata left in place). */
export interface ResponseView {
  readonly id: number;
  readonly flags: number;
  readonly rcode: number;
  readonly qname: string;
  readonly qtype: number;
  readonly qclass: number;
  readonly records: readonly RecordView[];
}

/** Parse a response with one question; records are listed, not decoded. */
export function parseResponse(buf: Uint8Array): ResponseView {
  if (buf.length < HEADER) fail('shorter than a header');
  const id = u16(buf, 0);
  const flags = u16(buf, 2);
  if ((flags & 0x8000) === 0) fail('not a response');
  if (u16(buf, 4) !== 1) fail('not exactly one question');
  const counts = [u16(buf, 6), u16(buf, 8), u16(buf, 10)] as const;
  const q = readName(buf, HEADER);
  const qtype = u16(buf, q.next);
  const qclass = u16(buf, q.next + 2);
  let pos = q.next + 4;
  const records: RecordView[] = [];
  for (let section = 0 as 0 | 1 | 2; section < 3; section = (section + 1) as 0 | 1 | 2) {
    for (let i = 0; i < counts[section]; i++) {
      const n = readName(buf, pos);
      pos = n.next;
      const type = u16(buf, pos);
      const cls = u16(buf, pos + 2);
      const ttl = u32(buf, pos + 4);
      const rdlength = u16(buf, pos + 8);
      pos += 10;
      if (pos + rdlength > buf.length) fail('rdata runs past the end');
      records.push({ section, name: n.name, type, cls, ttl, rdata: pos, rdlength });
      pos += rdlength;
    }
    if (section === 2) break;
  }
  if (pos !== buf.length) fail('bytes after the last record');
  return { id, flags, rcode: flags & 0xf, qname: q.name, qtype, qclass, records };
}

/**
 * The layout of an rdata whose names must be decompressed when the record is written elsewhere
 * (RFC 3597 §4: compression inside rdata is allowed for the RFC 1035 types only; SRV's target must
 * not be compressed, RFC 2782, but decompressing an uncompressed name changes nothing): bytes before
 * the first name, how many names, bytes after.
 */
const NAME_RDATA: ReadonlyMap<number, { readonly lead: number; readonly names: number }> = new Map([
  [TYPE.NS, { lead: 0, names: 1 }],
  [TYPE.CNAME, { lead: 0, names: 1 }],
  [TYPE.PTR, { lead: 0, names: 1 }],
  [TYPE.DNAME, { lead: 0, names: 1 }],
  [TYPE.MX, { lead: 2, names: 1 }],
  [TYPE.SRV, { lead: 6, names: 1 }],
  [TYPE.SOA, { lead: 0, names: 2 }],
]);

/** The one name of a CNAME / DNAME / NS / PTR rdata. */
export function rdataName(buf: Uint8Array, r: RecordView): string {
  const n = readName(buf, r.rdata);
  if (n.next > r.rdata + r.rdlength) fail('name runs past its rdata');
  return n.name;
}

/** SOA MINIMUM (the negative-caching TTL, RFC 2308 §5), read from an SOA rdata. */
export function soaMinimum(buf: Uint8Array, r: RecordView): number {
  const end = r.rdata + r.rdlength;
  let pos = skipName(buf, r.rdata);
  pos = skipName(buf, pos);
  if (pos + 20 !== end) fail('bad SOA rdata');
  return u32(buf, pos + 16);
}

/**
 * Writes a message: header, question, records. Names written whole are remembered, so a later
 * occurrence of the same whole name becomes a pointer (most answers repeat the question name).
 */
export class MessageWriter {
  private buf: Uint8Array;
  private len = HEADER;
  private readonly names = new Map<string, number>();
  private readonly counts = [0, 0, 0, 0];
  /** Offsets of the TTL field of each record written (for TTL ageing in the cache). */
  readonly ttlOffsets: number[] = [];

  constructor(id: number, flags: number, capacity = 512) {
    this.buf = new Uint8Array(Math.max(capacity, 64));
    this.buf[0] = id >> 8;
    this.buf[1] = id & 0xff;
    this.buf[2] = flags >> 8;
    this.buf[3] = flags & 0xff;
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private put16(v: number): void {
    this.room(2);
    this.buf[this.len++] = (v >> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
  }

  private put32(v: number): void {
    this.put16((v >>> 16) & 0xffff);
    this.put16(v & 0xffff);
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** A name as text (lower case as read); a pointer when the same whole name was written before. */
  name(name: string): void {
    const at = this.names.get(name);
    if (at !== undefined) {
      this.put16(0xc000 | at);
      return;
    }
    if (this.len < 0x3fff && name !== '') this.names.set(name, this.len);
    this.bytes(encodeName(name));
  }

  /** The question as the client sent it (its bytes, so the letter case of 0x20 randomisation stays). */
  questionBytes(raw: Uint8Array, name: string): void {
    if (this.len < 0x3fff && name !== '') this.names.set(name, this.len);
    this.bytes(raw);
    this.counts[0]!++;
  }

  question(name: string, type: number, cls: number): void {
    this.name(name);
    this.put16(type);
    this.put16(cls);
    this.counts[0]!++;
  }

  /** A record with rdata given as bytes (already free of compression pointers). */
  record(section: 1 | 2 | 3, name: string, type: number, cls: number, ttl: number, rdata: Uint8Array): void {
    this.name(name);
    this.put16(type);
    this.put16(cls);
    this.ttlOffsets.push(this.len);
    this.put32(ttl);
    this.put16(rdata.length);
    this.bytes(rdata);
    this.counts[section]!++;
  }

  /** A record copied from `src`, its rdata names decompressed for the known name-carrying types. */
  copyRecord(section: 1 | 2 | 3, src: Uint8Array, r: RecordView, ttl = r.ttl): void {
    const layout = NAME_RDATA.get(r.type);
    if (layout === undefined) {
      this.record(section, r.name, r.type, r.cls, ttl, src.subarray(r.rdata, r.rdata + r.rdlength));
      return;
    }
    this.name(r.name);
    this.put16(r.type);
    this.put16(r.cls);
    this.ttlOffsets.push(this.len);
    this.put32(ttl);
    const lenAt = this.len;
    this.put16(0);
    const end = r.rdata + r.rdlength;
    if (r.rdlength < layout.lead) fail('rdata too short');
    this.bytes(src.subarray(r.rdata, r.rdata + layout.lead));
    let pos = r.rdata + layout.lead;
    for (let i = 0; i < layout.names; i++) {
      const n = readName(src, pos);
      if (n.next > end) fail('name runs past its rdata');
      this.bytes(encodeName(n.name));
      pos = n.next;
    }
    this.bytes(src.subarray(pos, end));
    const rdlen = this.len - lenAt - 2;
    this.buf[lenAt] = rdlen >> 8;
    this.buf[lenAt + 1] = rdlen & 0xff;
    this.counts[section]!++;
  }

  /** An OPT record (RFC 6891 §6.1.2) advertising `udpSize`, no options. */
  opt(udpSize: number): void {
    this.room(11);
    this.buf[this.len++] = 0;
    this.put16(TYPE.OPT);
    this.put16(udpSize);
    this.put32(0);
    this.put16(0);
    this.counts[3]!++;
  }

  get length(): number {
    return this.len;
  }

  finish(): Uint8Array {
    for (let i = 0; i < 4; i++) {
      this.buf[4 + i * 2] = this.counts[i]! >> 8;
      this.buf[5 + i * 2] = this.counts[i]! & 0xff;
    }
    return this.buf.slice(0, this.len);
  }
}

/** Header flags of an answer to `q`: QR, the query's opcode and RD and CD, RA, and `rcode`. */
export function answerFlags(q: Pick<Query, 'flags'>, rcode: number, aa = false): number {
  return 0x8000 | (q.flags & 0x7900) | (aa ? 0x0400 : 0) | 0x0080 | (q.flags & 0x0010) | (rcode & 0xf);
}
