/**
 * The DNS wire codec (proxy/dns/codec.ts) and the answer shaping (proxy/dns/answer.ts), byte by
 * byte: messages are written out by hand here (not with the codec's own writer), truncated at every
 * offset, given pointer loops, forward pointers, reserved label types and oversized names, and
 * fuzzed. Every failure must be a DnsFormatError, never another exception.
 */
import t, { type Test } from 'tap';
import { blockedAnswer, emptyAnswer, localSoa, processUpstream, serveAnswer, truncated } from '../../proxy/dns/answer.js';
import { DnsFormatError, encodeName, parseQuery, parseResponse, readName, RCODE, TYPE } from '../../proxy/dns/codec.js';

/** Labels of a name, by hand: the test's own encoder, independent of the codec's. */
function labels(name: string): number[] {
  const out: number[] = [];
  for (const l of name.split('.')) out.push(l.length, ...Buffer.from(l, 'latin1'));
  out.push(0);
  return out;
}
const u16 = (v: number): number[] => [v >> 8, v & 0xff];
const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): number[] {
  return [...u16(id), ...u16(flags), ...u16(qd), ...u16(an), ...u16(ns), ...u16(ar)];
}

/** A query for `name`/`type`, with an OPT of `udp` bytes when given. */
function query(name: string, type: number, udp?: number, id = 0x1234): Uint8Array {
  const opt = udp === undefined ? [] : [0, ...u16(TYPE.OPT), ...u16(udp), ...u32(0), ...u16(0)];
  return Uint8Array.from([...header(id, 0x0100, 1, 0, 0, udp === undefined ? 0 : 1), ...labels(name), ...u16(type), ...u16(1), ...opt]);
}

function expectFormat(t: Test, fn: () => unknown, msg: string): void {
  try {
    fn();
    t.fail(`${msg}: no error`);
  } catch (err) {
    t.ok(err instanceof DnsFormatError, `${msg}: ${(err as Error).message}`);
  }
}

t.test('readName: plain, upper case, compression, and every bad form', async (t) => {
  const msg = Uint8Array.from([...header(0, 0, 0, 0, 0, 0), ...labels('WWW.Example.test'), 3, ...Buffer.from('sub'), 0xc0, 12 + 4]);
  t.same(readName(msg, 12), { name: 'www.example.test', next: 12 + 18 }, 'lower-cased, dot-separated');
  t.same(readName(msg, 30), { name: 'sub.example.test', next: 36 }, 'a pointer to a suffix; next is past the pointer');
  // A label holding a dot, and bytes outside letters/digits/-/_: escaped, so they cannot read as two labels.
  const dot = Uint8Array.from([...header(0, 0, 0, 0, 0, 0), 3, 0x61, 0x2e, 0x62, 4, ...Buffer.from('test'), 0]);
  t.equal(readName(dot, 12).name, 'a\\046b.test', 'a dot inside a label is \\046');
  t.same(encodeName('a\\046b.test'), dot.subarray(12), 'and encodes back to the same bytes');
  t.equal(readName(Uint8Array.from([...header(0, 0, 0, 0, 0, 0), 0]), 12).name, '', 'the root');

  const h = header(0, 0, 0, 0, 0, 0);
  expectFormat(t, () => readName(Uint8Array.from([...h, 0xc0, 12]), 12), 'a pointer to itself');
  expectFormat(t, () => readName(Uint8Array.from([...h, 1, 0x61, 0xc0, 12]), 12), 'a pointer into its own name (a loop)');
  expectFormat(t, () => readName(Uint8Array.from([...h, 0xc0, 14, 0]), 12), 'a forward pointer');
  expectFormat(t, () => readName(Uint8Array.from([...h, 0xc0, 2]), 12), 'a pointer into the header');
  // Two names pointing at each other: the second points back to the first, whose pointer goes forward.
  expectFormat(t, () => readName(Uint8Array.from([...h, 1, 0x61, 0xc0, 16, 1, 0x62, 0xc0, 12]), 16), 'a two-pointer cycle');
  expectFormat(t, () => readName(Uint8Array.from([...h, 0x40, 0]), 12), 'label type 01 (reserved)');
  expectFormat(t, () => readName(Uint8Array.from([...h, 0x80, 0]), 12), 'label type 10 (reserved)');
  expectFormat(t, () => readName(Uint8Array.from([...h, 5, 0x61]), 12), 'a label past the end');
  expectFormat(t, () => readName(Uint8Array.from([...h, 0xc0]), 12), 'half a pointer');
  const long = Array.from({ length: 5 }, () => [63, ...new Array(63).fill(0x61)]).flat();
  expectFormat(t, () => readName(Uint8Array.from([...h, ...long, 0]), 12), 'a name past 255 octets');
  const many = Array.from({ length: 128 }, () => [1, 0x61]).flat();
  expectFormat(t, () => readName(Uint8Array.from([...h, ...many, 0]), 12), 'more than 127 labels');
  // A chain of backward pointers is fine (each goes further back) and ends.
  const chain = Uint8Array.from([...h, 1, 0x61, 0, 1, 0x62, 0xc0, 12, 1, 0x63, 0xc0, 15]);
  t.equal(readName(chain, 19).name, 'c.b.a', 'a chain of backward pointers');
});

