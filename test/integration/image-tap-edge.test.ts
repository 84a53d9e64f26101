/**
 * The image tap's edges, with startProxy and small onImage hooks (no policy engine): a hook that
 * never answers (timeout, pass or block), a hook that throws, a body that stalls past the timeout
 * and then streams on, a monitor verdict, a client that leaves while its image is held, an upstream
 * that resets mid-image, server-sent events whose head is not delayed, and keep-alive after a
 * replaced image. Real servers on port 0.
 */
import { createServer, request as httpRequest, type ServerResponse } from 'node:http';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import type { Hooks, ImageVerdict } from '../../proxy/hooks.js';
import { PLACEHOLDER_PNG } from '../../proxy/image-tap.js';
import type { ProxyOptions } from '../../proxy/options.js';
import { allow, block, recordingObserver, testHooks } from '../helpers/hooks.js';
import { startTestProxy, testOptions } from '../helpers/proxy-rig.js';

type T = import('tap').Test;

// The bytes only need to look like a PNG to the tap: the hooks here never decode.
const IMAGE = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(50_000, 7)]);

type Handler = (res: ServerResponse, path: string) => void;

async function upstream(t: T, handler: Handler): Promise<number> {
  const server = createServer((req, res) => handler(res, req.url ?? '/'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return (server.address() as { port: number }).port;
}

const png = (res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(IMAGE.length) });
  res.end(IMAGE);
};

function options(port: number, images: Partial<NonNullable<ProxyOptions['images']>> = {}): ProxyOptions {
  return { ...testOptions({ 'img.test': `127.0.0.1:${port}` }), images: { enabled: true, maxBytes: 1 << 20, timeout: 2000, unscanned: 'pass', ...images } };
}

function hooksWith(onImage: Hooks['onImage']): Hooks {
  return { ...testHooks(), onImage };
}

async function get(t: T, proxyPort: number, path: string) {
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxyPort}`, proxyTunnel: false });
  t.teardown(() => agent.close());
  const res = await request(`http://img.test${path}`, { dispatcher: agent });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

const never = (): Promise<ImageVerdict> => new Promise(() => {});

t.test('a hook that never answers: timeout, then pass or block', async (t) => {
  const port = await upstream(t, png);
  for (const unscanned of ['pass', 'block'] as const) {
    const obs = recordingObserver();
    const proxy = await startTestProxy(t, options(port, { timeout: 200, unscanned }), hooksWith(never), obs);
    const r = await get(t, proxy.port('forward'), '/a.png');
    if (unscanned === 'pass') {
      t.equal(r.status, 200);
      t.ok(r.body.equals(IMAGE), 'released byte-exact');
    } else {
      t.equal(r.status, 403);
      t.ok(r.body.equals(PLACEHOLDER_PNG), 'replaced');
    }
    t.equal(obs.count('image timeout'), 1, `${unscanned}: counted timeout`);
    t.equal(obs.count('image scanned'), 0, 'never counted as scanned');
  }
});

t.test('a hook that throws: counted undecodable, unscanned rule applies', async (t) => {
  const port = await upstream(t, png);
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, options(port), hooksWith(async () => Promise.reject(new Error('scanner broke'))), obs);
  const r = await get(t, proxy.port('forward'), '/a.png');
  t.equal(r.status, 200);
  t.ok(r.body.equals(IMAGE));
  t.equal(obs.count('image undecodable'), 1);
});

t.test('a body that stalls past the timeout is released and streams on', async (t) => {
  let resumed = false;
  const port = await upstream(t, (res) => {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.write(IMAGE.subarray(0, 20_000));
    setTimeout(() => {
      resumed = true;
      res.end(IMAGE.subarray(20_000));
    }, 700);
  });
  const obs = recordingObserver();
  let called = false;
  const hook = async (): Promise<ImageVerdict> => {
    called = true;
    return { decision: block('csam'), result: 'scanned', match: 'md5' };
  };
  const proxy = await startTestProxy(t, options(port, { timeout: 200 }), hooksWith(hook), obs);
  const r = await get(t, proxy.port('forward'), '/slow.png');
  t.ok(resumed);
  t.equal(r.status, 200);
  t.ok(r.body.equals(IMAGE), 'the whole body, byte-exact');
  t.equal(obs.count('image timeout'), 1);
  t.notOk(called, 'the hook is not asked about a body that was released unscanned');
});

