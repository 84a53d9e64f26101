/**
 * The venue's status page (issue 20, point 5) on a real `safespot serve`: guests' requests blocked
 * through the real forward proxy (from 127.0.0.2, with the journal told to record URLs and clients,
 * so the page has guest data within reach and must still show none), then `/` fetched with undici
 * and rendered by headless Chromium in English and Albanian. The figures shown are the requests the
 * test had blocked, by category; the access rules are /metrics's (a token, when one is set).
 * Screenshots are kept in /tmp/safespot-status-page/ for a person to look at.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import { join } from 'node:path';
import { request } from 'undici';
import { CLI_DEMO_DIR as DEMO, serve, type Running } from '../helpers/appliance.js';

const GUEST = '127.0.0.2';
const SHOTS = '/tmp/safespot-status-page';
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-extensions', '--hide-scrollbars',
];

/** What the guests ask for: URL (or CONNECT authority) and the category the page must count it under. */
const BLOCKED: ReadonlyArray<{ url?: string; connect?: string; category: string }> = [
  { url: 'http://blocked.test/some/page?q=secret-guest-query', category: 'adult' },
  { url: 'http://adult.test/', category: 'adult' },
  { url: 'http://adult-video.test/watch', category: 'adult' },
  { connect: 'blocked.test:443', category: 'adult' },
  { url: 'http://malware.test/download/payload.exe', category: 'malware' },
  { url: 'http://malware.test/download/payload.exe?again=1', category: 'malware' },
  { url: 'http://csam-canary.test/x', category: 'csam' },
  { url: 'http://vpn-bypass.test/', category: 'bypass' },
];
/** Every name and address a guest used: none may appear on the page. */
const GUEST_TRACES = [GUEST, 'blocked.test', 'adult.test', 'adult-video.test', 'malware.test', 'payload', 'csam-canary', 'vpn-bypass', 'secret-guest-query', '.test'];

/** A config in a fresh folder (the helper's tempConfig sets `journal` itself; this one needs its own). */
function statusConfig(t: { teardown(fn: () => void): void }, prefix: string, admin: string, extra: readonly string[] = []): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), `safespot-${prefix}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [...configLines(), admin, ...extra, `state: { dir: ${join(dir, 'state')} }`, ''].join('\n'));
  return { dir, config };
}

function configLines(): string[] {
  return [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'site: { id: lake-park, name: "Liqeni Artificial <Park>" }',
    'journal: { path: journal.db, recordUrls: true, recordClients: true }',
    'clients: [127.0.0.0/8]',
    'lists:',
    `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    `  - { id: demo-malware, category: malware, kind: urls, source: ${join(DEMO, 'malware.txt')} }`,
    `  - { id: demo-bypass, category: bypass, kind: domains, source: ${join(DEMO, 'bypass.txt')} }`,
    'selftest:',
    '  canaries:',
    '    - { id: adult-canary, category: adult, url: "http://blocked.test/" }',
    '    - { id: csam-check, category: csam, url: "http://csam-canary.test/x" }',
    // Not on any list: this canary fails, and the page must say so.
    '    - { id: malware-canary, category: malware, url: "http://not-listed.example/" }',
  ];
}