t.test('parseQuery: a query with EDNS, and the query truncated at every offset', async (t) => {
  const q = query('Blocked.test', TYPE.AAAA, 1232);
  const p = parseQuery(q);
  t.equal(p.id, 0x1234);
  t.equal(p.qname, 'blocked.test');
  t.equal(p.qtype, TYPE.AAAA);
  t.equal(p.qclass, 1);
  t.equal(p.questionEnd, 12 + 14 + 4);
  t.same(p.edns, { udpSize: 1232, version: 0, dnssecOk: false });
  t.equal(parseQuery(query('a.test', TYPE.A, 100)).edns?.udpSize, 512, 'an EDNS size below 512 counts as 512');
  t.equal(parseQuery(query('a.test', TYPE.A)).edns, null, 'no OPT: no EDNS');
  for (let n = 0; n < q.length; n++) expectFormat(t, () => parseQuery(q.subarray(0, n)), `truncated to ${n} bytes`);
  expectFormat(t, () => parseQuery(Uint8Array.from([...q, 0])), 'a trailing byte');
  const twoQ = Uint8Array.from(q);
  twoQ[5] = 2;
  expectFormat(t, () => parseQuery(twoQ), 'two questions');
  const noQ = Uint8Array.from(q);
  noQ[5] = 0;
  expectFormat(t, () => parseQuery(noQ), 'no question');
  const resp = Uint8Array.from(q);
  resp[2]! |= 0x80;
  expectFormat(t, () => parseQuery(resp), 'a response sent as a query');
  const an = Uint8Array.from(q);
  an[7] = 1;
  expectFormat(t, () => parseQuery(an), 'an answer count in a query');
  const twoOpt = Uint8Array.from([...q, 0, ...u16(TYPE.OPT), ...u16(1232), ...u32(0), ...u16(0)]);
  twoOpt[11] = 2;
  expectFormat(t, () => parseQuery(twoOpt), 'two OPT records');
});

/**
 * An upstream answer by hand: question www.allowed.test HTTPS; answer a CNAME (compressed) to
 * cdn.allowed.test, then an HTTPS record at cdn.allowed.test with alpn, ipv4hint, ech and ipv6hint,
 * then an OPT in the additional section.
 */
function httpsAnswer(params: number[], ttl = 300): Uint8Array {
  const q = [...labels('www.allowed.test'), ...u16(TYPE.HTTPS), ...u16(1)];
  const cnameRdata = [3, ...Buffer.from('cdn'), 0xc0, 12 + 4]; // cdn + pointer to "allowed.test"
  const cname = [0xc0, 12, ...u16(TYPE.CNAME), ...u16(1), ...u32(ttl), ...u16(cnameRdata.length), ...cnameRdata];
  const cdnAt = 12 + q.length + 12; // where cnameRdata starts
  const https = [0xc0, cdnAt, ...u16(TYPE.HTTPS), ...u16(1), ...u32(ttl + 100), ...u16(params.length), ...params];
  const opt = [0, ...u16(TYPE.OPT), ...u16(4096), ...u32(0), ...u16(0)];
  return Uint8Array.from([...header(0xbeef, 0x8180, 1, 2, 0, 1), ...q, ...cname, ...https, ...opt]);
}

