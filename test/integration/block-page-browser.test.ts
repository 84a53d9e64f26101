/**
 * What a guest sees: headless Chromium, configured to use safespot as its proxy, opens blocked pages
 * and renders the block page in the language it asks for. The DOM is read back after rendering and a
 * screenshot is taken (and checked to be a real, non-empty PNG).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_DEMO_DIR as DEMO, serve, tempConfig } from '../helpers/appliance.js';

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-extensions',
];

function chromium(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('chromium', args, { timeout: 60_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

t.test('Chromium through the forward proxy renders a localised block page', async (t) => {
  const have = await new Promise<boolean>((r) => execFile('sh', ['-c', 'command -v chromium'], (e) => r(!e)));
  if (!have) {
    t.fail('chromium is missing (test/setup-system.sh installs the Debian package)');
    return;
  }
  const { dir, config } = tempConfig(t, 'browser', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: null',
    'lists:',
    `  - { id: demo-hotline, category: csam, kind: hashed-urls, source: ${join(DEMO, 'hotline.txt')} }`,
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }`,
    'blockPage: { contact: "wifi-help@venue.test", languages: [en, sq] }',
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const proxy = `--proxy-server=http://127.0.0.1:${app.forward}`;

  const cases = [
    { lang: 'en', url: 'http://blocked.test/some/page?q=secret', title: 'Page blocked', category: 'Adult content' },
    { lang: 'sq', url: 'http://blocked.test/', title: 'Faqja u bllokua', category: 'Përmbajtje për të rritur' },
    { lang: 'en', url: 'http://csam-canary.test/x', title: 'Page blocked', category: 'Child sexual abuse material', splash: /may contain images of child sexual abuse/ },
    { lang: 'sq', url: 'http://csam-canary.test/x', title: 'Faqja u bllokua', category: 'Material i abuzimit seksual të fëmijëve', splash: /abuzimit seksual/ },
    { lang: 'de', url: 'http://blocked.test/', title: 'Page blocked', category: 'Adult content' },
  ];
  for (const c of cases) {
    const profile = mkdtempSync(join(dir, 'profile-'));
    const dom = await chromium([...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, proxy, `--accept-lang=${c.lang}`, '--dump-dom', c.url]);
    t.equal(dom.code, 0, `chromium ran (${c.lang} ${c.url})`);
    t.match(dom.stdout, new RegExp(`<title>${c.title}</title>`), `${c.lang}: title`);
    t.match(dom.stdout, c.category, `${c.lang}: category shown`);
    t.match(dom.stdout, /<code>[0-9A-Z]{5}-[0-9A-Z]{5}<\/code>/, `${c.lang}: a reference code`);
    t.match(dom.stdout, 'wifi-help@venue.test', `${c.lang}: the venue contact`);
    if (c.splash) t.match(dom.stdout, c.splash, `${c.lang}: hotline splash text for csam`);
    t.notMatch(dom.stdout, /blocked\.test|csam-canary|secret|127\.0\.0\.1/, `${c.lang}: no URL or address echoed on the page`);
  }

  const shot = join(dir, 'block.png');
  const profile = mkdtempSync(join(dir, 'profile-'));
  const s = await chromium([...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, proxy, '--window-size=900,700', `--screenshot=${shot}`, 'http://blocked.test/']);
  t.equal(s.code, 0, 'screenshot taken');
  const png = readFileSync(shot);
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG file');
  t.ok(png.length > 5000, `the rendered page is not blank (${png.length} bytes)`);

  // HTTPS without interception: the browser gets a refused tunnel, never content.
  const https = await chromium([...CHROMIUM_FLAGS, `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, proxy, '--dump-dom', 'https://blocked.test/']);
  t.notMatch(https.stdout, /Page blocked|<main>/, 'a blocked HTTPS host shows the browser error page, not content');
});
