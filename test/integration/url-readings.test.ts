/**
 * Differential: tricky targets through the real forward proxy, with a `urls` entry for
 * http://site.test/secret/page.html, to a real loopback origin that resolves paths as a static
 * file server does (decode per segment, `\` as `/`, dots resolved, case-insensitive). The test
 * fails whenever the origin served the secret page through safespot (finding 12 a/b/d).
 */
import { createServer } from 'node:http';
import { connect as netConnect, type AddressInfo } from 'node:net';
import t from 'tap';
import { nullObserver } from '../../audit/metrics.js';
import { compilePolicy, PolicyHolder } from '../../policy/policy.js';
import { createPolicyHooks } from '../../proxy/policy-hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';
import { exchange } from '../helpers/sockets.js';

const SECRET = 'SECRET-BODY-7f3a';

function staticPath(target: string): string {
  const path = target.split('?')[0]!.split('#')[0]!.replace(/\\/g, '/');
  const out: string[] = [];
  for (const raw of path.split('/')) {
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      s = raw;
    }
    for (const part of s.replace(/\\/g, '/').split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') out.pop();
      else out.push(part);
    }
  }
  return ('/' + out.join('/')).toLowerCase();
}

const asked: string[] = [];
const origin = createServer((req, res) => {
  asked.push(req.url ?? '');
  const hit = staticPath(req.url ?? '/') === '/secret/page.html';
  res.writeHead(hit ? 200 : 404, { 'content-type': 'text/plain', connection: 'close' });
  res.end(hit ? SECRET : 'nothing');
});
await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
t.teardown(() => origin.close());
const port = (origin.address() as AddressInfo).port;

const holder = new PolicyHolder();
holder.swap(compilePolicy({ lists: [{ id: 'pages', category: 'malware', kind: 'urls', text: 'http://site.test/secret/page.html\n' }] }));
const hooks = createPolicyHooks(holder, nullObserver, { recordUrls: false, recordClients: false, blockFronting: false, noSni: 'block', ech: 'allow-outer' });
const proxy = await startTestProxy(t, testOptions({ 'site.test': `127.0.0.1:${port}` }), hooks, nullObserver);
// requests.ambiguousPaths: decide: nothing refused for its escapes, every reading decided. The
// differential below runs against both: neither may serve the secret page.
const deciding = await startTestProxy(t, { ...testOptions({ 'site.test': `127.0.0.1:${port}` }), requests: { ambiguousPaths: 'decide' } }, hooks, nullObserver);

const targets = [
  '/secret/page.html',
  '/%3F/../secret/page.html',
  '/%253F/../secret/page.html',
  '/x%3F/../secret/page.html',
  '/secret/page.html/.',
  '/SECRET/PAGE.HTML',
  '/Secret/Page.html',
  '/x/%2e%2e/secret/page.html',
  '/x/%2E%2E/secret/page.html',
  '//secret//page.html',
  '/secret/./page.html',
  '/secret/%70age.html',
  '/secret%2Fpage.html',
  '/x/..%2Fsecret/page.html',
  '/secret/page.html?x=1',
  '/secret\\page.html',
  '/x\\..\\secret/page.html',
  '/\\secret\\page.html',
  '/secret/page.html#frag',
  '/secret/page.html#/../x',
  '/secret/x#/../page.html',
];

