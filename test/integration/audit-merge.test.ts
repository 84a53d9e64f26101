/**
 * `safespot audit merge` (issue 20, point 3) with real processes only: three real `safespot serve`
 * (three venues, each its own state dir, so its own signing key and site-tag key), real blocked
 * traffic (forward proxy, the transparent HTTP listener, a listed image from a local origin), one
 * venue restarted (down time), their signed json reports from `audit report --config`, merged.
 *
 * Proven: each venue's row is exactly its own report's figures, and each report is exactly what its
 * journal gives (`audit verify --key K REPORT --journal J`, exit 0); the city's counts are the sums;
 * the filtering share is weighted by measured time and distinct sites are shown per venue, never as
 * a sum; a real Prometheus scraping the three venues gives the same per-venue and city figures
 * through `audit report --prometheus` (the other way to the city table); text, json and csv; --keys DIR. Refused (exit 1, the file named): one byte edited, a key not
 * given, one venue twice over overlapping periods, one site signed by two keys, an unreadable file,
 * not a report, an unsigned report, a csv report, different periods (accepted with
 * --allow-different-periods, each period shown). Bad usage: exit 2, every problem listed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { CLI_DEMO_DIR, runCli, serve, tempConfig, type Running } from '../helpers/appliance.js';
import { havePrometheus } from '../helpers/prometheus.js';
import { api, freePort, startProm, waitFor } from '../helpers/prom-process.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A GET through a listener: absolute-form to the forward proxy, origin-form with Host to `http`. */
function get(port: number, url: string, transparent = false): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'GET', path: transparent ? u.pathname : url, headers: { host: u.host, connection: 'close' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

interface Venue {
  id: string;
  dir: string;
  config: string;
  run: Running;
  admin: number;
  key: string;
  fingerprint: string;
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

t.test('audit merge: signed venue reports in one city table, and every refusal', async (t) => {
  if (!havePrometheus()) throw new Error('prometheus is not installed: run `bash test/setup-system.sh` as root (or `apt-get install -y prometheus`)');
  // The origin of a listed image (sha256 list, category csam), generated now: synthetic noise.
  const image = await sharp(randomBytes(32 * 32 * 3), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
  const origin = createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(image.length) }).end(image));
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  t.teardown(() => origin.close());
  const originPort = (origin.address() as { port: number }).port;

  const keysDir = tempConfig(t, 'merge-keys', []).dir;
  mkdirSync(join(keysDir, 'keys'));
  const venues: Record<string, Venue> = {};
  const names: Record<string, string> = { lake: 'Liqeni Artificial', square: 'Sheshi Skënderbej', park: 'Parku i Madh' };
  const from = new Date(Date.now() - 5_000).toISOString();
  for (const id of Object.keys(names)) {
    const admin = await freePort(); // fixed, so the central Prometheus finds park again after its restart
    const { dir, config } = tempConfig(t, `merge-${id}`, [
      'listeners: { forward: { host: 127.0.0.1, port: 0 }, http: { host: 127.0.0.1, port: 0 } }',
      `admin: { host: 127.0.0.1, port: ${admin} }`,
      `site: { id: ${id}, name: "${names[id]}" }`,
      `upstream: { hosts: { img.test: "127.0.0.1:${originPort}" } }`,
      'lists:',
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
      '  - { id: mal, category: malware, kind: domains, source: mal.txt }',
      '  - { id: hot-sha256, category: csam, kind: sha256, source: hot.sha256 }',
      'selftest: { interval: 1h, canaries: [{ id: adult-one, category: adult, url: "http://blocked.test/" }] }',
    ]);
    writeFileSync(join(dir, 'mal.txt'), 'malware.test\n');
    writeFileSync(join(dir, 'hot.sha256'), `${createHash('sha256').update(image).digest('hex')}\n`);
    const run = await serve(config);
    const k = await runCli(['audit', 'key', '--config', config]);
    t.equal(k.code, 0, k.stderr);
    const key = join(keysDir, 'keys', `${id}.pub`);
    writeFileSync(key, k.stdout);
    venues[id] = { id, dir, config, run, admin, key, fingerprint: /fingerprint (sha256:[0-9a-f]{64})/.exec(k.stderr)![1]! };
  }
  t.teardown(() => {
    for (const v of Object.values(venues)) v.run.child.kill('SIGKILL');
  });
  const [lake, square, park] = [venues.lake!, venues.square!, venues.park!];
  t.equal(new Set(Object.values(venues).map((v) => v.fingerprint)).size, 3, 'three state dirs, three keys');

  // A central Prometheus scraping the three venues (1 s), each labelled with its venue, for the other
  // way to the city figures (`audit report --prometheus`) over the same traffic.
  const promPort = await freePort();
  const centre = `http://127.0.0.1:${promPort}`;
  const targets = Object.values(venues).map((v) => `      - { targets: ["127.0.0.1:${v.admin}"], labels: { venue: ${v.id} } }`);
  writeFileSync(join(keysDir, 'prom.yml'), ['global: { scrape_interval: 1s, scrape_timeout: 900ms }', 'scrape_configs:', '  - job_name: safespot', '    static_configs:', ...targets, ''].join('\n'));
  const prom = await startProm([`--config.file=${join(keysDir, 'prom.yml')}`, `--storage.tsdb.path=${join(keysDir, 'tsdb')}`], promPort);
  t.teardown(() => prom.stop());
  const blocksAtCentre = async (id: string): Promise<number | undefined> => {
    const r = await api(centre, `sum(safespot_requests_total{venue="${id}", action="block", listener!="selftest"})`);
    return r.length === 1 ? Number(r[0]!.value![1]) : undefined;
  };
  const arrived = (id: string, n: number) => waitFor(`${n} blocks of ${id} at the centre`, async () => (await blocksAtCentre(id)) === n, 60_000);
  for (const id of Object.keys(venues)) await arrived(id, 0);

  // Traffic: lake 3 adult + 1 malware (forward) + 1 image; square 2 adult (forward) + 2 adult over
  // the transparent listener (two hosts) + 2 images; park 1 adult, restarted (down 2 s), then 1 malware.
  const blocked = async (v: Venue, url: string, n: number, transparent = false) => {
    for (let i = 0; i < n; i++) t.equal(await get(transparent ? v.run.ports.http! : v.run.forward, url, transparent), 403, `${v.id}: ${url} blocked`);
  };
  await blocked(lake, 'http://blocked.test/', 3);
  await blocked(lake, 'http://malware.test/x', 1);
  await blocked(lake, 'http://img.test/a.png', 1);
  await blocked(square, 'http://adult.test/a', 2);
  await blocked(square, 'http://adult-video.test/v', 1, true);
  await blocked(square, 'http://adult-images.test/i', 1, true);
  await blocked(square, 'http://img.test/b.png', 2);
  await blocked(park, 'http://blocked.test/', 1);
  await arrived('park', 1); // scraped before the stop (a block after the last scrape never reaches Prometheus)
  park.run.child.kill('SIGTERM');
  t.equal(await park.run.exited, 0, 'park stops');
  await sleep(2_000);
  park.run = await serve(park.config);
  await arrived('park', 0); // the centre sees the new process (counters at 0) before its next block
  await blocked(park, 'http://malware.test/y', 1);
  await sleep(800); // flushed to the journals
  await arrived('lake', 4);
  await arrived('square', 4);
  await arrived('park', 1); // its counters restarted at 0

  // The period ends in the past, once the centre holds samples beyond it.
  const toMs = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  const to = new Date(toMs).toISOString();
  await sleep(toMs - Date.now() + 50);
  for (const id of Object.keys(venues)) {
    await waitFor(`${id}'s samples past the period end`, async () => {
      const r = await api(centre, `timestamp(up{venue="${id}"})`);
      return r.length === 1 && Number(r[0]!.value![1]) * 1000 > toMs + 1500;
    });
  }
  const report = async (v: Venue, name: string, extra: string[] = [], period = ['--from', from, '--to', to]) => {
    const out = join(v.dir, name);
    const r = await runCli(['audit', 'report', '--config', v.config, ...period, '--format', 'json', '--out', out, ...extra]);
    t.equal(r.code, 0, `${v.id}: ${name} made: ${r.stderr}`);
    return out;
  };
  const files = { lake: await report(lake, 'lake.json'), square: await report(square, 'square.json'), park: await report(park, 'park.json') };
  const own: Record<string, Json> = {};
  for (const v of [lake, square, park]) {
    const file = files[v.id as keyof typeof files];
    own[v.id] = JSON.parse(readFileSync(file, 'utf8')) as Json;
    const check = await runCli(['audit', 'verify', '--key', v.key, file, '--journal', join(v.dir, 'journal.db')]);
    t.equal(check.code, 0, `${v.id}: its report is what its journal gives, every figure (${check.stdout.trim().split('\n').pop()})`);
  }
  t.equal(own.lake!.blockedRequests.total, 4, 'lake: 4 blocked requests in its own report');
  t.equal(own.square!.blockedRequests.total, 4);
  t.equal(own.park!.blockedRequests.total, 2);
  t.ok(own.park!.filtering.downSeconds >= 2, `park's restart is down time in its report (${own.park!.filtering.downSeconds} s)`);

  const keyArgs = [lake, square, park].flatMap((v) => ['--key', v.key]);
  const all = [files.lake, files.square, files.park];
  const merged = await runCli(['audit', 'merge', ...keyArgs, '--format', 'json', ...all]);
  t.equal(merged.code, 0, `merged: ${merged.stderr}`);
  const m = JSON.parse(merged.stdout) as Json;
  t.equal(m.signed, false, 'the merge says it is unsigned');
  t.match(m.note, /remains the evidence/);
  t.same(m.period, { from: new Date(from).toISOString(), to: new Date(to).toISOString(), common: true });
  t.same(m.venues.map((v: Json) => v.site.id), ['lake', 'square', 'park'], 'one row per venue, as given');

  // Each row is exactly its own report's figures.
  for (const [i, id] of ['lake', 'square', 'park'].entries()) {
    const r = own[id]!;
    const f = m.venues[i].figures as Json;
    const v = m.venues[i] as Json;
    t.equal(v.key.fingerprint, venues[id]!.fingerprint, `${id}: verified by its key`);
    t.same(v.site, { id, name: names[id] }, `${id}: site from the signed basis`);
    t.same(f.blockedRequests, r.blockedRequests, `${id}: blocked requests by category = its report`);
    t.same(f.blockedRequestsByListener, r.certification.blockedRequestsByListener, `${id}: by listener = its report`);
    t.same(f.blockedImages, { total: r.blockedImages.total, byCategory: r.blockedImages.byCategory, byMatch: r.blockedImages.byMatch }, `${id}: images = its report`);
    t.same(f.listHits, r.certification.listHits, `${id}: hits per list = its report`);
    t.same(f.distinctBlockedSites, { total: r.certification.distinctBlockedSites.total, untaggedEvents: r.certification.distinctBlockedSites.untaggedEvents }, `${id}: distinct sites = its report`);
    t.same(f.filtering, { ...(({ gaps: _g, note: _n, ...x }) => x)(r.filtering), measuredSeconds: r.period.seconds }, `${id}: filtering = its report`);
    t.same(f.selftests, { passed: r.selftests.passed, failed: r.selftests.failed }, `${id}: self-tests = its report`);
    t.equal(v.period.measuredUntil, r.period.measuredUntil);
  }
  t.same(m.venues[1].figures.blockedRequestsByListener, { forward: 2, http: 2, tls: 0, dns: 0 }, 'square: 2 forward, 2 transparent');
  t.same(m.venues[1].figures.blockedImages.byCategory, { adult: 0, malware: 0, csam: 2 }, 'square: 2 listed images');

  // The city: sums where they are sums, computed here from the reports themselves.
  const sum = (pick: (r: Json) => number) => ['lake', 'square', 'park'].reduce((a, id) => a + pick(own[id]!), 0);
  const c = m.city as Json;
  t.equal(c.venues, 3);
  t.equal(c.blockedRequests.total, sum((r) => r.blockedRequests.total), 'city blocked requests = the sum of the reports');
  t.equal(c.blockedRequests.total, 10, 'and the traffic sent');
  for (const cat of ['adult', 'malware', 'csam']) t.equal(c.blockedRequests.byCategory[cat], sum((r) => r.blockedRequests.byCategory[cat]), `city ${cat} = the sum`);
  for (const l of ['forward', 'http', 'tls', 'dns']) t.equal(c.blockedRequestsByListener[l], sum((r) => r.certification.blockedRequestsByListener[l]), `city ${l} = the sum`);
  t.equal(c.blockedImages.total, 3, 'city images: 1 + 2');
  t.equal(c.blockedImages.byMatch.sha256, sum((r) => r.blockedImages.byMatch.sha256));
  for (const l of ['demo-adult', 'mal', 'hot-sha256']) t.same(c.listHits[l].total, sum((r) => r.certification.listHits[l].total), `city hits of ${l} = the sum`);
  t.equal(c.selftests.passed, sum((r) => r.selftests.passed), 'city self-tests = the sum');
  t.ok(c.selftests.passed >= 4, 'a start self-test per serve (park twice)');
  t.equal(c.filtering.measuredSeconds, sum((r) => r.period.seconds));
  t.equal(c.filtering.activeFraction, sum((r) => r.filtering.activeSeconds) / sum((r) => r.period.seconds), 'city filtering share: weighted by measured time');
  const mean = sum((r) => r.filtering.activeFraction) / 3;
  t.not(c.filtering.activeFraction, sum((r) => r.filtering.activeFraction), 'not the sum of shares');
  t.ok(c.filtering.activeFraction < 1 && mean < 1, 'park\'s down time shows in the city share');
  const sites = [lake, square, park].map((v) => own[v.id]!.certification.distinctBlockedSites.total as number);
  t.same(sites, [2, 3, 2], 'distinct sites per venue (lake and park: blocked.test, malware.test; square: three adult hosts; images are not sites)');
  t.same(c.distinctBlockedSites.total, null, 'no city total of distinct sites');
  // The true city figure is 5 (blocked.test and malware.test at two venues), the sum 7: hence bounds only.
  t.same([c.distinctBlockedSites.atLeast, c.distinctBlockedSites.atMost], [3, 7], 'only the bounds: the largest venue and the sum');
  t.match(c.distinctBlockedSites.note, /not summed/);
  t.ok(m.notSummed.some((s: string) => /weighted by measured time/.test(s)));

  // The other way: the centre's figures per venue and for the city are the merge's.
  const central = await runCli(['audit', 'report', '--prometheus', centre, '--venue-label', 'venue', '--from', from, '--to', to]);
  t.equal(central.code, 0, `the city report from the centre: ${central.stderr}`);
  const p = JSON.parse(central.stdout) as Json;
  const nonZero = (m: Record<string, number>) => Object.fromEntries(Object.entries(m).filter(([, n]) => n > 0));
  for (const [i, id] of ['lake', 'square', 'park'].entries()) {
    const pv = (p.venues as Json[]).find((v) => v.venue === id)!;
    const f = m.venues[i].figures as Json;
    t.equal(pv.blockedRequests.total, f.blockedRequests.total, `${id}: blocked requests, centre = merge (${f.blockedRequests.total})`);
    t.same(nonZero(pv.blockedRequests.byCategory), nonZero(f.blockedRequests.byCategory), `${id}: by category, centre = merge`);
    t.equal(pv.blockedImages.total, f.blockedImages.total, `${id}: blocked images, centre = merge`);
    t.same(nonZero(pv.blockedImages.byMatch), nonZero(f.blockedImages.byMatch), `${id}: images by match, centre = merge`);
    t.equal(pv.monitoredRequests.total, f.monitored.requests, `${id}: monitored, centre = merge`);
  }
  t.equal(p.city.blockedRequests.total, c.blockedRequests.total, 'the city: centre = merge');
  t.same(nonZero(p.city.blockedRequests.byCategory), nonZero(c.blockedRequests.byCategory));
  t.equal(p.city.blockedImages.total, c.blockedImages.total);
  t.ok((p.venues as Json[]).find((v) => v.venue === 'park')!.restarts.length === 1, 'the centre saw park restart (its counters reset)');

  // Text (the default) and CSV, and --keys DIR.
  const text = await runCli(['audit', 'merge', '--keys', join(keysDir, 'keys'), ...all]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^safespot audit merge: 3 signed report\(s\), period /);
  t.match(text.stdout, /Derived and unsigned/);
  t.match(text.stdout, /\ncity \(sum\)\s+10\s+/, 'text: the city row of blocked requests');
  t.match(text.stdout, /\nlake\s+4\s+/, 'text: lake\'s row');
  t.match(text.stdout, /Distinct blocked sites \(per venue; the city figure is NOT their sum\)/);
  t.match(text.stdout, /\ncity\s+between 3 and 7/);
  t.match(text.stdout, /city \(weighted\)\s+\d+\.\d\d%/);
  const csv = await runCli(['audit', 'merge', ...keyArgs, '--format', 'csv', ...all]);
  t.equal(csv.code, 0, csv.stderr);
  const rows = csv.stdout.trim().split('\r\n').map((l) => l.split(','));
  t.same(rows[0], ['venue', 'section', 'key', 'subkey', 'value']);
  t.same(rows.find((r) => r[0] === '(city)' && r[1] === 'blocked_requests' && r[2] === 'total'), ['(city)', 'blocked_requests', 'total', '', '10']);
  t.same(rows.find((r) => r[0] === 'square' && r[1] === 'blocked_requests' && r[3] === 'http'), ['square', 'blocked_requests', 'listener', 'http', '2']);
  t.same(rows.find((r) => r[0] === '(city)' && r[1] === 'distinct_blocked_sites' && r[2] === 'total'), ['(city)', 'distinct_blocked_sites', 'total', '', ''], 'CSV: no city total of distinct sites');

  const refused = async (args: string[], file: string, why: RegExp, what: string) => {
    const r = await runCli(['audit', 'merge', ...args]);
    t.equal(r.code, 1, `${what}: exit 1`);
    t.equal(r.stdout, '', `${what}: no table`);
    t.match(r.stderr, new RegExp(`- ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${why.source}`), `${what}: ${r.stderr.trim().split('\n').slice(1).join(' | ')}`);
    return r;
  };

  // One byte of a report edited: lake's "total": 4 becomes 5.
  const edited = join(lake.dir, 'lake-edited.json');
  const text0 = readFileSync(files.lake, 'utf8');
  const at = text0.indexOf('"total": 4');
  t.ok(at > 0);
  writeFileSync(edited, text0.slice(0, at) + '"total": 5' + text0.slice(at + 10));
  t.equal(Buffer.compare(Buffer.from(readFileSync(edited)), Buffer.from(text0)) !== 0 && readFileSync(edited).length === Buffer.byteLength(text0), true, 'one byte differs');
  await refused([...keyArgs, edited, files.square, files.park], edited, /the signature does not verify .*changed after signing/, 'one byte edited');

  // A key not given: park's.
  await refused(['--key', lake.key, '--key', square.key, ...all], files.park, /signed by a key not given: the report names fingerprint sha256:[0-9a-f]{64} \(site "park"\)/, 'key not given');

  // The same venue twice, overlapping: a second lake report of a shorter period inside the first.
  const lake2 = await report(lake, 'lake-again.json', [], ['--from', new Date(Date.parse(from) + 1000).toISOString(), '--to', to]);
  await refused([...keyArgs, '--allow-different-periods', files.lake, lake2, files.square], lake2, /the same appliance \(safespot\/lake, sha256:[0-9a-f]{64}\) as .*lake\.json over an overlapping period.*counted twice/, 'same venue twice');
  const copy = join(lake.dir, 'lake-copy.json');
  copyFileSync(files.lake, copy);
  await refused([...keyArgs, files.lake, copy], copy, /the same appliance/, 'the same report under two names');

  // Different periods: refused; with --allow-different-periods summed, each period shown.
  const parkLater = await report(park, 'park-later.json', [], ['--from', new Date(Date.parse(from) + 2000).toISOString(), '--to', to]);
  await refused([...keyArgs, files.lake, files.square, parkLater], parkLater, /its period \(.*\) is not that of .*lake\.json.*--allow-different-periods/, 'a different period');
  const allowed = await runCli(['audit', 'merge', ...keyArgs, '--allow-different-periods', '--format', 'json', files.lake, files.square, parkLater]);
  t.equal(allowed.code, 0, allowed.stderr);
  const a = JSON.parse(allowed.stdout) as Json;
  t.equal(a.period.common, false, 'not one common period, and it says so');
  t.same(a.venues.map((v: Json) => v.period.from), [new Date(from).toISOString(), new Date(from).toISOString(), new Date(Date.parse(from) + 2000).toISOString()], 'each venue\'s period');
  const allowedText = await runCli(['audit', 'merge', ...keyArgs, '--allow-different-periods', files.lake, files.square, parkLater]);
  t.match(allowedText.stdout, /NOT one common period/);

  // One site id signed by two keys over overlapping periods: a second box (its own state dir) that says it is "lake".
  const { dir: twinDir, config: twinConfig } = tempConfig(t, 'merge-twin', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'site: { id: lake }',
    `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }]`,
  ]);
  const twin = await serve(twinConfig);
  t.teardown(() => void twin.child.kill('SIGKILL'));
  const twinKey = join(twinDir, 'twin.pub');
  writeFileSync(twinKey, (await runCli(['audit', 'key', '--config', twinConfig])).stdout);
  const twinReport = join(twinDir, 'twin.json');
  t.equal((await runCli(['audit', 'report', '--config', twinConfig, '--from', from, '--to', to, '--out', twinReport])).code, 0);
  await refused([...keyArgs, '--key', twinKey, files.lake, twinReport], twinReport, /the site "lake" of .*lake\.json over an overlapping period, signed by another key/, 'one site, two keys');

  // Unreadable, not a report, unsigned, csv.
  const missing = join(lake.dir, 'no-such.json');
  await refused([...keyArgs, files.lake, missing], missing, /cannot read it: ENOENT/, 'an unreadable file');
  const notReport = join(lake.dir, 'hello.json');
  writeFileSync(notReport, '{"hello": 1}\n');
  await refused([...keyArgs, files.lake, notReport], notReport, /not a safespot report/, 'a JSON file that is not a report');
  const prose = join(lake.dir, 'notes.txt');
  writeFileSync(prose, 'minutes of the meeting\n');
  await refused([...keyArgs, files.lake, prose], prose, /not a safespot report \(not JSON\)/, 'not JSON');
  const unsigned = join(lake.dir, 'unsigned.json');
  const u = await runCli(['audit', 'report', '--journal', join(lake.dir, 'journal.db'), '--from', from, '--to', to]);
  writeFileSync(unsigned, u.stdout);
  await refused([...keyArgs, unsigned], unsigned, /the report is not signed/, 'an unsigned report');
  const csvReport = join(lake.dir, 'lake.csv');
  t.equal((await runCli(['audit', 'report', '--config', lake.config, '--from', from, '--to', to, '--format', 'csv', '--out', csvReport])).code, 0);
  await refused([...keyArgs, csvReport], csvReport, /a csv report: merge reads json reports/, 'a csv report');
  // Every refused file is listed, not only the first.
  const many = await refused([...keyArgs, edited, missing, notReport, files.square], edited, /the signature does not verify/, 'several at once');
  t.match(many.stderr, /refused 3 report\(s\)/);
  t.match(many.stderr, /no-such\.json: cannot read/);
  t.match(many.stderr, /hello\.json: not a safespot report/);

  // Usage: exit 2 and every problem.
  const usage = await runCli(['audit', 'merge', '--format', 'xml', '--key', join(keysDir, 'nope.pub'), '--keys', join(keysDir, 'nope-dir')]);
  t.equal(usage.code, 2, 'bad usage: exit 2');
  t.match(usage.stderr, /give the venue reports to merge/);
  t.match(usage.stderr, /--format must be one of text, json, csv/);
  t.match(usage.stderr, /key .*nope\.pub: /);
  t.match(usage.stderr, /--keys .*nope-dir: /);
  const noKeys = await runCli(['audit', 'merge', files.lake, files.lake]);
  t.equal(noKeys.code, 2);
  t.match(noKeys.stderr, /--key KEYFILE \(repeatable\) or --keys DIR is required/);
  t.match(noKeys.stderr, /lake\.json is given twice/);
  const badKey = join(keysDir, 'bad.pub');
  writeFileSync(badKey, 'not a key\n');
  const bad = await runCli(['audit', 'merge', '--key', badKey, files.lake]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /bad\.pub: a verifier key is/);
  const help = await runCli(['audit', 'merge', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout + help.stderr, /safespot audit merge \(--key KEYFILE/);
});
