/**
 * A certificate an auditor can file (issue 21, point 8): the signed HTML report of a real
 * `safespot serve` (synthetic lists, blocked HTTP and CONNECT traffic, self-test canaries, a SIGHUP
 * reload on the record) printed to PDF by headless Chromium's print-to-PDF, in English and
 * Albanian. What can be checked mechanically is: the PDF is A4, has the pages it should, its text
 * (pdftotext) holds the venue, the key's fingerprint and the exact verify command, in the page's
 * language; no guest address and no visited URL reaches it, although the journal records both here
 * (recordUrls and recordClients on); and the report still verifies after it was printed.
 *
 * The pages were also looked at (pdftoppm to PNG); set SAFESPOT_KEEP_PDF=DIR to keep the PDFs and
 * the PNGs of their pages there for that.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLI_DEMO_DIR, runCli, serve } from '../helpers/appliance.js';
import { proxyConnect, proxyGet } from '../helpers/blocked-traffic.js';
import { runCmd } from '../helpers/commands.js';

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-extensions', '--no-pdf-header-footer',
];

const have = (cmd: string) => new Promise<boolean>((r) => execFile('sh', ['-c', `command -v ${cmd}`], (e) => r(!e)));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** pdftotext's words joined by single spaces (a long value may wrap across lines in print). */
const flat = (s: string) => s.replace(/\s+/g, ' ');