t.test('a monitor verdict passes the image and is recorded', async (t) => {
  const port = await upstream(t, png);
  const obs = recordingObserver();
  const monitor = { ...block('adult'), action: 'monitor' as const };
  const proxy = await startTestProxy(t, options(port), hooksWith(async () => ({ decision: monitor, result: 'scanned', match: 'pdq', distance: 4 })), obs);
  const r = await get(t, proxy.port('forward'), '/m.png');
  t.equal(r.status, 200);
  t.ok(r.body.equals(IMAGE));
  t.equal(obs.count('image scanned'), 1);
  t.equal(obs.count('imageBlocked adult'), 1);
});

t.test('a client that leaves while its image is held, and an upstream that resets mid-image', async (t) => {
  let release: (v: ImageVerdict) => void = () => {};
  const port = await upstream(t, (res, path) => {
    if (path === '/reset.png') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(IMAGE.length) });
      res.write(IMAGE.subarray(0, 10_000));
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    png(res);
  });
  const obs = recordingObserver();
  let calls = 0;
  const hook = (): Promise<ImageVerdict> => {
    calls++;
    return calls === 1 ? new Promise((r) => (release = r)) : Promise.resolve({ decision: allow, result: 'scanned' });
  };
  const proxy = await startTestProxy(t, options(port, { timeout: 5000 }), hooksWith(hook), obs);
  const fwd = proxy.port('forward');
  await new Promise<void>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: fwd, path: 'http://img.test/held.png', agent: false });
    req.on('error', () => resolve());
    req.on('response', () => resolve());
    req.end();
    // Leave once the hook holds the image.
    const wait = setInterval(() => {
      if (calls === 1) {
        clearInterval(wait);
        req.destroy();
        resolve();
      }
    }, 10);
  });
  // Answer only once the proxy has seen the client go.
  while (proxy.connections() > 0) await new Promise((r) => setTimeout(r, 10));
  release({ decision: allow, result: 'scanned' });
  const reset = await get(t, fwd, '/reset.png').then(
    (r) => r.status,
    () => -1,
  );
  t.not(reset, 200, 'a reset mid-image is not passed on as a whole image');
  const r = await get(t, fwd, '/after.png');
  t.equal(r.status, 200, 'the proxy carries on');
  t.ok(r.body.equals(IMAGE));
  t.equal(obs.count('image scanned'), 1, `only the completed image is counted (${obs.events.filter((e) => e.startsWith('image')).join(', ')})`);
});

t.test('streaming text is not held for sniffing: each event arrives before the next is sent', async (t) => {
  for (const type of ['text/event-stream', 'application/x-ndjson']) {
    let next: () => void = () => {};
    const sent: string[] = [];
    const port = await upstream(t, (res) => {
      res.writeHead(200, { 'content-type': type });
      let i = 0;
      next = () => {
        i++;
        sent.push(`e${i}`);
        if (i < 3) res.write(`e${i}\n`);
        else res.end(`e${i}\n`);
      };
      next();
    });
    const proxy = await startTestProxy(t, options(port), hooksWith(never), recordingObserver());
    const seen = await new Promise<string[]>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.port('forward'), path: 'http://img.test/events', agent: false }, (res) => {
        const got: string[] = [];
        res.on('data', (c: Buffer) => {
          // Record what the upstream had sent when this chunk arrived, then ask for the next one.
          got.push(`${c.toString().trim()}@${sent.length}`);
          next();
        });
        res.on('end', () => resolve(got));
      });
      req.on('error', reject);
      req.end();
    });
    t.same(seen, ['e1@1', 'e2@2', 'e3@3'], `${type}: every event is forwarded before the next is sent`);
  }
});

