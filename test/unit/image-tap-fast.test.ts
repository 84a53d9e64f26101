/**
 * The image tap's cheap paths (proxy/image-tap.ts): the first-byte rule-out must agree with the full
 * sniff for every first byte and every prefix of every magic number, and rawField must read a field
 * from the raw head exactly as node:http's `IncomingMessage.headers` does (checked against a real
 * node:http client reading a raw response with repeated and oddly spelled fields).
 */
import t from 'tap';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { mayBeImage, mayStartImage, rawField, sniffImage } from '../../proxy/image-tap.js';

const MAGICS = [
  Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.from('GIF87a'),
  Buffer.from('GIF89a'),
  Buffer.concat([Buffer.from('RIFF'), Buffer.from([1, 2, 3, 4]), Buffer.from('WEBP')]),
  Buffer.concat([Buffer.from('BM'), Buffer.alloc(12), Buffer.from([40, 0, 0, 0])]),
];

t.test('the first byte rules out exactly what the full sniff rules out', async (t) => {
  let startable = 0;
  for (let b = 0; b < 256; b++) {
    const one = Buffer.from([b]);
    // Padded to 32 bytes with every filler: a first byte mayStartImage refuses is never an image.
    if (!mayStartImage(b)) {
      t.equal(mayBeImage(one), false, `0x${b.toString(16)} alone`);
      for (const fill of [0x00, 0x41, 0xff]) t.equal(sniffImage(Buffer.concat([one, Buffer.alloc(31, fill)])), null);
    } else {
      startable++;
      t.equal(mayBeImage(one), true, `0x${b.toString(16)} may start an image`);
    }
  }
  t.equal(startable, 5, 'JPEG, PNG, GIF, RIFF (WebP), BM (BMP)');
  for (const m of MAGICS) {
    for (let n = 1; n < m.length; n++) t.equal(mayBeImage(m.subarray(0, n)), true, `${n} bytes of ${m.subarray(0, 4).toString('hex')}`);
    t.not(sniffImage(m), null);
  }
  t.equal(sniffImage(Buffer.from('GIF88a')), null);
  t.equal(sniffImage(Buffer.from('RIFF\x01\x02\x03\x04WEBQ')), null);
});

t.test('rawField reads a field as node:http headers does', async (t) => {
  const head =
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-type: image/png\r\nCONTENT-ENCODING: gzip\r\ncontent-encoding: br\r\n' +
    'Content-Typo: x\r\nX-Content-Type: image/png\r\nContent-Length: 0\r\n\r\n';
  const server = createServer((c) => c.once('data', () => c.end(head)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port }, resolve);
    req.on('error', reject);
    req.end();
  });
  res.resume();
  t.equal(rawField(res.rawHeaders, 'content-type', false), res.headers['content-type']);
  t.equal(rawField(res.rawHeaders, 'content-encoding', true), res.headers['content-encoding']);
  t.equal(rawField(res.rawHeaders, 'content-encoding', true), 'gzip, br');
  t.equal(rawField(res.rawHeaders, 'content-type', false), 'text/plain');
  t.equal(rawField(res.rawHeaders, 'content-range', false), null);
  t.equal(rawField([], 'content-type', false), null);
  t.equal(rawField(['Content-Type'], 'content-type', false), null, 'a name without a value is not read');
});
