/**
 * The transparent TLS listener, and the ClientHello reader fed with hellos captured from real
 * clients (Node tls.connect, openssl s_client, curl) on a port 0 socket: whole, byte by byte,
 * truncated at every length, re-fragmented over several records, with corrupted lengths.
 */
import t from 'tap';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseClientHello } from '../../proxy/client-hello.js';
import { CidrSet } from '../../policy/ip.js';
import { clientHello, records } from '../helpers/client-hello-builder.js';
import { runCmd } from '../helpers/commands.js';
import { captureClientHello } from '../helpers/hello-capture.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange, isAlert, openSocket, readAll, readUntil } from '../helpers/sockets.js';
import { startTlsProxyRig } from '../helpers/tls-proxy-rig.js';

const { warnings, pki, hosts, observer, proxy } = await startTlsProxyRig(t, {
  hosts: (httpsPort) => ({
    'allowed.test': `127.0.0.1:${httpsPort}`,
    'blocked.test': `127.0.0.1:${httpsPort}`,
    'safe.search.test': `127.0.0.1:${httpsPort}`,
    // search.test itself points nowhere useful: only the SafeSearch redirect makes it work.
    'search.test': '127.0.0.1:1',
  }),
  redirect: { 'search.test': 'safe.search.test' },
});
const tlsPort = proxy.port('tls');

const captures: Record<string, Buffer> = {
  node: await captureClientHello('node', 'allowed.test', ['h2', 'http/1.1']),
  openssl: await captureClientHello('openssl', 'allowed.test', ['http/1.1']),
  curl: await captureClientHello('curl', 'allowed.test'),
};

t.test('captured real ClientHellos parse whole, and every strict prefix is need-more', async (t) => {
  for (const [client, bytes] of Object.entries(captures)) {
    const r = parseClientHello(bytes);
    t.equal(r.kind, 'parsed', `${client} parsed`);
    if (r.kind !== 'parsed') continue;
    t.equal(r.hello.sni, 'allowed.test', `${client} SNI`);
    t.equal(r.hello.ech, false);
    t.equal(r.hello.legacyVersion, 0x0303, `${client} legacy_version`);
    t.ok(r.hello.supportedVersions.includes(0x0304), `${client} offers TLS 1.3`);
    t.equal(r.consumed, bytes.length);
    if (client === 'node') t.same(r.hello.alpn, ['h2', 'http/1.1']);
    if (client === 'openssl') t.same(r.hello.alpn, ['http/1.1']);
    let wrong = 0;
    for (let n = 0; n < bytes.length; n++) if (parseClientHello(bytes.subarray(0, n)).kind !== 'need-more') wrong++;
    t.equal(wrong, 0, `${client}: all ${bytes.length} prefixes are need-more`);
  }
});

t.test('captured hellos re-fragmented over many records parse the same', async (t) => {
  for (const [client, bytes] of Object.entries(captures)) {
    const handshake = bytes.subarray(5, 5 + bytes.readUInt16BE(3));
    for (const size of [1, 2, 3, 50, 100, 511]) {
      const r = parseClientHello(records(handshake, size));
      t.equal(r.kind === 'parsed' ? r.hello.sni : r.kind, 'allowed.test', `${client} in ${size}-byte records`);
    }
  }
});

t.test('corrupted lengths in captured hellos give need-more or invalid, never a throw or a wrong SNI', async (t) => {
  let checked = 0;
  let dirty = 0;
  for (const bytes of Object.values(captures)) {
    for (let i = 0; i < Math.min(bytes.length, 200); i++) {
      for (const delta of [1, 0x80, 0xff]) {
        const copy = Buffer.from(bytes);
        copy[i] = (copy[i]! + delta) & 0xff;
        const r = parseClientHello(copy);
        if (r.kind === 'parsed' && r.hello.sni !== null && !/^[a-z0-9._-]+$/.test(r.hello.sni)) dirty++;
        checked++;
      }
    }
  }
  t.ok(checked > 1000, `${checked} mutations examined`);
  t.equal(dirty, 0, 'a parsed name is always a clean host name');
});

t.test('Node https through the TLS listener: allowed SNI reaches the upstream (SNI routing)', async (t) => {
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: tlsPort, servername: 'allowed.test', ca: pki.caCert, path: '/hello', headers: { host: 'allowed.test' } },
      (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => resolve(s));
      },
    );
    req.on('error', reject);
    req.end();
  });
  t.equal(body, 'hello from https\n');
});