const ALPN = [0, 1, 0, 6, 2, ...Buffer.from('h2'), 2, ...Buffer.from('h3')];
const V4HINT = [0, 4, 0, 4, 192, 0, 2, 1];
const ECH = [0, 5, 0, 5, 1, 2, 3, 4, 5];
const V6HINT = [0, 6, 0, 16, 0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1];
const svc = (...ps: number[][]): number[] => [0, 1, 0, ...ps.flat()]; // priority 1, target "." (the owner)

t.test('processUpstream: CNAME names collected, ech removed byte for byte, OPT left out, TTL the smallest', async (t) => {
  const buf = httpsAnswer(svc(ALPN, V4HINT, ECH, V6HINT));
  const p = processUpstream(buf, { maxTtl: 3600, stripEch: true });
  t.equal(p.rcode, RCODE.NOERROR);
  t.same(p.names, ['cdn.allowed.test'], 'the CNAME target is collected for deciding');
  t.equal(p.echRemoved, 1);
  t.equal(p.ttl, 300);
  const r = parseResponse(p.body);
  t.equal(r.records.length, 2, 'CNAME and HTTPS; the OPT is gone');
  const https = r.records[1]!;
  t.equal(https.type, TYPE.HTTPS);
  t.equal(https.name, 'cdn.allowed.test');
  t.same([...p.body.subarray(https.rdata, https.rdata + https.rdlength)], svc(ALPN, V4HINT, V6HINT), 'exactly the params minus ech');

  const mandatory = [0, 0, 0, 4, 0, 1, 0, 5];
  const dropped = processUpstream(httpsAnswer(svc(mandatory, ALPN, ECH)), { maxTtl: 3600, stripEch: true });
  t.equal(parseResponse(dropped.body).records.length, 1, 'a record whose mandatory names ech is dropped');
  t.equal(dropped.echRemoved, 1);
  const kept = processUpstream(httpsAnswer(svc([0, 0, 0, 2, 0, 1], ALPN, V4HINT)), { maxTtl: 3600, stripEch: true });
  t.equal(kept.echRemoved, 0, 'no ech: nothing to count');
  const kr = parseResponse(kept.body).records[1]!;
  t.same([...kept.body.subarray(kr.rdata, kr.rdata + kr.rdlength)], svc([0, 0, 0, 2, 0, 1], ALPN, V4HINT), 'kept as it came');
  const off = processUpstream(httpsAnswer(svc(ALPN, ECH)), { maxTtl: 3600, stripEch: false });
  const or = parseResponse(off.body).records[1]!;
  t.same([...off.body.subarray(or.rdata, or.rdata + or.rdlength)], svc(ALPN, ECH), 'stripEch off: ech kept');
  t.equal(processUpstream(buf, { maxTtl: 60, stripEch: true }).ttl, 60, 'maxTtl bounds the cache time');

  const bad = processUpstream(httpsAnswer(svc(ALPN, [0, 5, 0, 9, 1])), { maxTtl: 3600, stripEch: true });
  t.equal(parseResponse(bad.body).records.length, 1, 'SvcParams running past the rdata: the record is dropped');
  const unordered = processUpstream(httpsAnswer(svc(V4HINT, ALPN, ECH)), { maxTtl: 3600, stripEch: true });
  t.equal(parseResponse(unordered.body).records.length, 1, 'keys out of order (a hidden second ech?): dropped');

  for (let n = 0; n < buf.length; n++) expectFormat(t, () => processUpstream(buf.subarray(0, n), { maxTtl: 60, stripEch: true }), `answer truncated to ${n}`);
});

