/**
 * The ClientHello reader (proxy/client-hello.ts) on synthetic hellos, table-driven: what it
 * extracts, what it refuses, and that every strict prefix of a valid hello is need-more. Hellos of
 * real clients are checked in test/integration/proxy-transparent-tls.test.ts (captured on a socket).
 */
import t from 'tap';
import { parseClientHello, type HelloParse } from '../../proxy/client-hello.js';
import { clientHello, helloHandshake, records, type HelloSpec } from '../helpers/client-hello-builder.js';

const parsed = (r: HelloParse) => (r.kind === 'parsed' ? r.hello : null);

t.test('valid hellos: what is extracted', async (t) => {
  const cases: { name: string; spec: HelloSpec; sni: string | null; alpn?: string[]; ech?: boolean; versions?: number[] }[] = [
    { name: 'plain SNI', spec: { sni: 'allowed.test' }, sni: 'allowed.test' },
    { name: 'upper case SNI is lowered', spec: { sni: 'WWW.Example.TEST' }, sni: 'www.example.test' },
    { name: 'no SNI', spec: { sni: null }, sni: null },
    { name: 'ALPN list', spec: { alpn: ['h2', 'http/1.1'] }, sni: 'example.test', alpn: ['h2', 'http/1.1'] },
    { name: 'ECH extension', spec: { sni: 'public.test', ech: true }, sni: 'public.test', ech: true },
    { name: 'supported_versions', spec: { supportedVersions: [0x0304] }, sni: 'example.test', versions: [0x0304] },
    { name: 'no supported_versions', spec: { supportedVersions: [] }, sni: 'example.test', versions: [] },
    { name: 'no extensions at all (TLS 1.0 style)', spec: { noExtensions: true, legacyVersion: 0x0301 }, sni: null },
    { name: 'underscore in a name', spec: { sni: 'a_b.example.test' }, sni: 'a_b.example.test' },
    { name: 'unknown extensions are skipped', spec: { extra: [[0x1234, Buffer.from([1, 2, 3])], [0xfafa, Buffer.alloc(0)]] }, sni: 'example.test' },
  ];
  for (const c of cases) {
    const bytes = clientHello(c.spec);
    const r = parseClientHello(bytes);
    t.equal(r.kind, 'parsed', c.name);
    const h = parsed(r);
    if (!h) continue;
    t.equal(h.sni, c.sni, `${c.name}: sni`);
    t.same(h.alpn, c.alpn ?? [], `${c.name}: alpn`);
    t.equal(h.ech, c.ech ?? false, `${c.name}: ech`);
    if (c.versions) t.same(h.supportedVersions, c.versions, `${c.name}: versions`);
    t.equal(r.kind === 'parsed' && r.consumed, bytes.length, `${c.name}: consumed`);
  }
});

t.test('every strict prefix of a valid hello is need-more', async (t) => {
  for (const spec of [{}, { sni: null }, { alpn: ['h2'], ech: true }]) {
    const bytes = clientHello(spec);
    let wrong = 0;
    for (let n = 0; n < bytes.length; n++) if (parseClientHello(bytes.subarray(0, n)).kind !== 'need-more') wrong++;
    t.equal(wrong, 0, `${bytes.length} prefixes`);
  }
});

t.test('a hello fragmented over several records, and bytes after it', async (t) => {
  const hs = helloHandshake({ sni: 'frag.test' });
  for (const size of [1, 4, 5, 17, 64, hs.length - 1]) {
    const r = parseClientHello(records(hs, size));
    t.equal(parsed(r)?.sni, 'frag.test', `fragments of ${size}`);
  }
  const bytes = clientHello({ sni: 'early.test' });
  const r = parseClientHello(Buffer.concat([bytes, Buffer.from([0x17, 3, 3, 0, 1, 0])]));
  t.equal(r.kind === 'parsed' && r.consumed, bytes.length, 'early data after the hello is not consumed');
});

