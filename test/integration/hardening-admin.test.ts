/**
 * The admin surface of a real `safespot serve` (issue 9, item 8): its own listener on loopback, a
 * bearer token on every route but /healthz, a non-loopback admin host without a token refused at
 * start, and nothing served that a guest or a list provider would mind: after traffic from a known
 * client address to known hosts, every admin route's output (with and without the token) is scanned
 * for list entries (clear and hashed), the hosts and URLs requested, the client address and the
 * token itself.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_DEMO_DIR as DEMO, runCli, serve } from '../helpers/appliance.js';
import { exchange } from '../helpers/sockets.js';
import { startHttpUpstream } from '../helpers/upstream.js';

const TOKEN = 'hardening-admin-token-0123456789';
const GUEST = '127.0.0.77';

/** Entries of the demo lists as they are written in the files (domains, URLs, hex hashes). */
function listEntries(): string[] {
  const out: string[] = [];
  for (const f of ['adult.txt', 'malware.txt', 'hotline.txt', 'bypass.txt']) {
    for (const line of readFileSync(join(DEMO, f), 'utf8').split('\n')) {
      const l = line.trim();
      if (!l || l.startsWith('#')) continue;
      out.push(l.replace(/^0\.0\.0\.0\s+/, '').replace(/^\|\|/, '').replace(/\^$/, ''));
    }
  }
  return out;
}

t.test('admin: own loopback listener, token required, no list content or client data served', async (t) => {
  const up = await startHttpUpstream();
  t.teardown(() => up.close());
  const dir = mkdtempSync(join(tmpdir(), 'safespot-admin-hardening-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0, tokenFile: token }',
    `upstream: { hosts: { visited-page.test: "127.0.0.1:${up.port}" } }`,
    'lists:',
    `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    `  - { id: demo-malware, category: malware, kind: urls, source: ${join(DEMO, 'malware.txt')} }`,
    `  - { id: demo-bypass, category: bypass, kind: domains, source: ${join(DEMO, 'bypass.txt')} }`,
    `journal: { path: ${join(dir, 'journal.db')} }`,
    `state: { dir: ${join(dir, 'state')} }`,
    'selftest: { interval: 1h, canaries: [{ category: csam, url: "http://csam-canary.test/" }] }',
    '',
  ].join('\n'));
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  t.not(app.admin, app.forward, 'the admin listener is its own port');

  const visited = ['http://blocked.test/secret-path', 'http://csam-canary.test/x', 'http://malware.test/download/payload.exe', 'http://visited-page.test/hello?q=private-query'];
  for (const url of visited) {
    const host = new URL(url).host;
    const res = await exchange(app.forward, `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, GUEST);
    t.match(res.toString(), /^HTTP\/1\.1 (200|403)/, `${url} answered`);
  }

  const routes = ['/metrics', '/healthz', '/readyz', '/reload', '/', '/lists', '/ca', '/journal', '/metrics/../lists', '/admin', '/debug', '/config'];
  const bodies: string[] = [];
  for (const path of routes) {
    for (const auth of [undefined, `Bearer ${TOKEN}`, 'Bearer wrong-token-wrong-token']) {
      for (const method of ['GET', 'POST', 'HEAD']) {
        const res = await fetch(`http://127.0.0.1:${app.admin}${path}`, { method, headers: auth ? { authorization: auth } : {} });
        const body = await res.text();
        bodies.push(`${res.status} ${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${body}`);
        if (path === '/healthz') t.equal(res.status, method === 'POST' ? 405 : 200, `${method} /healthz is public`);
        else if (path === '/metrics' || path === '/readyz') {
          const want = auth === `Bearer ${TOKEN}` ? (method === 'POST' ? 405 : 200) : 401;
          t.equal(res.status, want, `${method} ${path} ${auth === `Bearer ${TOKEN}` ? 'with' : 'without'} the token: ${want}`);
        } else if (path === '/reload') {
          // The one control endpoint: token-protected like /metrics; POST only.
          const want = auth === `Bearer ${TOKEN}` ? (method === 'POST' ? 200 : 405) : 401;
          t.equal(res.status, want, `${method} /reload ${auth === `Bearer ${TOKEN}` ? 'with' : 'without'} the token: ${want}`);
        } else if (path === '/') {
          // The venue's status page (status-page.ts): token-protected like /metrics, GET and HEAD; its body is in the leak check below.
          const want = auth === `Bearer ${TOKEN}` ? (method === 'POST' ? 405 : 200) : 401;
          t.equal(res.status, want, `${method} / ${auth === `Bearer ${TOKEN}` ? 'with' : 'without'} the token: ${want}`);
        } else t.ok(res.status === 404 || res.status === 401, `${method} ${path}: ${res.status}`);
      }
    }
  }
  const all = bodies.join('\n');
  t.match(all, /safespot_requests_total\{listener="forward",protocol="http",action="block",category="adult"\} 1/, 'the metrics really were read');
  t.match(all, /id="filtering" data-active="1"/, 'the status page really was read');
  const forbidden = [
    ...listEntries(),
    ...visited,
    ...visited.map((u) => new URL(u).hostname),
    'secret-path', 'private-query', 'visited-page',
    GUEST,
    TOKEN,
  ];
  const leaks = forbidden.filter((s) => all.toLowerCase().includes(s.toLowerCase()));
  t.same(leaks, [], `no list entry, host, URL, client address or token in ${bodies.length} admin answers`);
  t.notMatch(app.log(), new RegExp(`${GUEST.replace(/\./g, '\\.')}|${TOKEN}|secret-path|private-query`), 'nor in the operational log');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);
});

t.test('a non-loopback admin host without a token is refused at start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-admin-exposed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const host of ['0.0.0.0', '::', '192.0.2.1']) {
    const config = join(dir, 'config.yaml');
    writeFileSync(config, [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      `admin: { host: "${host}", port: 0 }`,
      `journal: { path: ${join(dir, 'journal.db')} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      '',
    ].join('\n'));
    const r = await runCli(['serve', '--config', config]);
    t.not(r.code, 0, `admin.host ${host} without tokenFile: serve refuses to start`);
    t.match(r.stderr, /tokenFile/, 'and says how to fix it');
  }
});