t.test('keep-alive goes on after a replaced image whose body was cut short', async (t) => {
  const port = await upstream(t, (res, path) => (path === '/hello' ? res.end('hi') : png(res)));
  const obs = recordingObserver();
  const proxy = await startTestProxy(t, options(port, { maxBytes: 1000, unscanned: 'block' }), hooksWith(never), obs);
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxy.port('forward')}`, proxyTunnel: false });
  t.teardown(() => agent.close());
  const one = await request('http://img.test/big.png', { dispatcher: agent });
  t.equal(one.statusCode, 403);
  t.ok(Buffer.from(await one.body.arrayBuffer()).equals(PLACEHOLDER_PNG));
  const two = await request('http://img.test/hello', { dispatcher: agent });
  t.equal(two.statusCode, 200);
  t.equal(await two.body.text(), 'hi');
  t.equal(obs.count('image too_large'), 1);
  t.equal(obs.count('upstream'), 0, 'cutting the upstream body short is not an upstream error');
});

t.test('images.maxHeldBytes: the bytes all held images share; past it over_budget, then unscanned', async (t) => {
  const { gzipSync } = await import('node:zlib');
  const big = Buffer.concat([IMAGE.subarray(0, 8), Buffer.alloc(130_000, 1)]);
  const port = await upstream(t, (res, path) => {
    if (path === '/gz.png') {
      const z = gzipSync(big);
      res.writeHead(200, { 'content-type': 'image/png', 'content-encoding': 'gzip', 'content-length': String(z.length) });
      res.end(z);
    } else png(res);
  });
  for (const unscanned of ['pass', 'block'] as const) {
    // Room for two images of 50,008 bytes, not three. The hook waits until told, so they stay held.
    let open: () => void = () => {};
    let gate = new Promise<void>((r) => (open = r));
    let asked = 0;
    const obs = recordingObserver();
    const proxy = await startTestProxy(
      t,
      options(port, { maxHeldBytes: 120_000, unscanned }),
      hooksWith(async () => {
        asked++;
        await gate;
        return { decision: allow, result: 'scanned' };
      }),
      obs,
    );
    const held = [get(t, proxy.port('forward'), '/1.png'), get(t, proxy.port('forward'), '/2.png')];
    while (asked < 2) await new Promise((r) => setTimeout(r, 10));
    const third = await get(t, proxy.port('forward'), '/3.png');
    t.equal(obs.count('image over_budget'), 1, `${unscanned}: the third image is over the budget`);
    if (unscanned === 'pass') t.ok(third.status === 200 && third.body.equals(IMAGE), 'pass: released unscanned, at once');
    else t.ok(third.status === 403 && third.body.equals(PLACEHOLDER_PNG), 'block: the placeholder, at once');
    open();
    for (const r of await Promise.all(held)) t.ok(r.status === 200 && r.body.equals(IMAGE), 'the two held images pass once scanned');
    // Every byte was given back: two at once fit again.
    gate = Promise.resolve();
    const again = await Promise.all([get(t, proxy.port('forward'), '/4.png'), get(t, proxy.port('forward'), '/5.png')]);
    t.ok(again.every((r) => r.status === 200), 'two more held and passed');
    t.equal(obs.count('image scanned'), 4, 'four scanned');
    t.equal(obs.count('image over_budget'), 1, 'the budget came back: no more over_budget');
    // A gzip image whose decoded bytes do not fit (the encoded ones do) is over budget too.
    const gz = await get(t, proxy.port('forward'), '/gz.png');
    t.equal(obs.count('image over_budget'), 2, 'the decoded copy counts against the budget');
    t.equal(gz.status, unscanned === 'pass' ? 200 : 403, `gzip: ${unscanned}`);
  }
});
