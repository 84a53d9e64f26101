/**
 * Headless Chromium through an intercepting safespot: it trusts the safespot CA only through an NSS
 * database made with certutil (libnss3-tools) in a throwaway HOME, and then sees the block page
 * over HTTPS and a clean allowed page. Without that database it gets a certificate error page and
 * never the content.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { runCmd } from '../helpers/commands.js';
import { startInterceptRig } from '../helpers/intercept-rig.js';

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-extensions',
];

function chromium(home: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('chromium', args, { timeout: 60_000, maxBuffer: 8 << 20, env: { ...process.env, HOME: home } }, (err, stdout, stderr) => {
      resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const have = (cmd: string): Promise<boolean> => new Promise((r) => execFile('sh', ['-c', `command -v ${cmd}`], (e) => r(!e)));

t.test('Chromium trusting the safespot CA sees HTTPS block pages and clean pages', async (t) => {
  if (!(await have('chromium')) || !(await have('certutil'))) {
    t.fail('chromium or certutil is missing (test/setup-system.sh installs chromium and libnss3-tools)');
    return;
  }
  const rig = await startInterceptRig(t);
  const trusting = join(rig.dir, 'home-trusting');
  const nssdb = join(trusting, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  const made = await runCmd('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  t.equal(made.code, 0, `NSS database created ${made.stderr}`);
  const added = await runCmd('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'safespot', '-i', rig.caFile]);
  t.equal(added.code, 0, `safespot CA added as a trusted web CA ${added.stderr}`);
  const proxy = `--proxy-server=http://127.0.0.1:${rig.forward}`;
  const open = (home: string, url: string, lang = 'en') =>
    chromium(home, [...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(rig.dir, 'profile-'))}`, proxy, `--accept-lang=${lang}`, '--dump-dom', url]);

  const blocked = await open(trusting, 'https://blocked.test/some/page?q=secret');
  t.equal(blocked.code, 0, 'chromium ran');
  t.match(blocked.stdout, '<title>Page blocked</title>', 'the block page, over HTTPS');
  t.match(blocked.stdout, 'Adult content');
  t.match(blocked.stdout, 'wifi-help@venue.test');
  t.notMatch(blocked.stdout, /blocked\.test|secret/, 'no URL echoed');

  const albanian = await open(trusting, 'https://hotline-canary.test/page/1.html', 'sq');
  t.match(albanian.stdout, '<title>Faqja u bllokua</title>', 'a page-level hashed entry over HTTPS, in the language asked for');

  const clean = await open(trusting, 'https://allowed.test/hello');
  t.match(clean.stdout, 'hello from https', 'the allowed page, clean');
  t.notMatch(clean.stdout, /Page blocked|could not prove/);

  const badUpstream = await open(trusting, 'https://expired.test/hello');
  t.match(badUpstream.stdout, 'could not prove its identity', 'an expired upstream certificate: the explanatory page');
  t.notMatch(badUpstream.stdout, 'hello from https');

  // A browser that does not trust the CA: an interstitial, never the content or our page.
  const untrusting = join(rig.dir, 'home-untrusting');
  mkdirSync(untrusting, { recursive: true });
  for (const url of ['https://allowed.test/hello', 'https://blocked.test/']) {
    const r = await open(untrusting, url);
    t.notMatch(r.stdout, /hello from https|Page blocked/, `${url}: no content without the CA`);
    t.match(r.stderr, /net_error -202\b/, `${url}: Chromium reports ERR_CERT_AUTHORITY_INVALID (-202)`);
  }
});