t.test('curl --connect-to through the TLS listener: allowed passes, blocked fails with an alert', async (t) => {
  const ok = await runCmd('curl', ['-sS', '--cacert', pki.caFile, '--connect-to', `allowed.test:443:127.0.0.1:${tlsPort}`, 'https://allowed.test/hello']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stdout.toString(), 'hello from https\n');
  const no = await runCmd('curl', ['-sS', '--cacert', pki.caFile, '--connect-to', `blocked.test:443:127.0.0.1:${tlsPort}`, 'https://blocked.test/hello']);
  t.not(no.code, 0);
  t.match(no.stderr, /alert access denied|access denied/i);
});

t.test('openssl s_client: blocked SNI gets access_denied', async (t) => {
  const r = await runCmd('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-servername', 'blocked.test', '-CAfile', pki.caFile]);
  t.not(r.code, 0);
  t.match(r.stderr, /alert access denied/i);
});

t.test('raw: no SNI gets unrecognized_name; non-TLS bytes get decode_error; both counted', async (t) => {
  const noSni = await exchange(tlsPort, clientHello({ sni: null }));
  t.ok(isAlert(noSni, 112), `no SNI -> ${noSni.toString('hex')}`);
  t.ok(observer.count('hello no_sni') >= 1);
  const http = await exchange(tlsPort, 'GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
  t.ok(isAlert(http, 50), `HTTP on the TLS port -> ${http.toString('hex')}`);
  const ssh = await exchange(tlsPort, 'SSH-2.0-OpenSSH_9.2\r\n');
  t.ok(isAlert(ssh, 50), 'SSH banner refused');
  t.ok(observer.count('hello not_tls') >= 2);
  const sslv2 = await exchange(tlsPort, Buffer.from('802b0103010012000000100100800700c0030080060040020080040080000000000000000000000000000000', 'hex'));
  t.ok(isAlert(sslv2, 50), 'SSLv2-style hello refused');
  t.ok(observer.count('hello malformed') >= 1);
});

t.test('raw: a slow, split ClientHello is routed; silence times out with handshake_failure', async (t) => {
  const s = await openSocket(tlsPort);
  const hello = captures.node!;
  for (let i = 0; i < hello.length; i += 40) {
    s.write(hello.subarray(i, i + 40));
    await sleep(10);
  }
  const back = await readUntil(s, (b) => b.length >= 6);
  s.destroy();
  t.equal(back[0], 0x16, 'handshake record back');
  t.equal(back[5], 0x02, 'ServerHello');

  const before = observer.count('hello timeout');
  const quiet = await openSocket(tlsPort);
  quiet.write(hello.subarray(0, 20));
  const alert = await readAll(quiet);
  t.ok(isAlert(alert, 40), `timeout -> ${alert.toString('hex')}`);
  t.equal(observer.count('hello timeout'), before + 1);
});

t.test('ECH: counted, and decided on the outer name', async (t) => {
  const before = observer.count('hello ech');
  const s = await openSocket(tlsPort);
  s.write(clientHello({ sni: 'blocked.test', ech: true }));
  const back = await readAll(s);
  t.ok(isAlert(back, 0x31), 'outer name blocked');
  t.equal(observer.count('hello ech'), before + 1);
});

t.test('SafeSearch: connectHost is where we connect, and the guest SNI is kept', async (t) => {
  const ok = await runCmd('curl', ['-sS', '--cacert', pki.caFile, '--connect-to', `search.test:443:127.0.0.1:${tlsPort}`, 'https://search.test/hello']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stdout.toString(), 'hello from https\n', 'served by the safe front end, certificate valid for the original name');
});

t.test('clients outside the client networks get access_denied at once', async (t) => {
  const obs = recordingObserver();
  const narrow = await startTestProxy(
    t,
    testOptions(hosts, { clients: CidrSet.parse(['10.0.0.0/8']), listeners: { tls: { host: '127.0.0.1', port: 0 } } }),
    testHooks(),
    obs,
  );
  const res = await exchange(narrow.port('tls'), captures.node!);
  t.ok(isAlert(res, 0x31), res.toString('hex'));
  t.equal(obs.count('limit client_forbidden'), 1);
});

t.test('no process warnings (listener leaks) after all of the above', async (t) => {
  t.same(warnings, []);
});
