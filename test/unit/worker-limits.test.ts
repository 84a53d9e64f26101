/**
 * workerLimits (appliance/serve/worker.ts): each worker's share of the appliance-wide connection
 * limits. The shares over all workers never add up to less than the configured figure (no
 * appliance-wide ceiling below what the operator set) and never to more than it plus workers − 1.
 */
import t from 'tap';
import { workerLimits } from '../../appliance/serve/worker.js';

const base = { maxConnections: 4096, maxConnectionsPerClient: 256, maxHeaderBytes: 16_384, headersTimeout: 10_000, idleTimeout: 120_000, drainTimeout: 10_000 };

t.test('shares for common figures', async (t) => {
  // [maxConnections, maxConnectionsPerClient, workers] → [per-worker total, per-worker per client]
  const cases: Array<[number, number, number, number, number]> = [
    [4096, 256, 1, 4096, 256],
    [4096, 256, 2, 2048, 128],
    [6, 4, 2, 3, 2],
    [7, 5, 2, 4, 3],
    [10, 3, 4, 3, 1],
    [1, 1, 8, 1, 1],
    [100, 10, 64, 2, 1],
  ];
  for (const [total, perClient, workers, wantTotal, wantClient] of cases) {
    const got = workerLimits({ ...base, maxConnections: total, maxConnectionsPerClient: perClient }, workers);
    t.same([got.maxConnections, got.maxConnectionsPerClient], [wantTotal, wantClient], `${total}/${perClient} over ${workers} workers`);
  }
});

t.test('the other limits pass unchanged', async (t) => {
  const got = workerLimits(base, 3);
  t.same({ ...got, maxConnections: 0, maxConnectionsPerClient: 0 }, { ...base, maxConnections: 0, maxConnectionsPerClient: 0 });
});

t.test('bounds: never below the configured figure, never more than workers − 1 above it', async (t) => {
  let checked = 0;
  for (let limit = 1; limit <= 300; limit++) {
    for (let workers = 1; workers <= 64; workers++) {
      const share = workerLimits({ ...base, maxConnections: limit }, workers).maxConnections;
      const appliance = share * workers;
      if (share < 1 || appliance < limit || appliance > limit + workers - 1) {
        t.fail(`limit ${limit}, ${workers} workers: share ${share}, appliance ${appliance}`);
        return;
      }
      checked++;
    }
  }
  t.equal(checked, 300 * 64, 'every pair checked');
});