t.test('serveAnswer: the client id, its question bytes, aged TTLs, an OPT, and TC past the limit', async (t) => {
  const p = processUpstream(httpsAnswer(svc(ALPN, ECH)), { maxTtl: 3600, stripEch: true });
  const clientQuery = Uint8Array.from([...header(0x4242, 0x0100, 1, 0, 0, 1), ...labels('WwW.aLLowed.TEST'), ...u16(TYPE.HTTPS), ...u16(1), 0, ...u16(TYPE.OPT), ...u16(1232), ...u32(0), ...u16(0)]);
  const q = parseQuery(clientQuery);
  const raw = clientQuery.subarray(12, q.questionEnd);
  const out = serveAnswer(p, q, clientQuery, 100, 1232);
  t.equal((out[0]! << 8) | out[1]!, 0x4242, 'the client id');
  t.same([...out.subarray(12, 12 + raw.length)], [...raw], 'the question exactly as the client wrote it (0x20 case kept)');
  const r = parseResponse(out);
  t.equal(r.flags & 0x8000, 0x8000, 'QR');
  t.equal(r.flags & 0x0100, 0x0100, 'RD echoed');
  t.equal(r.flags & 0x0080, 0x0080, 'RA');
  t.equal(r.flags & 0x0020, 0, 'AD never passed on');
  t.same(r.records.map((x) => x.ttl), [200, 300, 0], 'TTLs aged by 100 s (the OPT last, TTL field 0)');
  t.equal(r.records[2]!.type, TYPE.OPT, 'an OPT because the client sent one');
  const small = serveAnswer(p, q, clientQuery, 0, out.length - 1);
  const tr = parseResponse(small);
  t.equal(tr.flags & 0x0200, 0x0200, 'TC when the answer does not fit');
  t.same(tr.records.map((x) => x.type), [TYPE.OPT], 'and no records but the OPT');
  t.same(truncated(q, clientQuery, 0).length, small.length);
  const plainQuery = query('www.allowed.test', TYPE.HTTPS);
  const pq = parseQuery(plainQuery);
  const plain = parseResponse(serveAnswer(p, pq, plainQuery, 0, 512));
  t.notOk(plain.records.some((x) => x.type === TYPE.OPT), 'no OPT for a client without EDNS (RFC 6891 §7)');
});

t.test('local negative answers carry an SOA (RFC 2308), byte by byte; positive and refusing ones do not', async (t) => {
  const soaRdata = [...labels('safespot.invalid'), ...labels('hostmaster.safespot.invalid'), ...u32(1), ...u32(3600), ...u32(600), ...u32(86400), ...u32(60)];
  const soaRecord = [0xc0, 12, ...u16(TYPE.SOA), ...u16(1), ...u32(60), ...u16(soaRdata.length), ...soaRdata];
  const opt = [0, ...u16(TYPE.OPT), ...u16(1232), ...u32(0), ...u16(0)];
  const soa = localSoa(60);
  t.same([...soa.rdata], soaRdata, 'SOA rdata: MNAME, RNAME under .invalid, serial, refresh, retry, expire, MINIMUM = the negative TTL');

  // NXDOMAIN (a bypass signal, or dns.blocked: nxdomain): AA, RD echoed, RA, one authority record.
  const nxq = query('Use-Application-DNS.net', TYPE.A, 4096, 0xbeef);
  const nx = emptyAnswer(parseQuery(nxq), nxq, RCODE.NXDOMAIN, true, soa);
  t.same([...nx], [...header(0xbeef, 0x8583, 1, 0, 1, 1), ...labels('Use-Application-DNS.net'), ...u16(TYPE.A), ...u16(1), ...soaRecord, ...opt], 'NXDOMAIN + SOA + OPT');
  const nr = parseResponse(nx);
  t.same(nr.records.map((r) => [r.section, r.type, r.name]), [[1, TYPE.SOA, 'use-application-dns.net'], [2, TYPE.OPT, '']], 'the SOA is in the authority section, owned by the question name');

  // NODATA for a blocked name's other types (HTTPS here), no EDNS: no OPT.
  const hq = query('blk.test', TYPE.HTTPS, undefined, 7);
  const nodata = blockedAnswer(parseQuery(hq), hq, { v4: new Uint8Array(4), v6: new Uint8Array(16) }, 60, soa);
  t.same([...nodata], [...header(7, 0x8580, 1, 0, 1, 0), ...labels('blk.test'), ...u16(TYPE.HTTPS), ...u16(1), ...soaRecord], 'NODATA + SOA');

  // A blocked A name: the block address, no SOA (a positive answer).
  const aq = query('blk.test', TYPE.A, undefined, 8);
  const a = blockedAnswer(parseQuery(aq), aq, { v4: Uint8Array.of(192, 0, 2, 80), v6: new Uint8Array(16) }, 60, soa);
  t.same([...a], [...header(8, 0x8580, 1, 1, 0, 0), ...labels('blk.test'), ...u16(TYPE.A), ...u16(1), 0xc0, 12, ...u16(TYPE.A), ...u16(1), ...u32(60), ...u16(4), 192, 0, 2, 80], 'A with the block address, no SOA');

  // REFUSED carries none.
  const refused = emptyAnswer(parseQuery(aq), aq, RCODE.REFUSED);
  t.same([...refused], [...header(8, 0x8185, 1, 0, 0, 0), ...labels('blk.test'), ...u16(TYPE.A), ...u16(1)], 'REFUSED: question only');
  t.equal(localSoa(5).rdata.at(-1), 5, 'the negative TTL follows the option');
});

