/**
 * Certificates: the cost of a leaf for a new host (mint, and mint + TLS context), of a cached
 * context, and of a whole loopback handshake with a freshly minted leaf, each beside the baseline
 * of a Node TLS handshake with a fixed certificate. Figures only, never pass/fail.
 *
 *   npm run build && node dist/bench/certs.js [--quick]
 */

import { createServer, connect, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { LeafMinter, generateCa } from '../certs/index.js';
import { type BenchResult, isMain, printResults } from './common.js';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function handshake(port: number, servername: string, ca: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername, ca }, () => {
      if (!s.authorized) reject(new Error(`not authorized: ${String(s.authorizationError)}`));
      s.end();
      resolve();
    });
    s.on('error', reject);
  });
}

export async function bench(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const n = opts.quick ? 40 : 300;
  const ca = await generateCa();
  const minter = new LeafMinter(ca, { cacheSize: 10_000 });

  const k0 = process.hrtime.bigint();
  await minter.mint('warm.test'); // generates the shared leaf key once
  const firstKeyMs = Number(process.hrtime.bigint() - k0) / 1e6;

  const mintMs = median(await timeEach(n, (i) => minter.mint(`mint-${i}.test`)));
  const contextMs = median(await timeEach(n, (i) => minter.getSecureContext(`ctx-${i}.test`)));
  const cachedMs = median(await timeEach(n * 10, () => minter.getSecureContext('ctx-0.test')));

  // Baseline: the same loopback handshake with one fixed certificate (no minting at all).
  const fixed = await minter.mint('fixed.test');
  const fixedServer = createServer({ key: fixed.keyPem, cert: fixed.certPem }, (s) => s.on('error', () => undefined).end());
  const fixedPort = await listen(fixedServer);
  const baseMs = median(await timeEach(n, () => handshake(fixedPort, 'fixed.test', ca.certPem)));
  fixedServer.close();

  // A handshake per new host through SNICallback: mint + context + handshake.
  const sniMinter = new LeafMinter(ca, { cacheSize: 10_000 });
  await sniMinter.mint('warm.test');
  const sniServer = createServer({ SNICallback: sniMinter.sniCallback }, (s) => s.on('error', () => undefined).end());
  const sniPort = await listen(sniServer);
  const newHostMs = median(await timeEach(n, (i) => handshake(sniPort, `hs-${i}.test`, ca.certPem)));
  const cachedHostMs = median(await timeEach(n, () => handshake(sniPort, 'hs-0.test', ca.certPem)));
  sniServer.close();

  const note = `ECDSA P-256 CA and leaf, median of ${n}; baseline = loopback handshake with a fixed certificate`;
  return [
    { name: 'certs: first mint of a minter (leaf key generation + sign)', value: firstKeyMs, unit: 'ms', note: 'one-off per process' },
    { name: 'certs: mint a leaf (build + sign)', value: mintMs, unit: 'ms', baseline: baseMs, note },
    { name: 'certs: new host context (mint + createSecureContext)', value: contextMs, unit: 'ms', baseline: baseMs, note },
    { name: 'certs: cached context', value: cachedMs, unit: 'ms', baseline: baseMs, note: `median of ${n * 10}` },
    { name: 'certs: TLS handshake, new host (mint via SNICallback)', value: newHostMs, unit: 'ms', baseline: baseMs, note },
    { name: 'certs: TLS handshake, cached host (SNICallback)', value: cachedHostMs, unit: 'ms', baseline: baseMs, note },
    { name: 'certs: TLS handshake, fixed certificate (baseline)', value: baseMs, unit: 'ms', note },
  ];
}

if (isMain(import.meta.url)) {
  printResults(await bench({ quick: process.argv.includes('--quick') }), 3);
}
