/**
 * The pure parts of the image tap: magic-byte sniffing, declared image types, the placeholder PNG,
 * and the onImage hook of createPolicyHooks over a real policy with an injected scanner.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import t from 'tap';
import { nullObserver } from '../../audit/metrics.js';
import type { ScannedImageHashes } from '../../policy/image-lists.js';
import { compilePolicy, PolicyHolder } from '../../policy/policy.js';
import { declaredImage, mayBeImage, mediaType, PLACEHOLDER_PNG, sniffImage } from '../../proxy/image-tap.js';
import { createPolicyHooks } from '../../proxy/policy-hooks.js';

const bytes = (...parts: Array<number[] | string>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : p)));
const bmp = (dib: number): Uint8Array => {
  const b = new Uint8Array(26);
  b.set([0x42, 0x4d]);
  new DataView(b.buffer).setUint32(14, dib, true);
  return b;
};

t.test('sniffImage', async (t) => {
  const table: Array<[string, Uint8Array, string | null]> = [
    ['JPEG', bytes([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), 'jpeg'],
    ['JPEG, 3 bytes', bytes([0xff, 0xd8, 0xff]), 'jpeg'],
    ['JPEG, 2 bytes', bytes([0xff, 0xd8]), null],
    ['PNG', bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a, 0x0a, 0, 0]), 'png'],
    ['PNG with a wrong byte', bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a, 0x0b]), null],
    ['GIF87a', bytes('GIF87a', [1, 0]), 'gif'],
    ['GIF89a', bytes('GIF89a'), 'gif'],
    ['GIF90a', bytes('GIF90a'), null],
    ['WebP', bytes('RIFF', [0, 0, 0, 0], 'WEBPVP8 '), 'webp'],
    ['RIFF WAVE', bytes('RIFF', [0, 0, 0, 0], 'WAVEfmt '), null],
    ['BMP (BITMAPINFOHEADER)', bmp(40), 'bmp'],
    ['BMP (core header)', bmp(12), 'bmp'],
    ['BMP (V5)', bmp(124), 'bmp'],
    ['"BM" then text', bytes('BMW is a car maker, not a bitmap'), null],
    ['BM with an unknown DIB size', bmp(41), null],
    ['HTML', bytes('<!doctype html><html>'), null],
    ['empty', new Uint8Array(0), null],
  ];
  for (const [name, b, want] of table) t.equal(sniffImage(b), want, name);
  t.equal(sniffImage(PLACEHOLDER_PNG), 'png', 'the placeholder sniffs as PNG');
});

t.test('mayBeImage: released as soon as the first bytes rule images out', async (t) => {
  const table: Array<[string, Uint8Array, boolean]> = [
    ['empty', new Uint8Array(0), true],
    ['0xff', bytes([0xff]), true],
    ['0xff 0xd8', bytes([0xff, 0xd8]), true],
    ['0xff 0x00', bytes([0xff, 0x00]), false],
    ['"e1\\n" (a streamed event)', bytes('e1\n'), false],
    ['"{" (JSON)', bytes('{'), false],
    ['"GIF8"', bytes('GIF8'), true],
    ['"GIF8x"', bytes('GIF8x'), false],
    ['"RIFF" + 4 bytes', bytes('RIFF', [1, 2, 3, 4]), true],
    ['"RIFF" + 4 bytes + "WAVE"', bytes('RIFF', [1, 2, 3, 4], 'WAVE'), false],
    ['"BM" + 10 bytes', bytes('BM', Array<number>(10).fill(0)), true],
    ['"BMW is a car maker"', bytes('BMW is a car maker'), false],
    ['a whole PNG signature', bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a, 0x0a]), true],
  ];
  for (const [name, b, want] of table) t.equal(mayBeImage(b), want, name);
});

t.test('declared image types', async (t) => {
  const table: Array<[string | null, boolean]> = [
    ['image/jpeg', true],
    ['IMAGE/PNG; charset=binary', true],
    [' image/webp ', true],
    ['image/gif', true],
    ['image/bmp', true],
    ['image/avif', true],
    ['image/svg+xml', false],
    ['image/x-icon', false],
    ['text/plain', false],
    ['application/octet-stream', false],
    ['', false],
    [null, false],
  ];
  for (const [ct, want] of table) t.equal(declaredImage(ct), want, String(ct));
  t.equal(mediaType('Text/Event-Stream; charset=utf-8'), 'text/event-stream');
  t.equal(mediaType(';x'), null);
});

t.test('the placeholder is a small, valid PNG', async (t) => {
  const meta = await sharp(PLACEHOLDER_PNG).metadata();
  t.match(meta, { format: 'png', width: 16, height: 16 });
  t.ok(PLACEHOLDER_PNG.length < 200, `${PLACEHOLDER_PNG.length} bytes`);
});

t.test('onImage over the policy with an injected scanner', async (t) => {
  const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
  const scanned = (s: string, pdq = true): ScannedImageHashes => ({
    md5: md5(s),
    sha1: createHash('sha1').update(s).digest('hex'),
    sha256: createHash('sha256').update(s).digest('hex'),
    ...(pdq ? { pdq: { hash: createHash('sha256').update(`pdq ${s}`).digest('hex'), quality: 90 } } : {}),
  });
  const holder = new PolicyHolder();
  const scans: string[] = [];
  const opts = { recordUrls: false, recordClients: false, blockFronting: false, noSni: 'block', ech: 'allow-outer' } as const;
  t.notOk(createPolicyHooks(holder, nullObserver, opts).onImage, 'no scanner, no onImage hook');
  const hooks = createPolicyHooks(holder, nullObserver, {
    ...opts,
    scanImage: async (b) => {
      const s = Buffer.from(b).toString();
      scans.push(s);
      return scanned(s.replace(/^undecodable:/, ''), !s.startsWith('undecodable:'));
    },
  });
  const conn = { listener: 'forward', client: '127.0.0.1' } as const;
  const img = (s: string) => ({ bytes: Buffer.from(s), contentType: 'image/png' });
  t.match(await hooks.onImage!(img('listed'), conn, 'http://x.test/'), { decision: { action: 'block', rule: 'no-policy' } }, 'no policy: block');
  holder.swap(
    compilePolicy({
      lists: [
        { id: 'hot', category: 'csam', kind: 'md5', text: `${md5('listed')}\n` },
        { id: 'watch', category: 'adult', kind: 'md5', mode: 'monitor', text: `${md5('watched')}\n` },
      ],
      profiles: [{ name: 'staff', clients: ['10.0.0.0/8'], lists: ['watch'] }],
    }),
  );
  t.same(await hooks.onImage!(img('listed'), conn, 'http://x.test/'), {
    decision: { action: 'block', category: 'csam', list: 'hot', rule: 'md5', reason: 'image listed in "hot" (csam, md5 match)', match: 'md5' },
    result: 'scanned',
    match: 'md5',
  });
  t.match(await hooks.onImage!(img('undecodable:listed'), conn, ''), { decision: { action: 'block' }, result: 'undecodable', match: 'md5' }, 'exact hashes of undecodable bytes still match');
  t.match(await hooks.onImage!(img('watched'), conn, ''), { decision: { action: 'monitor', list: 'watch' }, result: 'scanned', match: 'md5' });
  t.match(await hooks.onImage!(img('other'), conn, ''), { decision: { action: 'allow' }, result: 'scanned' });
  t.notOk('match' in (await hooks.onImage!(img('other'), conn, '')), 'no match key without a match');
  t.match(await hooks.onImage!(img('listed'), { listener: 'http', client: '10.1.2.3' }, ''), { decision: { action: 'block' } }, "a csam list applies to the staff profile too, though its lists leave it out");
  t.same(scans.slice(0, 2), ['listed', 'listed'], 'the scanner gets the bytes');
});