t.test('the origin serves a control page (the rig works)', async (t) => {
  const res = (await exchange(proxy.port('forward'), `GET http://site.test/other HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
  t.match(res, /^HTTP\/1\.1 404/);
});

for (const [name, p] of [['refuse', proxy], ['decide', deciding]] as const) for (const target of targets) {
  t.test(`never serves the secret page (ambiguousPaths: ${name}): ${target}`, async (t) => {
    const proxy = p;
    const res = (await exchange(proxy.port('forward'), `GET http://site.test${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
    t.notOk(res.includes(SECRET), `served the secret page: ${res.split('\r\n')[0]}`);
    t.ok(res.startsWith('HTTP/1.1 '), 'got a response');
    // Origin-form on the transparent listener reads the same.
    const viaHost = (await exchange(proxy.port('http'), `GET ${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
    t.notOk(viaHost.includes(SECRET), `transparent listener served the secret page: ${viaHost.split('\r\n')[0]}`);
  });
}

t.test('a backslash in the path is refused with 400 and never sent; a fragment is never sent', async (t) => {
  for (const [port, form] of [[proxy.port('forward'), 'http://site.test'], [proxy.port('http'), '']] as const) {
    for (const target of ['/a\\b', '/\\', '/a/b\\..\\c?q=1']) {
      const before = asked.length;
      const res = (await exchange(port, `GET ${form}${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
      t.match(res, /^HTTP\/1\.1 400 /, `${form}${target}: 400`);
      t.equal(asked.length, before, `${form}${target}: the origin was not asked`);
    }
    // A backslash in the query is a query byte, the same to every reader: forwarded.
    const q = (await exchange(port, `GET ${form}/other?a=\\b HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
    t.match(q, /^HTTP\/1\.1 404 /, 'a backslash in the query: forwarded');
    t.equal(asked.at(-1), '/other?a=\\b');
    await exchange(port, `GET ${form}/other#/../secret/page.html HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`);
    t.equal(asked.at(-1), '/other', 'the fragment was dropped before the origin');
  }
});

t.test('ambiguous paths are refused with 400 and counted, never sent; with decide they are decided', async (t) => {
  const { recordingObserver } = await import('../helpers/hooks.js');
  const obs = recordingObserver();
  const counting = await startTestProxy(t, testOptions({ 'site.test': `127.0.0.1:${port}` }), hooks, obs);
  const ambiguous = ['/a%2Fb', '/a%2fb', '/%3F', '/a%23b', '/a%5Cb', '/a%00b', '/%2e%2e/x', '/x%41/../y', '/x/./y%20z'];
  const clear = ['/other', '/a%20b', '/x/../other', '/q?a=%2F', '/caf%C3%A9'];
  for (const target of ambiguous) {
    const before = asked.length;
    const res = (await exchange(counting.port('forward'), `GET http://site.test${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
    t.match(res, /^HTTP\/1\.1 400 [^]*origins read it more than one way/, `${target}: 400, and says why`);
    t.equal(asked.length, before, `${target}: the origin was not asked`);
    const decided = (await exchange(deciding.port('forward'), `GET http://site.test${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
    t.notMatch(decided, /^HTTP\/1\.1 400 /, `${target}: with decide, forwarded after the decision`);
  }
  t.equal(obs.count('limit ambiguous_path'), ambiguous.length, 'each refusal counted as ambiguous_path');
  for (const target of clear) {
    const res = (await exchange(counting.port('forward'), `GET http://site.test${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
    t.notMatch(res, /^HTTP\/1\.1 400 /, `${target}: one reading only, forwarded`);
  }
});

t.test('differential against Python\'s http.server: never serves the listed page through safespot', async (t) => {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createServer: netServer } = await import('node:net');
  const root = mkdtempSync(join(tmpdir(), 'safespot-pyorigin-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'secret'));
  writeFileSync(join(root, 'secret', 'page.html'), SECRET);
  writeFileSync(join(root, 'other'), 'nothing');
  const free = await new Promise<number>((r) => {
    const s = netServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => r(p));
    });
  });
  const py = spawn('python3', ['-m', 'http.server', String(free), '--bind', '127.0.0.1', '--directory', root], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => void py.kill('SIGKILL'));
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((r) => {
      const c = netConnect(free, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const direct = (await exchange(free, 'GET /secret/page.html HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n')).toString('latin1');
  t.ok(direct.includes(SECRET), 'the rig works: Python serves the page directly');
  for (const [name, opts] of [['refuse', {}], ['decide', { requests: { ambiguousPaths: 'decide' as const } }]] as const) {
    const p = await startTestProxy(t, { ...testOptions({ 'site.test': `127.0.0.1:${free}` }), ...opts }, hooks, nullObserver);
    let served = 0;
    for (const target of [...targets, '/secret/page.html;x', '/secret//page.html', '/secret/page.html%3Fx', '/Secret/page.html']) {
      const res = (await exchange(p.port('forward'), `GET http://site.test${target} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`)).toString('latin1');
      if (res.includes(SECRET)) {
        served++;
        t.fail(`${name}: Python served the listed page for ${target}: ${res.split('\r\n')[0]}`);
      }
    }
    t.equal(served, 0, `${name}: no target got the listed page from Python through safespot`);
  }
});