t.test('the signed HTML report prints to PDF with fingerprint, verify command and venue, in en and sq', async (t) => {
  for (const cmd of ['chromium', 'pdftotext', 'pdfinfo', 'pdftoppm', 'sqlite3']) {
    if (!(await have(cmd))) {
      t.fail(`${cmd} is missing (test/setup-system.sh installs it)`);
      return;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'safespot-audit-pdf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  const journal = join(dir, 'journal.db');
  writeFileSync(
    config,
    [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'site: { id: kafe-ere-tirane, name: "Kafe Ërë, Rruga e Durrësit" }',
      'lists:',
      `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
      `  - { id: venue-malware, category: malware, kind: domains, source: ${join(dir, 'malware.txt')} }`,
      'selftest: { interval: 1h, canaries: [{ id: adult-one, category: adult, url: "http://blocked.test/" }, { id: adult-two, category: adult, host: adult.test }] }',
      `journal: { path: ${journal}, recordUrls: true, recordClients: true }`,
      `state: { dir: ${join(dir, 'state')} }`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'malware.txt'), 'malware.test\nphish.test\n');
  const from = new Date(Date.now() - 60_000).toISOString();
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const key = await runCli(['audit', 'key', '--config', config]);
  t.equal(key.code, 0, key.stderr);
  writeFileSync(join(dir, 'kafe-ere-tirane.pub'), key.stdout);
  const fingerprint = /fingerprint (sha256:[0-9a-f]{64})/.exec(key.stderr)![1]!;

  // Blocked traffic: URLs with a path and a query that must never reach the printed report.
  for (let i = 0; i < 5; i++) t.equal(await proxyGet(app.forward, `http://blocked.test/secret-page-${i}?q=private`), 403);
  t.equal(await proxyGet(app.forward, 'http://adult.test/private/path'), 403);
  t.match(await proxyConnect(app.forward, 'adult-video.test:443'), /^HTTP\/1\.1 403/);
  t.equal(await proxyGet(app.forward, 'http://phish.test/login?user=guest'), 403);
  // A reload on the record (an admin row with the config's SHA-256 in the report).
  app.child.kill('SIGHUP');
  await sleep(1_500);
  t.equal(await proxyGet(app.forward, 'http://blocked.test/after-reload'), 403);
  await sleep(600);
  const raw = await runCmd('sqlite3', [journal, "SELECT COUNT(*) FROM events WHERE url LIKE '%secret-page%' AND client LIKE '127.%'"]);
  t.equal(raw.stdout.toString().trim(), '5', 'the journal does hold URLs and client addresses here');

  const to = new Date(Date.now() + 3_600_000).toISOString();
  const keep = process.env.SAFESPOT_KEEP_PDF;
  if (keep) mkdirSync(keep, { recursive: true });
  const expected = {
    en: ['safespot audit report', 'Verification', 'Fingerprint of the appliance key', 'Command to verify', 'Figures for certification', 'Blocked requests: 9'],
    sq: ['Raport auditimi i safespot', 'Verifikimi', 'Gjurma e çelësit të pajisjes', 'Komanda e verifikimit', 'Shifrat për certifikimin', '(të gjitha listat)', 'Kërkesa të bllokuara: 9', 'Faqe të ndryshme të bllokuara: 4'],
  } as const;
  for (const lang of ['en', 'sq'] as const) {
    const html = join(dir, `report-${lang}.html`);
    const r = await runCli(['audit', 'report', '--config', config, '--from', from, '--to', to, '--format', 'html', '--lang', lang, '--out', html]);
    t.equal(r.code, 0, r.stderr);
    const pdf = join(dir, `report-${lang}.pdf`);
    const profile = mkdtempSync(join(dir, 'profile-'));
    const c = await runCmd('chromium', [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, `--print-to-pdf=${pdf}`, `file://${html}`], { timeoutMs: 90_000 });
    t.equal(c.code, 0, `chromium printed the ${lang} report: ${c.stderr.slice(-400)}`);
    t.ok(statSync(pdf).size > 10_000, `${lang}: a PDF of some size`);
    t.equal(readFileSync(pdf).subarray(0, 5).toString('latin1'), '%PDF-');

    const info = (await runCmd('pdfinfo', [pdf])).stdout.toString();
    const pages = Number(/^Pages:\s+(\d+)/m.exec(info)?.[1]);
    // A4 is 595.28 x 841.89 pt (the report's @page size).
    t.match(info, /Page size:\s+59[45]\.\d+ x 84[12]\.\d+ pts \(A4\)/, `${lang}: printed on A4`);
    t.ok(pages >= 2 && pages <= 6, `${lang}: ${pages} pages (the report with its certification figures)`);
    const text = (await runCmd('pdftotext', ['-enc', 'UTF-8', pdf, '-'])).stdout.toString('utf8');
    const words = flat(text);
    t.ok(words.includes('Kafe Ërë, Rruga e Durrësit'), `${lang}: the venue`);
    // In the verification box, whole on one line, and at the foot of every page with "k / N".
    t.equal(words.split(fingerprint).length - 1, pages + 1, `${lang}: the key's fingerprint, whole, in the box and on each of the ${pages} pages`);
    t.ok(words.includes(`safespot audit verify --key kafe-ere-tirane.pub report-${lang}.html`), `${lang}: the verify command, whole`);
    for (const s of expected[lang]) t.ok(words.includes(s), `${lang}: "${s}"`);
    if (lang === 'sq') {
      for (const s of ['Verification', 'Command to verify', 'Figures for certification', 'Blocked requests', '(all lists)', 'Self-tests']) t.notOk(words.includes(s), `sq: no English "${s}"`);
    }
    for (const secret of ['secret-page', 'private', 'blocked.test', 'adult-video.test', 'phish.test', '127.0.0.1']) t.notOk(text.includes(secret), `${lang}: no "${secret}" (URL or guest address) in the PDF`);
    // Every page is the same A4 page and carries text (no blank page from a bad break).
    const perPage = text.split('\f').filter((p, i, a) => i < a.length - 1 || p.trim() !== '');
    t.equal(perPage.length, pages, `${lang}: one text block per page`);
    perPage.forEach((p, i) => {
      t.match(flat(p), new RegExp(`(^| )${i + 1} ?/ ?${pages}( |$)`), `${lang}: page ${i + 1} says "${i + 1} / ${pages}"`);
      t.ok(flat(p).includes(fingerprint), `${lang}: page ${i + 1} names the key's fingerprint`);
      t.ok(flat(p).replace(fingerprint, '').replace(/\d+ ?\/ ?\d+/, '').trim().length > 200, `${lang}: page ${i + 1} is not blank`);
    });
    t.notOk(words.includes('file://'), `${lang}: no browser header or footer with the file's path`);

    const png = join(dir, `page-${lang}`);
    const p = await runCmd('pdftoppm', ['-png', '-r', '60', pdf, png]);
    t.equal(p.code, 0, p.stderr);
    const shots = readdirSync(dir).filter((f) => f.startsWith(`page-${lang}`) && f.endsWith('.png'));
    t.equal(shots.length, pages, `${lang}: a PNG of each page`);
    if (keep) for (const f of [pdf, html, ...shots.map((s) => join(dir, s))]) copyFileSync(f, join(keep, f.split('/').pop()!));
  }

  // Printing changes nothing: the report still verifies, also against the journal.
  app.child.kill('SIGTERM');
  await app.exited;
  for (const lang of ['en', 'sq']) {
    const v = await runCli(['audit', 'verify', '--key', join(dir, 'kafe-ere-tirane.pub'), join(dir, `report-${lang}.html`), '--journal', journal]);
    t.equal(v.code, 0, `${lang}: verifies\n${v.stdout}`);
  }
});
