/**
 * The self-test's DNS probe (appliance/serve/selftest.ts): its query carries the self-test EDNS
 * option and parses as one (proxy/dns/codec.ts), any truncation of it is a format error and nothing
 * else, the option is found among others and never read past a malformed tail; and the probe's
 * verdict on an answer: only the listener's own block (the block address, or the local SOA) passes.
 * The answers are made by the listener's own answer functions (proxy/dns/answer.ts); the probe
 * against a running listener is test/integration/selftest-listeners.test.ts.
 */
import t from 'tap';
import { blockedAnswer, emptyAnswer, localSoa } from '../../proxy/dns/answer.js';
import { DnsFormatError, parseQuery, RCODE, SELFTEST_EDNS_OPTION } from '../../proxy/dns/codec.js';
import { dnsBlockVerdict, selftestQuery } from '../../appliance/serve/selftest.js';

/** The OPT record's rdata replaced by `rdata` (the query's OPT is its last 15 bytes: 11 + 4 of option). */
function withOptRdata(q: Buffer, rdata: number[]): Buffer {
  const head = q.subarray(0, q.length - 4);
  const out = Buffer.concat([head, Buffer.from(rdata)]);
  out.writeUInt16BE(rdata.length, head.length - 2);
  return out;
}

/** What `fn` throws: 'format' for a DnsFormatError, else the error's text, or 'nothing'. */
function thrown(fn: () => unknown): string {
  try {
    fn();
    return 'nothing';
  } catch (err) {
    return err instanceof DnsFormatError ? 'format' : String(err);
  }
}

t.test('the probe query: one A question, an OPT with the self-test option', async (t) => {
  const q = selftestQuery(0x1234, 'Canary.Blocked.Test');
  const p = parseQuery(q);
  t.equal(p.id, 0x1234);
  t.equal(p.qname, 'canary.blocked.test');
  t.equal(p.qtype, 1);
  t.equal(p.edns?.selftest, true, 'marked');
  t.equal(p.edns?.udpSize, 1232);
  for (let n = 0; n < q.length; n++) {
    t.equal(thrown(() => parseQuery(q.subarray(0, n))), 'format', `${n} of ${q.length} bytes: a format error`);
  }
  t.equal(thrown(() => selftestQuery(1, `${'a'.repeat(64)}.test`)), 'format', 'a label too long is refused when building');
});

t.test('the option among others; other options, an empty OPT and a malformed tail are not the mark', async (t) => {
  const q = selftestQuery(7, 'x.test');
  const hi = SELFTEST_EDNS_OPTION >> 8;
  const lo = SELFTEST_EDNS_OPTION & 0xff;
  const cases: Array<[string, number[], boolean]> = [
    ['cookie then the mark', [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, hi, lo, 0, 0], true],
    ['the mark with data', [hi, lo, 0, 2, 9, 9], true],
    ['only a cookie', [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8], false],
    ['the next code (65002)', [hi, lo + 1, 0, 0], false],
    ['no options', [], false],
    ['a cookie whose length runs past the rdata, the mark inside it', [0, 10, 0, 40, hi, lo, 0, 0], false],
    ['three bytes of an option', [hi, lo, 0], false],
  ];
  for (const [what, rdata, marked] of cases) {
    const p = parseQuery(withOptRdata(q, rdata));
    t.equal(p.edns?.selftest === true, marked, what);
  }
});

t.test('the probe verdict: only the listener\'s own block passes', async (t) => {
  const name = 'canary.blocked.test';
  const msg = selftestQuery(42, name);
  const q = parseQuery(msg);
  const soa = localSoa(60);
  const v4 = Uint8Array.from([0, 0, 0, 0]);
  const v6 = new Uint8Array(16);
  t.equal(dnsBlockVerdict(blockedAnswer(q, msg, { v4, v6 }, 60, soa), 42, name, '0.0.0.0'), null, 'A 0.0.0.0, authoritative');
  t.equal(dnsBlockVerdict(blockedAnswer(q, msg, { v4: Uint8Array.from([192, 0, 2, 80]), v6 }, 60, soa), 42, name, '192.0.2.80'), null, 'the configured block address');
  t.equal(dnsBlockVerdict(emptyAnswer(q, msg, RCODE.NXDOMAIN, true, soa), 42, name, '0.0.0.0'), null, 'dns.blocked: nxdomain, with the local SOA');
  t.match(dnsBlockVerdict(blockedAnswer(q, msg, { v4: Uint8Array.from([192, 0, 2, 80]), v6 }, 60, soa), 42, name, '0.0.0.0'), /instead of a block/, 'an authoritative A that is not the block address');
  t.match(dnsBlockVerdict(emptyAnswer(q, msg, RCODE.NXDOMAIN, true, null), 42, name, '0.0.0.0'), /instead of a block/, 'an NXDOMAIN without our SOA (an authoritative upstream\'s)');
  t.match(dnsBlockVerdict(emptyAnswer(q, msg, RCODE.NXDOMAIN, false, soa), 42, name, '0.0.0.0'), /forwarded/, 'not authoritative: forwarded');
  t.match(dnsBlockVerdict(emptyAnswer(q, msg, RCODE.REFUSED, false), 42, name, '0.0.0.0'), /refused .*loopback/, 'REFUSED: says why');
  t.match(dnsBlockVerdict(blockedAnswer(q, msg, { v4, v6 }, 60, soa), 43, name, '0.0.0.0'), /another question/, 'another id');
  t.match(dnsBlockVerdict(blockedAnswer(q, msg, { v4, v6 }, 60, soa), 42, 'other.test', '0.0.0.0'), /another question/, 'another name');
  const good = blockedAnswer(q, msg, { v4, v6 }, 60, soa);
  for (let n = 0; n < good.length; n++) t.match(dnsBlockVerdict(good.subarray(0, n), 42, name, '0.0.0.0'), /does not parse/, `${n} bytes of the answer`);
  t.match(dnsBlockVerdict(msg, 42, name, '0.0.0.0'), /does not parse/, 'the query itself (not a response)');
});