/** One guest request through the forward proxy from GUEST; resolves with the status. */
function guest(app: Running, b: { url?: string; connect?: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = b.connect ?? b.url!;
    const req = http.request({
      host: '127.0.0.1',
      port: app.forward,
      localAddress: GUEST,
      method: b.connect ? 'CONNECT' : 'GET',
      path: target,
      headers: { host: b.connect ?? new URL(target).host, connection: 'close' },
    });
    req.on('connect', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

function chromium(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('chromium', args, { timeout: 60_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Text content of the table row marked data-category=c (tags dropped, white space squeezed). */
function rowText(html: string, attr: string, value: string): string | null {
  const m = new RegExp(`<tr data-${attr}="${value}">(.*?)</tr>`, 's').exec(html);
  return m ? m[1]!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim() : null;
}

async function page(app: Running, path: string, headers: Record<string, string> = {}) {
  const r = await request(`http://127.0.0.1:${app.admin}${path}`, { headers });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

t.test('the status page shows what was blocked, by category, and nothing about guests', async (t) => {
  const { dir, config } = statusConfig(t, 'status-page', 'admin: { host: 127.0.0.1, port: 0 }');
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));

  const expected = new Map<string, number>();
  for (const b of BLOCKED) {
    t.equal(await guest(app, b), 403, `${b.url ?? b.connect} is blocked`);
    expected.set(b.category, (expected.get(b.category) ?? 0) + 1);
  }
  const total = BLOCKED.length;
  // The journal writes every 250 ms; give it a few rounds, then load the page once (its cache
  // would keep an earlier, shorter count for 15 s).
  await new Promise((r) => setTimeout(r, 1500));

  const en = await page(app, '/', { 'accept-language': 'en-GB,en;q=0.9' });
  t.equal(en.status, 200);
  t.match(en.headers['content-type'], /^text\/html; charset=utf-8/);
  t.equal(en.headers['content-language'], 'en');
  t.match(en.headers['content-security-policy'], /default-src 'none'/, 'a CSP that allows nothing but inline style');
  t.equal(en.headers['cache-control'], 'no-store');
  t.notMatch(en.body, /<script|src=|<link|@import|url\(/i, 'no script and no external asset');
  t.match(en.body, '<title>WiFi filter status · Liqeni Artificial &lt;Park&gt;</title>', 'the site name, escaped');
  t.match(en.body, /id="filtering" data-active="1">Active</, 'filtering active');
  for (const [category, n] of expected) {
    t.equal(rowText(en.body, 'category', category)?.replace(/^.*? (\d+) (\d+)$/, '$1 $2'), `${n} ${n}`, `${category}: ${n} today and this month`);
  }
  t.equal(rowText(en.body, 'category', 'total'), `Total ${total} ${total}`, 'the total');
  t.match(rowText(en.body, 'category', 'adult'), /^Adult content /, 'category named as the block page names it');
  t.equal(rowText(en.body, 'canary', 'adult-canary'), 'adult-canary Adult content Blocked (pass)');
  t.equal(rowText(en.body, 'canary', 'csam-check'), 'csam-check Child sexual abuse material Blocked (pass)');
  t.equal(rowText(en.body, 'canary', 'malware-canary'), 'malware-canary Malware or phishing Not blocked (fail)', 'the failing canary says so');
  for (const id of ['demo-hotline', 'demo-adult', 'demo-malware', 'demo-bypass']) {
    t.match(en.body, new RegExp(`<code>${id}</code></td><td class="n">\\d+</td><td>\\d+ s ago</td><td><span class="pass">Up to date`), `list ${id}: entries, age, fresh`);
  }
  const metrics = await page(app, '/metrics');
  const fp = /safespot_appliance_info\{site="lake-park",fingerprint="(sha256:[0-9a-f]{64})"\} 1/.exec(metrics.body)?.[1];
  t.ok(fp, 'the scrape names a fingerprint');
  t.match(en.body, `<code id="fingerprint">${fp}</code>`, 'the fingerprint shown is the appliance key');
  t.match(en.body, /<svg class="chart"[^>]*role="img"/, 'a chart');
  const day = new Date().getUTCDate();
  t.match(en.body, new RegExp(`<title>${day}: Adult content ${expected.get('adult')}</title>`), "the chart's column for today");
  for (const trace of GUEST_TRACES) t.notOk(en.body.includes(trace), `no "${trace}" on the page`);

  // Albanian by Accept-Language; ?lang= wins over it; an unknown language gets English.
  const sq = await page(app, '/', { 'accept-language': 'sq-AL,sq;q=0.9,en;q=0.5' });
  t.equal(sq.headers['content-language'], 'sq');
  t.match(sq.body, /id="filtering" data-active="1">Aktiv</);
  t.equal(rowText(sq.body, 'category', 'total'), `Gjithsej ${total} ${total}`);
  t.match(rowText(sq.body, 'category', 'adult'), /^Përmbajtje për të rritur /);
  t.equal(rowText(sq.body, 'canary', 'malware-canary'), 'malware-canary Program keqdashës ose mashtrim Nuk u bllokua (dështoi)');
  for (const trace of GUEST_TRACES) t.notOk(sq.body.includes(trace), `sq: no "${trace}" on the page`);
  t.equal((await page(app, '/?lang=sq', { 'accept-language': 'en' })).headers['content-language'], 'sq', '?lang=sq over Accept-Language');
  t.equal((await page(app, '/?lang=xx', { 'accept-language': 'sq' })).headers['content-language'], 'sq', 'an unknown ?lang= is ignored');
  t.equal((await page(app, '/', { 'accept-language': 'de' })).headers['content-language'], 'en', 'de: English');

  const head = await request(`http://127.0.0.1:${app.admin}/`, { method: 'HEAD' });
  t.equal(head.statusCode, 200);
  t.equal(await head.body.text(), '', 'HEAD: no body');
  const post = await request(`http://127.0.0.1:${app.admin}/`, { method: 'POST', body: 'x' });
  t.equal(post.statusCode, 405);
  await post.body.dump();

  // The journal does hold the guest's URL and address (recordUrls/recordClients are on): the
  // page had them within reach and did not show them.
  const journalSql = await new Promise<string>((resolve) =>
    execFile('sqlite3', [join(dir, 'journal.db'), "SELECT count(*) FROM events WHERE client IS NOT NULL AND url LIKE '%secret-guest-query%'"], (_e, out) => resolve(String(out).trim())),
  );
  t.equal(journalSql, '1', 'the journal holds the guest URL and client the page must not show');

  // Headless Chromium renders it, in each language.
  mkdirSync(SHOTS, { recursive: true });
  for (const c of [
    { lang: 'en', url: '/', total: `Total ${total} ${total}`, adult: 'Adult content', active: 'Active' },
    { lang: 'sq', url: '/', total: `Gjithsej ${total} ${total}`, adult: 'Përmbajtje për të rritur', active: 'Aktiv' },
    { lang: 'en', url: '/?lang=sq', total: `Gjithsej ${total} ${total}`, adult: 'Përmbajtje për të rritur', active: 'Aktiv' },
  ]) {
    const url = `http://127.0.0.1:${app.admin}${c.url}`;
    const dom = await chromium([...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, `--accept-lang=${c.lang}`, '--dump-dom', url]);
    t.equal(dom.code, 0, `chromium ran (${c.lang} ${c.url})`);
    t.match(dom.stdout, `>${c.active}</span>`, `${c.lang} ${c.url}: filtering shown active`);
    t.equal(rowText(dom.stdout, 'category', 'total'), c.total, `${c.lang} ${c.url}: the total as rendered`);
    t.match(rowText(dom.stdout, 'category', 'adult'), `${c.adult} ${expected.get('adult')} ${expected.get('adult')}`, `${c.lang} ${c.url}: adult as rendered`);
    t.match(dom.stdout, /<svg class="chart"/, `${c.lang} ${c.url}: the chart is in the rendered DOM`);
    for (const trace of GUEST_TRACES) t.notOk(dom.stdout.includes(trace), `${c.lang} ${c.url}: no "${trace}" rendered`);
  }
  for (const lang of ['en', 'sq']) {
    const shot = join(SHOTS, `status-${lang}.png`);
    const s = await chromium([
      ...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, `--accept-lang=${lang}`, '--window-size=1000,1500', `--screenshot=${shot}`,
      `http://127.0.0.1:${app.admin}/`,
    ]);
    t.equal(s.code, 0, `${lang}: screenshot taken`);
    const png = readFileSync(shot);
    t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${lang}: a PNG file`);
    t.ok(png.length > 20_000, `${lang}: the rendered page is not blank (${png.length} bytes)`);
  }
});

t.test('with a token: / takes it as a bearer or as a Basic password (GET, HEAD), and nothing else does', async (t) => {
  const { dir, config } = statusConfig(t, 'status-token', 'admin: { host: 127.0.0.1, port: 0, tokenFile: token.txt }');
  const token = 'status-page-test-token-0123456789';
  writeFileSync(join(dir, 'token.txt'), `${token}\n`, { mode: 0o600 });
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

  for (const auth of [undefined, 'Bearer wrong-token-wrong-token-00', `Bearer ${token}x`, basic('staff', `${token}x`), basic(token, ''), `Basic ${token}`, 'Basic !!!!', basic('', '')]) {
    const headers: Record<string, string> = auth ? { authorization: auth } : {};
    const status = await page(app, '/', headers);
    const metrics = await page(app, '/metrics', headers);
    t.equal(status.status, 401, `${auth ?? 'no token'}: / refused`);
    t.equal(metrics.status, 401, `${auth ?? 'no token'}: /metrics refused`);
    t.equal(status.body, metrics.body, `${auth ?? 'no token'}: the same refusal body as /metrics`);
    t.match(status.headers['www-authenticate'], /^Basic realm="safespot venue status"/, '/ asks for Basic, so a browser prompts');
    t.equal(metrics.headers['www-authenticate'], 'Bearer realm="safespot-admin"', '/metrics still asks for a bearer');
    t.notOk(status.body.includes(token), 'no token in a refusal');
  }
  for (const [what, auth] of [['bearer', `Bearer ${token}`], ['Basic, any user', basic('staff', token)], ['Basic, empty user', basic('', token)]] as const) {
    const ok = await page(app, '/', { authorization: auth });
    t.equal(ok.status, 200, `${what}: the page`);
    t.match(ok.body, /id="filtering" data-active="1"/);
    t.notOk(ok.body.includes(token), 'the token is not on the page');
  }
  // HEAD takes Basic too; but Basic opens nothing else: a browser resends it by itself to any
  // request to this origin, so a page elsewhere could make it POST /reload or read /metrics.
  const head = await request(`http://127.0.0.1:${app.admin}/`, { method: 'HEAD', headers: { authorization: basic('staff', token) } });
  await head.body.dump();
  t.equal(head.statusCode, 200, 'HEAD / with Basic');
  const post = await request(`http://127.0.0.1:${app.admin}/`, { method: 'POST', headers: { authorization: basic('staff', token) } });
  await post.body.dump();
  t.equal(post.statusCode, 401, 'POST / with Basic: refused before the route');
  const reload = await request(`http://127.0.0.1:${app.admin}/reload`, { method: 'POST', headers: { authorization: basic('staff', token) } });
  t.equal(reload.statusCode, 401, 'POST /reload with Basic: refused');
  t.equal(reload.headers['www-authenticate'], 'Bearer realm="safespot-admin"');
  await reload.body.dump();
  t.equal((await page(app, '/metrics', { authorization: basic('staff', token) })).status, 401, '/metrics with Basic: refused');
  t.equal((await page(app, '/readyz', { authorization: basic('staff', token) })).status, 401, '/readyz with Basic: refused');
  t.equal((await page(app, '/healthz')).status, 200, '/healthz stays public');

  // A real browser: credentials in the address (what a bookmark or the prompt gives) open the
  // page; without them Chromium gets the 401 and shows no status.
  const url = `http://127.0.0.1:${app.admin}/?lang=en`;
  const withCreds = await chromium([...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, '--dump-dom', url.replace('http://', `http://staff:${token}@`)]);
  t.equal(withCreds.code, 0, 'chromium ran');
  t.match(withCreds.stdout, /id="filtering" data-active="1"/, 'Chromium with the token as its Basic password: the status page');
  const without = await chromium([...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, '--dump-dom', url]);
  t.notMatch(without.stdout, /id="filtering"/, 'Chromium without it: no status shown');
});

t.test('with workers, the primary shows the blocks every worker served', async (t) => {
  const { config } = statusConfig(t, 'status-workers', 'admin: { host: 127.0.0.1, port: 0 }', ['workers: 2']);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  // Several connections, so both workers are likely to take some; the figures must add up either way.
  const some = [BLOCKED[0]!, BLOCKED[1]!, BLOCKED[4]!, BLOCKED[7]!, BLOCKED[1]!, BLOCKED[4]!];
  for (const b of some) t.equal(await guest(app, b), 403, `${b.url ?? b.connect} is blocked`);
  await new Promise((r) => setTimeout(r, 1500));
  const p = await page(app, '/?lang=en');
  t.equal(p.status, 200);
  t.match(p.body, /id="filtering" data-active="1">Active</, 'active: the primary and every worker hold a policy');
  t.equal(rowText(p.body, 'category', 'total'), `Total ${some.length} ${some.length}`, 'the total over the workers');
  t.equal(rowText(p.body, 'category', 'adult')?.replace(/^.*? (\d+) (\d+)$/, '$1 $2'), '3 3');
  t.equal(rowText(p.body, 'category', 'malware')?.replace(/^.*? (\d+) (\d+)$/, '$1 $2'), '2 2');
  t.match(p.body, /<code id="fingerprint">sha256:[0-9a-f]{64}<\/code>/, 'the fingerprint, from the merged scrape');
  for (const trace of GUEST_TRACES) t.notOk(p.body.includes(trace), `no "${trace}" on the page`);
});