t.test('refusals: not TLS, malformed, and which is which', async (t) => {
  const good = clientHello({ sni: 'x.test' });
  const hs = helloHandshake({ sni: 'x.test' });
  const withByte = (i: number, v: number) => {
    const b = Buffer.from(good);
    b[i] = v;
    return b;
  };
  const sniExt = (name: Buffer) => {
    const entry = Buffer.concat([Buffer.from([0, name.length >> 8, name.length & 0xff]), name]);
    return Buffer.concat([Buffer.from([entry.length >> 8, entry.length & 0xff]), entry]);
  };
  const cases: { name: string; bytes: Buffer; notTls: boolean }[] = [
    { name: 'HTTP request', bytes: Buffer.from('GET / HTTP/1.1\r\n'), notTls: true },
    { name: 'SSH banner', bytes: Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), notTls: true },
    { name: 'a single NUL byte', bytes: Buffer.from([0]), notTls: true },
    { name: 'SSLv2-style hello', bytes: Buffer.from('802b0103010012000000100100800700c00300800600400200', 'hex'), notTls: false },
    { name: 'TLS alert record first', bytes: Buffer.from([21, 3, 3, 0, 2, 2, 40]), notTls: false },
    { name: 'record major version 2', bytes: withByte(1, 2), notTls: false },
    { name: 'zero-length record', bytes: Buffer.from([22, 3, 1, 0, 0]), notTls: false },
    { name: 'record longer than 2^14', bytes: Buffer.from([22, 3, 1, 0x40, 0x01]), notTls: false },
    { name: 'ServerHello instead of ClientHello', bytes: withByte(5, 2), notTls: false },
    { name: 'legacy_version major 2', bytes: withByte(9, 2), notTls: false },
    { name: 'session id longer than 32', bytes: withByte(43, 33), notTls: false },
    { name: 'handshake cut short inside its own record', bytes: records(Buffer.concat([hs.subarray(0, 1), Buffer.from([0, 0, 10]), hs.subarray(4, 14)])), notTls: false },
    { name: 'interrupted by an application-data record', bytes: Buffer.concat([records(hs.subarray(0, 10)), Buffer.from([23, 3, 3, 0, 1, 0])]), notTls: false },
    { name: 'duplicate extension', bytes: clientHello({ extra: [[0x1234, Buffer.alloc(0)], [0x1234, Buffer.alloc(0)]] }), notTls: false },
    { name: 'SNI with a space', bytes: clientHello({ sni: 'bad name.test' }), notTls: false },
    { name: 'SNI with a trailing dot', bytes: clientHello({ sni: 'dot.test.' }), notTls: false },
    { name: 'SNI with a leading dot', bytes: clientHello({ sni: '.dot.test' }), notTls: false },
    { name: 'SNI with an empty label', bytes: clientHello({ sni: 'dot..test' }), notTls: false },
    { name: 'SNI that is one dot', bytes: clientHello({ sni: '.' }), notTls: false },
    { name: 'SNI with a DEL byte', bytes: clientHello({ sni: 'del\u007f.test' }), notTls: false },
    { name: 'SNI with a NUL byte', bytes: clientHello({ sni: 'evil.test\u0000.allowed.test' }), notTls: false },
    { name: 'SNI with UTF-8', bytes: clientHello({ sni: 'caf\u00e9.test' }), notTls: false },
    { name: 'two host names', bytes: clientHello({ sni: null, extra: [[0, Buffer.concat([Buffer.from([0, 12]), Buffer.from([0, 0, 3]), Buffer.from('a.b'), Buffer.from([0, 0, 3]), Buffer.from('c.d')])]] }), notTls: false },
    { name: 'server_name list length lies', bytes: clientHello({ sni: null, extra: [[0, Buffer.concat([Buffer.from([0, 99]), sniExt(Buffer.from('a.b')).subarray(2)])]] }), notTls: false },
    { name: 'empty ALPN name', bytes: clientHello({ extra: [[16, Buffer.from([0, 2, 1, 0x41, 0])]] }), notTls: false },
    { name: 'odd supported_versions', bytes: clientHello({ supportedVersions: [], extra: [[43, Buffer.from([3, 3, 4, 3])]] }), notTls: false },
  ];
  for (const c of cases) {
    const r = parseClientHello(c.bytes);
    t.equal(r.kind, 'invalid', c.name);
    if (r.kind === 'invalid') t.equal(r.notTls, c.notTls, `${c.name}: notTls`);
  }
});

t.test('length fields that overrun the message are refused, not read past', async (t) => {
  const good = clientHello({ sni: 'len.test', alpn: ['h2'] });
  // Every byte of the handshake body set to 0xff, one at a time: never a throw, never a different SNI.
  let bad = 0;
  for (let i = 9; i < good.length; i++) {
    const b = Buffer.from(good);
    b[i] = 0xff;
    const r = parseClientHello(b);
    if (r.kind === 'parsed' && r.hello.sni !== 'len.test' && r.hello.sni !== null && !/^[a-z0-9._-]+$/.test(r.hello.sni)) bad++;
  }
  t.equal(bad, 0);
});