t.test('readName: the fast path and the escaping path read the same names', async (t) => {
  const names = ['a.test', 'WWW.Example.TEST', 'x_y-z.*.test', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`];
  for (const n of names) {
    const buf = Uint8Array.from([...header(0, 0, 1, 0, 0, 0), ...labels(n)]);
    t.equal(readName(buf, 12).name, n.toLowerCase(), n.slice(0, 30));
  }
  // 253 text octets are the most a name can carry (255 on the wire); one more label byte fails.
  const over = Uint8Array.from([...header(0, 0, 1, 0, 0, 0), ...labels(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`)]);
  expectFormat(t, () => readName(over, 12), '256 octets (fast path)');
  const overEsc = Uint8Array.from([...header(0, 0, 1, 0, 0, 0), ...labels(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}!`)]);
  expectFormat(t, () => readName(overEsc, 12), '256 octets (escaping path)');
  const mixed = Uint8Array.from([...header(0, 0, 1, 0, 0, 0), 3, 0x61, 0x2e, 0x62, 4, 0x74, 0x65, 0x73, 0x74, 0]);
  t.equal(readName(mixed, 12).name, 'a\\046b.test', 'a dot inside a label falls back to \\DDD');
});

/** xorshift32: a seeded generator, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

t.test('fuzz: random bytes and mutations of valid messages throw DnsFormatError or parse', async (t) => {
  const next = rng(0x5afe5);
  const seeds = [query('www.allowed.test', TYPE.A, 1232), httpsAnswer(svc(ALPN, V4HINT, ECH, V6HINT)), httpsAnswer(svc([0, 0, 0, 2, 0, 5], ECH))];
  let other = 0;
  let parsed = 0;
  const tryAll = (b: Uint8Array): void => {
    for (const f of [() => parseQuery(b), () => processUpstream(b, { maxTtl: 60, stripEch: true })]) {
      try {
        const r = f();
        parsed++;
        if ('body' in r) parseResponse(r.body); // what we store must itself be readable
      } catch (err) {
        if (!(err instanceof DnsFormatError)) {
          other++;
          if (other < 5) t.fail(`not a DnsFormatError: ${String(err)} for ${Buffer.from(b).toString('hex')}`);
        }
      }
    }
  };
  for (let i = 0; i < 20000; i++) {
    const len = next() % 300;
    const b = new Uint8Array(len);
    for (let j = 0; j < len; j++) b[j] = next() & 0xff;
    // Half of them with a plausible header, so the fuzzer gets past the counts.
    if (len >= 12 && i % 2 === 0) b.set([0, 1, i % 4 === 0 ? 0x81 : 0x01, 0, 0, 1, 0, next() % 3, 0, 0, 0, next() % 2], 0);
    tryAll(b);
  }
  for (let i = 0; i < 30000; i++) {
    const b = Uint8Array.from(seeds[i % seeds.length]!);
    const flips = 1 + (next() % 4);
    for (let k = 0; k < flips; k++) b[next() % b.length] = next() & 0xff;
    tryAll(b);
  }
  t.equal(other, 0, 'no other exception');
  t.ok(parsed > 0, `some mutations still parse (${parsed})`);
});
