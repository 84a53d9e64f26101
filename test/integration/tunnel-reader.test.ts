/**
 * The upstream side of a tunnel reads through a TunnelReader (proxy/tunnel.ts): net's `onread`
 * into one reused buffer, and a 1 MiB buffer from a bounded pool while bulk flows. What can go
 * wrong, each tested with real sockets on loopback:
 * - a byte overwritten in the reused buffer before the guest's socket took it (a guest that reads
 *   slowly makes writes pend): every byte of a patterned download is checked, in order;
 * - what the server sends before the splice (a server that speaks first) lost or reordered;
 * - the upstream's FIN not passed on, or the guest's half-close cutting the download;
 * - bulk buffers not given back (the pool is bounded: a leak would end the large reads for good).
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { bulkBuffersLent, splice } from '../../proxy/tunnel.js';
import { connectTcp } from '../../proxy/upstream.js';

const EMPTY = Buffer.alloc(0);

/** Bytes i of a download: a pattern that differs at every offset, so a reused or stale byte shows. */
function pattern(offset: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((offset + i) >>> 0, i);
  return b;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** A guest-side socket pair: `guest` is the guest's end, `inner` the proxy's accepted end. */
async function guestPair(t: Test): Promise<{ guest: Socket; inner: Socket }> {
  const server = createServer({ allowHalfOpen: true });
  const port = await listen(server);
  t.teardown(() => server.close());
  const inner = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const guest = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => guest.once('connect', r));
  return { guest, inner: await inner };
}

function upstreamSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => connectTcp('127.0.0.1', port, 5000, (err, s) => (err ? reject(err) : resolve(s!)), true));
}

/** An upstream that sends `total` patterned bytes (after `banner`, at once on connect) and ends. */
async function patternServer(t: Test, total: number, banner = EMPTY): Promise<{ port: number; gotFromGuest: () => Buffer }> {
  const from: Buffer[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {}); // a guest that goes away resets this end
    s.on('data', (c: Buffer) => from.push(c));
    if (banner.length > 0) s.write(banner);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(256 * 1024, total - sent);
        const ok = s.write(pattern(sent, n));
        sent += n;
        if (!ok) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  const port = await listen(server);
  t.teardown(() => server.close());
  return { port, gotFromGuest: () => Buffer.concat(from) };
}

/** Read everything the guest gets, pausing now and then (so the proxy's writes pend); its hash and length. */
function slowRead(guest: Socket): Promise<{ sha: string; length: number; firstBytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let length = 0;
    let first = EMPTY;
    let reads = 0;
    guest.on('data', (c: Buffer) => {
      if (first.length < 64) first = Buffer.concat([first, c]).subarray(0, 64);
      h.update(c);
      length += c.length;
      if (++reads % 8 === 0) {
        guest.pause();
        setTimeout(() => guest.resume(), 5);
      }
    });
    guest.once('end', () => resolve({ sha: h.digest('hex'), length, firstBytes: first }));
    guest.once('error', reject);
  });
}

function expectedSha(total: number, banner = EMPTY): string {
  const h = createHash('sha256');
  h.update(banner);
  for (let off = 0; off < total; off += 1 << 20) h.update(pattern(off, Math.min(1 << 20, total - off)));
  return h.digest('hex');
}

t.test('a 24 MiB download to a guest that reads slowly arrives whole and in order; the bulk buffers go back', async (t) => {
  const total = 24 << 20;
  const up = await patternServer(t, total);
  const { guest, inner } = await guestPair(t);
  const upstream = await upstreamSocket(up.port);
  let done = false;
  splice(inner, upstream, EMPTY, { idleTimeoutMs: 0, onDone: () => (done = true) });
  const got = await slowRead(guest);
  t.equal(got.length, total, 'every byte');
  t.equal(got.sha, expectedSha(total), 'the same bytes, in order');
  guest.end();
  await new Promise((r) => guest.once('close', r));
  for (let i = 0; i < 100 && !done; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(done, 'the tunnel ended');
  t.equal(bulkBuffersLent(), 0, 'no bulk buffer left lent');
});

t.test('what a server sends before the splice reaches the guest first', async (t) => {
  const banner = Buffer.from('220 server speaks first\r\n');
  const total = 3 << 20;
  const up = await patternServer(t, total, banner);
  const upstream = await upstreamSocket(up.port);
  // The server's bytes arrive while nothing is spliced yet (as while a ClientHello is decided).
  await new Promise((r) => setTimeout(r, 100));
  const { guest, inner } = await guestPair(t);
  let done = false;
  splice(inner, upstream, Buffer.from('hello from the guest'), { idleTimeoutMs: 0, onDone: () => (done = true) });
  const got = await slowRead(guest);
  t.same(got.firstBytes.subarray(0, banner.length), banner, 'the early bytes first');
  t.equal(got.length, banner.length + total);
  t.equal(got.sha, expectedSha(total, banner), 'then the rest, unchanged');
  guest.end();
  await new Promise((r) => guest.once('close', r));
  t.equal(up.gotFromGuest().toString(), 'hello from the guest', 'the head went upstream');
  for (let i = 0; i < 100 && !done; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(done, 'the tunnel ended');
  t.equal(bulkBuffersLent(), 0, 'no bulk buffer left lent');
});

t.test('the guest half-closes first: the download still completes, and the upstream sees the FIN', async (t) => {
  const total = 8 << 20;
  let sawEnd = false;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.resume();
    s.once('end', () => {
      sawEnd = true;
      // Only after the guest's FIN: the download.
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          const n = Math.min(1 << 20, total - sent);
          const ok = s.write(pattern(sent, n));
          sent += n;
          if (!ok) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
  });
  const port = await listen(server);
  t.teardown(() => server.close());
  const { guest, inner } = await guestPair(t);
  const upstream = await upstreamSocket(port);
  let done = false;
  splice(inner, upstream, EMPTY, { idleTimeoutMs: 0, onDone: () => (done = true) });
  const reading = slowRead(guest);
  guest.end();
  const got = await reading;
  t.ok(sawEnd, 'the FIN went upstream');
  t.equal(got.length, total);
  t.equal(got.sha, expectedSha(total));
  await new Promise((r) => (guest.destroyed ? r(null) : guest.once('close', r)));
  for (let i = 0; i < 100 && !done; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(done, 'the tunnel ended');
  t.equal(bulkBuffersLent(), 0, 'no bulk buffer left lent');
});

t.test('a guest that goes away mid-download tears the tunnel down and gives the buffer back', async (t) => {
  const up = await patternServer(t, 64 << 20);
  const { guest, inner } = await guestPair(t);
  const upstream = await upstreamSocket(up.port);
  let done = false;
  splice(inner, upstream, EMPTY, { idleTimeoutMs: 0, onDone: () => (done = true) });
  let got = 0;
  await new Promise<void>((resolve) => {
    guest.on('data', (c: Buffer) => {
      got += c.length;
      if (got > 4 << 20) {
        guest.destroy();
        resolve();
      }
    });
  });
  for (let i = 0; i < 200 && !done; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(done, 'both sockets closed');
  t.ok(upstream.destroyed, 'the upstream socket is destroyed');
  t.equal(bulkBuffersLent(), 0, 'the bulk buffer is back');
});
