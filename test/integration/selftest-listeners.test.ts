/**
 * Canaries exercise every configured listener path, not only the policy (issue 21, point 6), on a
 * real serve with the forward, transparent http, transparent tls and DNS listeners: an http:// URL
 * canary goes through the forward listener and the transparent http one, a host canary through the
 * transparent http one and, by SNI, the transparent tls one; a canary whose host is listed whole
 * also through the DNS listener, by name (with a recording upstream that must never see it). The
 * probes are marked (a header; the self-test ALPN id in the ClientHello; an EDNS option), so their
 * verdicts count under `listener="selftest"` and no guest figure moves.
 *
 * The failure case: a profile for the appliance's own loopback network with no lists. The policy's
 * default decision blocks every canary, so a self-test that asks only the policy says "pass"; the
 * listeners, deciding for the probe's real client address, let them through. The canaries must fail,
 * naming the listener.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openJournal } from '../../audit/journal.js';
import { startTestDns } from '../helpers/dns-upstream.js';
import { CLI_DEMO_DIR, runCli, serve, tempConfig } from '../helpers/appliance.js';

const LISTENERS = 'listeners: { forward: { host: 127.0.0.1, port: 0 }, http: { host: 127.0.0.1, port: 0 }, tls: { host: 127.0.0.1, port: 0 } }';
const LISTS = `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }]`;
const CANARIES = [
  'selftest:',
  '  interval: 1h',
  '  canaries:',
  '    - { id: adult-url, category: adult, url: "http://blocked.test/canary" }',
  '    - { id: adult-host, category: adult, host: adult.test }',
];

const metrics = async (port: number): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
const sum = (text: string, re: RegExp): number => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);

t.test('every listener blocks the canaries: they pass, counted under the selftest listener only', async (t) => {
  const upstream = await startTestDns([]);
  t.teardown(() => upstream.close());
  const { config } = tempConfig(t, 'selftest-listeners', [
    LISTENERS.replace(' } }', ' }, dns: { host: 127.0.0.1, port: 0 } }'),
    `upstream: { dnsServers: ["127.0.0.1:${upstream.port}"] }`,
    'admin: { host: 127.0.0.1, port: 0 }',
    LISTS,
    ...CANARIES,
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const text = await metrics(app.admin);
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-url",category="adult"\} 1$/m, 'the URL canary passes on forward (absolute URL and CONNECT), transparent http, tls and dns');
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-host",category="adult"\} 1$/m, 'the host canary passes on transparent http, tls, CONNECT and dns');
  // The URL canary: forward, http, and by its host (blocked.test is listed whole) tls, CONNECT on
  // the forward listener and dns; the host canary: http, tls, CONNECT and dns. Nine probes, all marked.
  t.equal(sum(text, /^safespot_requests_total\{[^}]*listener="selftest"[^}]*action="block"[^}]*\} (\d+)$/gm), 9, 'nine probe verdicts, under listener="selftest"');
  t.equal(sum(text, /^safespot_requests_total\{[^}]*listener="selftest"[^}]*protocol="connect"[^}]*action="block"[^}]*\} (\d+)$/gm), 2, 'two of them by CONNECT');
  t.equal(sum(text, /^safespot_requests_total\{[^}]*listener="selftest"[^}]*protocol="dns"[^}]*action="block"[^}]*\} (\d+)$/gm), 2, 'two of them by DNS');
  t.equal(sum(text, /^safespot_requests_total\{[^}]*listener="(?:forward|http|tls|dns)"[^}]*action="block"[^}]*\} (\d+)$/gm), 0, 'no guest listener counted a block');
  t.equal(upstream.asked('blocked.test') + upstream.asked('adult.test'), 0, 'the canaries never left the appliance by DNS');
});

t.test('the DNS listener forwards a canary the policy blocks (a loopback profile without lists): the canary fails, naming dns', async (t) => {
  const upstream = await startTestDns([]);
  t.teardown(() => upstream.close());
  const { dir, config } = tempConfig(t, 'selftest-listeners-dns-fail', [
    'listeners: { dns: { host: 127.0.0.1, port: 0 } }',
    `upstream: { dnsServers: ["127.0.0.1:${upstream.port}"] }`,
    'admin: { host: 127.0.0.1, port: 0 }',
    LISTS,
    'profiles: [{ name: appliance-itself, clients: ["127.0.0.0/8", "::1/128"], lists: [] }]',
    'selftest:',
    '  interval: 1h',
    '  canaries:',
    '    - { id: adult-host, category: adult, host: adult.test }',
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const text = await metrics(app.admin);
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-host",category="adult"\} 0$/m, 'the canary fails');
  t.ok(upstream.asked('adult.test') > 0, 'the listener forwarded it (what the failure is about)');
  app.child.kill('SIGTERM');
  await app.exited;
  const j = openJournal({ path: join(dir, 'journal.db'), retentionDays: 400, recordUrls: false, recordClients: false, readOnly: true });
  t.teardown(() => j.close());
  const rows = j.query(0, Date.now() + 1000, ['selftest']);
  t.same(rows.map((r) => [r.list, r.action]), [['adult-host', 'fail']]);
  t.match(rows[0]?.detail ?? '', /^decision ok, but the dns listener (forwarded the name instead of blocking it|answered rcode \d+ instead of a block)$/, `the row names the dns listener: ${rows[0]?.detail}`);
  t.notMatch(JSON.stringify(rows), /adult\.test/, 'never the canary host');
});

t.test('the policy blocks the canaries but the listeners let them through: the canaries fail, naming the listener', async (t) => {
  const { dir, config } = tempConfig(t, 'selftest-listeners-fail', [
    // No forward listener: before this test's fix only the forward listener was probed, so nothing caught it.
    'listeners: { http: { host: 127.0.0.1, port: 0 }, tls: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    LISTS,
    'profiles: [{ name: appliance-itself, clients: ["127.0.0.0/8", "::1/128"], lists: [] }]',
    'upstream: { connectTimeout: 1s }',
    ...CANARIES,
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const text = await metrics(app.admin);
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-url",category="adult"\} 0$/m, 'the URL canary fails');
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-host",category="adult"\} 0$/m, 'the host canary fails');
  t.match(text, /^safespot_selftest_success\{category="adult"\} 0$/m, 'and so does the category');
  app.child.kill('SIGTERM');
  await app.exited;
  const j = openJournal({ path: join(dir, 'journal.db'), retentionDays: 400, recordUrls: false, recordClients: false, readOnly: true });
  t.teardown(() => j.close());
  const rows = j.query(0, Date.now() + 1000, ['selftest']);
  t.same(rows.map((r) => [r.list, r.action]), [['adult-url', 'fail'], ['adult-host', 'fail']]);
  t.match(rows[0]?.detail ?? '', /^decision ok, but the transparent http listener answered \d{3} instead of a block$/, 'the row says which listener let it through');
  t.match(rows[1]?.detail ?? '', /^decision ok, but the transparent (http|tls) listener/, 'and for the host canary');
  t.notMatch(JSON.stringify(rows), /blocked\.test|adult\.test/, 'never the canary URL or host');
});

t.test('CONNECT on the forward listener: blocked with 403, or with the block page inside TLS where intercepted; a tunnel it opens fails the canary', async (t) => {
  const host = ['    - { id: adult-host, category: adult, host: adult.test }'];
  // Intercepted: the CONNECT gets 200 and the block page comes inside TLS (the probe checks it).
  const intercepted = tempConfig(t, 'selftest-connect-intercept', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'ca: { dir: CA_DIR }',
    'intercept: { enabled: true }',
    LISTS,
    'selftest:', '  interval: 1h', '  canaries:', ...host,
  ]);
  const ca = join(intercepted.dir, 'ca');
  t.equal((await runCli(['certs', 'init', '--dir', ca])).code, 0, 'certs init');
  writeFileSync(intercepted.config, readFileSync(intercepted.config, 'utf8').replace('CA_DIR', ca));
  const app = await serve(intercepted.config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const text = await metrics(app.admin);
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-host",category="adult"\} 1$/m, 'intercepted: the block page inside the tunnel is a block');
  t.ok(sum(text, /^safespot_requests_total\{[^}]*listener="selftest"[^}]*action="block"[^}]*\} (\d+)$/gm) >= 1, 'counted under selftest');
  t.equal(sum(text, /^safespot_requests_total\{[^}]*listener="forward"[^}]*action="block"[^}]*\} (\d+)$/gm), 0, 'not as a guest\'s');
  app.child.kill('SIGKILL');

  // A profile for loopback with no lists: the policy blocks the host, the forward listener opens
  // the tunnel (or tries to): the canary fails, naming the CONNECT.
  const open = tempConfig(t, 'selftest-connect-fail', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    LISTS,
    'profiles: [{ name: appliance-itself, clients: ["127.0.0.0/8", "::1/128"], lists: [] }]',
    'upstream: { connectTimeout: 1s }',
    'selftest:', '  interval: 1h', '  canaries:', ...host,
  ]);
  const app2 = await serve(open.config);
  t.teardown(() => void app2.child.kill('SIGKILL'));
  t.match(await metrics(app2.admin), /^safespot_selftest_canary_success\{canary="adult-host",category="adult"\} 0$/m, 'the canary fails');
  app2.child.kill('SIGTERM');
  await app2.exited;
  const j = openJournal({ path: join(open.dir, 'journal.db'), retentionDays: 400, recordUrls: false, recordClients: false, readOnly: true });
  t.teardown(() => j.close());
  const rows = j.query(0, Date.now() + 1000, ['selftest']);
  t.match(rows[0]?.detail ?? '', /^decision ok, but the forward (listener answered the CONNECT with \d{3} instead of a block|\(CONNECT\) listener .*)$/, `the row names the CONNECT: ${rows[0]?.detail}`);
});
