/**
 * CONNECT on the explicit proxy: decided on the authority, then on the SNI; allowed tunnels carry
 * TLS byte-exact to a real HTTPS upstream (undici, curl, openssl s_client), blocked ones get 403 or
 * a TLS alert; plain HTTP inside a tunnel is filtered per URL; odd bytes are refused.
 */
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIG_SIZE, bigBody, sha256, startHttpUpstream } from '../helpers/upstream.js';
import { runCmd } from '../helpers/commands.js';
import { captureClientHello } from '../helpers/hello-capture.js';
import { recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange, isAlert, openSocket, readAll, readUntil } from '../helpers/sockets.js';
import { startTlsProxyRig } from '../helpers/tls-proxy-rig.js';

const http = await startHttpUpstream();
t.teardown(() => http.close());
const { warnings, pki, hosts, hooks, observer, proxy } = await startTlsProxyRig(t, {
  hosts: (httpsPort) => ({
    'allowed.test': `127.0.0.1:${httpsPort}`,
    'blocked.test': `127.0.0.1:${httpsPort}`,
    'plain.test': `127.0.0.1:${http.port}`,
  }),
});
const port = proxy.port('forward');
const proxyUrl = `http://127.0.0.1:${port}`;
const agent = new ProxyAgent({ uri: proxyUrl, requestTls: { ca: pki.caCert } });
t.teardown(() => agent.close());

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
const helloAllowed = await captureClientHello('node', 'allowed.test');
const helloBlocked = await captureClientHello('node', 'blocked.test');

/** CONNECT, wait for the 200, then hand the socket back. */
async function tunnel(authority: string) {
  const s = await openSocket(port);
  s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  const head = await readUntil(s, (b) => b.includes('\r\n\r\n'));
  return { s, head: head.toString('latin1') };
}

t.test('a CONNECT authority without a usable port is 400, before any decision', async (t) => {
  const calls = hooks.calls.length;
  for (const authority of ['allowed.test', 'allowed.test:', 'allowed.test:0', 'allowed.test:65536', 'allowed.test:443x', '[::1]', '127.0.0.1', 'allowed.test:-1', ':443']) {
    const { s, head } = await tunnel(authority);
    t.match(head, /^HTTP\/1\.1 400 [^]*CONNECT needs host:port/, `${authority}: 400`);
    s.destroy();
  }
  t.equal(hooks.calls.length, calls, 'nothing was decided');
});

t.test('undici over CONNECT: allowed HTTPS passes byte-exact', async (t) => {
  const res = await request('https://allowed.test/hello', { dispatcher: agent });
  t.equal(res.statusCode, 200);
  t.equal(await res.body.text(), 'hello from https\n');
  const expected = sha256(bigBody());
  for (const path of ['/big', '/chunked']) {
    const r = await request(`https://allowed.test${path}`, { dispatcher: agent });
    const body = Buffer.from(await r.body.arrayBuffer());
    t.equal(body.length, BIG_SIZE, `${path} length`);
    t.equal(sha256(body), expected, `${path} bytes`);
  }
  t.ok(hooks.calls.includes('connect allowed.test:443'), 'decided on the authority');
  t.ok(hooks.calls.includes('hello allowed.test allowed.test'), 'then on the SNI, with the authority');
  t.ok(observer.count('hello sni') >= 1, 'ClientHello counted');
});

t.test('undici: a blocked authority is refused before any tunnel', async (t) => {
  await t.rejects(request('https://blocked.test/hello', { dispatcher: agent }), /403|Proxy response/);
});

t.test('curl through CONNECT: allowed page, blocked authority 403', async (t) => {
  const ok = await runCmd('curl', ['-sS', '--cacert', pki.caFile, '-x', proxyUrl, 'https://allowed.test/hello']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stdout.toString(), 'hello from https\n');
  const no = await runCmd('curl', ['-sS', '--cacert', pki.caFile, '-x', proxyUrl, 'https://blocked.test/hello']);
  t.not(no.code, 0);
  t.match(no.stderr, /403/);
});

t.test('openssl s_client -proxy: allowed handshake verifies; fronted SNI gets access_denied', async (t) => {
  const ok = await runCmd(
    'openssl',
    ['s_client', '-proxy', `127.0.0.1:${port}`, '-connect', 'allowed.test:443', '-servername', 'allowed.test', '-CAfile', pki.caFile, '-verify_return_error', '-ign_eof'],
    { input: 'GET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n' },
  );
  t.match(ok.stdout.toString(), /Verify return code: 0 \(ok\)/);
  t.match(ok.stdout.toString(), /hello from https/);
  const fronted = await runCmd('openssl', ['s_client', '-proxy', `127.0.0.1:${port}`, '-connect', 'allowed.test:443', '-servername', 'blocked.test', '-CAfile', pki.caFile]);
  t.not(fronted.code, 0);
  t.match(fronted.stderr, /alert access denied/i);
});

t.test('raw: the refusal after a blocked SNI is exactly a fatal access_denied alert, then close', async (t) => {
  const { s, head } = await tunnel('allowed.test:443');
  t.equal(head, ESTABLISHED);
  s.write(helloBlocked);
  const rest = await readAll(s);
  t.ok(isAlert(rest, 0x31), `alert bytes ${rest.toString('hex')}`);
  t.equal(rest.length, 7, 'nothing else');
});

t.test('raw: a blocked authority gets 403 with a short text body', async (t) => {
  const res = await exchange(port, 'CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n');
  const text = res.toString();
  t.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
  t.match(text, /text\/plain/);
  t.match(text, /blocked by the venue's filter \(category adult\)/);
});

t.test('raw: a port outside upstream.ports and a malformed authority are refused', async (t) => {
  const p22 = await exchange(port, 'CONNECT allowed.test:22 HTTP/1.1\r\nHost: allowed.test:22\r\n\r\n');
  t.match(p22.toString(), /^HTTP\/1\.1 403/);
  const noPort = await exchange(port, 'CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
  t.match(noPort.toString(), /^HTTP\/1\.1 400/);
});

t.test('raw: a ClientHello split into tiny pieces still gets through (ServerHello comes back)', async (t) => {
  const { s, head } = await tunnel('allowed.test:443');
  t.equal(head, ESTABLISHED);
  for (let i = 0; i < helloAllowed.length; i += 7) {
    s.write(helloAllowed.subarray(i, i + 7));
    if (i < 70) await sleep(5);
  }
  const back = await readUntil(s, (b) => b.length >= 6);
  s.destroy();
  t.equal(back[0], 0x16, 'a handshake record');
  t.equal(back[5], 0x02, 'ServerHello');
});

t.test('raw: ClientHello sent together with the CONNECT request (pipelined) is used', async (t) => {
  const s = await openSocket(port);
  s.write(Buffer.concat([Buffer.from('CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n'), helloAllowed]));
  const back = await readUntil(s, (b) => b.length >= ESTABLISHED.length + 6);
  s.destroy();
  t.equal(back.subarray(0, ESTABLISHED.length).toString(), ESTABLISHED);
  t.equal(back[ESTABLISHED.length], 0x16);
});

t.test('raw: silence after CONNECT ends in a handshake_failure alert (timeout), counted', async (t) => {
  const before = observer.count('limit client_hello_timeout');
  const { s } = await tunnel('allowed.test:443');
  const rest = await readAll(s);
  t.ok(isAlert(rest, 40), `alert ${rest.toString('hex')}`);
  t.equal(observer.count('limit client_hello_timeout'), before + 1);
});

t.test('raw: an endless ClientHello is cut at clientHelloMaxBytes with decode_error', async (t) => {
  const { s } = await tunnel('allowed.test:443');
  // A handshake that announces 16 MB, then full records of filler.
  const first = Buffer.alloc(5 + 16384, 0x41);
  first.set([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff], 0);
  s.write(first);
  s.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]), Buffer.alloc(16384, 0x42)]));
  const rest = await readAll(s);
  t.ok(isAlert(rest, 50), `alert ${rest.toString('hex')}`);
});

t.test('raw: non-TLS, non-HTTP bytes after CONNECT are refused (notTls: block)', async (t) => {
  const { s } = await tunnel('allowed.test:443');
  s.write('SSH-2.0-OpenSSH_9.2\r\n');
  const rest = await readAll(s);
  t.ok(isAlert(rest, 50), `refused: ${rest.toString('hex')}`);
  t.ok(observer.count('hello not_tls') >= 1);
});

t.test('plain HTTP inside a CONNECT tunnel is filtered per URL', async (t) => {
  const tunnelAgent = new ProxyAgent({ uri: proxyUrl, proxyTunnel: true });
  t.teardown(() => tunnelAgent.close());
  const ok = await request('http://plain.test/hello', { dispatcher: tunnelAgent });
  t.equal(ok.statusCode, 200);
  t.equal(await ok.body.text(), 'hello from http\n');
  t.ok(hooks.calls.includes('request http://plain.test/hello'), 'the URL inside the tunnel was decided on');
  const no = await request('http://plain.test/blocked/x', { dispatcher: tunnelAgent });
  t.equal(no.statusCode, 403);
  t.match(await no.body.text(), /This page is blocked/);
});

t.test('notTls: allow splices other bytes to the authority', async (t) => {
  const open = await startTestProxy(t, testOptions(hosts, { tls: { notTls: 'allow' }, listeners: { forward: { host: '127.0.0.1', port: 0 } } }), testHooks(), recordingObserver());
  const s = await openSocket(open.port('forward'));
  s.write('CONNECT plain.test:80 HTTP/1.1\r\nHost: plain.test:80\r\n\r\n');
  await readUntil(s, (b) => b.includes('\r\n\r\n'));
  // Not TLS and not an HTTP method: the upstream HTTP server answers 400 to these bytes, which proves the splice.
  s.write('hello?\r\n\r\n');
  const back = await readAll(s);
  t.match(back.toString(), /^HTTP\/1\.1 400/);
});

t.test('no process warnings (listener leaks) after all of the above', async (t) => {
  t.same(warnings, []);
});
