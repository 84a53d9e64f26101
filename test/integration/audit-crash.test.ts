/**
 * kill -9 while the journal is being checkpointed (issue 21, point 2): a real `safespot serve` signs a
 * checkpoint every 20 ms under a steady stream of blocked requests, and is killed with SIGKILL at a
 * different moment in each of several rounds on the same journal. With checkpoints that often, some
 * kills land inside a checkpoint's transaction (hashing, signing, storing). After every kill the
 * journal must still verify (exit 0, INTACT) up to its last checkpoint, the next start must sign what
 * the crash left (`recovery`), and no row the appliance wrote before a checkpoint may be lost from
 * the tree. Which moment a kill hits is the machine's; the assertion holds for every moment.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { CLI_DEMO_DIR, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { runCmd } from '../helpers/commands.js';

const ROUNDS = 6;

/** Blocked requests back to back until `stop()`; resolves with how many got an answer. */
function stream(port: number): { stop: () => Promise<number> } {
  let on = true;
  let answered = 0;
  const one = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'GET', path: 'http://blocked.test/', headers: { host: 'blocked.test', connection: 'close' } }, (res) => {
        res.resume();
        res.on('end', () => {
          answered++;
          resolve();
        });
      });
      req.on('error', () => resolve()); // the kill cuts the requests in flight
      req.end();
    });
  const loops = Array.from({ length: 4 }, async () => {
    while (on) await one();
  });
  return {
    stop: async () => {
      on = false;
      await Promise.all(loops);
      return answered;
    },
  };
}

const verdictRows = async (journal: string): Promise<number> => Number((await runCmd('sqlite3', [journal, "SELECT COUNT(*) FROM events WHERE kind = 'verdict'"])).stdout.toString().trim());

t.test('kill -9 at random moments while checkpoints are signed every 20 ms: the journal always verifies', async (t) => {
  const { dir, config } = tempConfig(t, 'audit-crash', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'site: { id: venue-crash, name: "Crash venue" }',
    `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }]`,
  ]);
  writeFileSync(config, readFileSync(config, 'utf8').replace(/journal: \{ path: ([^ ]+) \}/, 'journal: { path: $1, checkpointInterval: 20ms }'));
  const journal = join(dir, 'journal.db');
  const keyFile = join(dir, 'appliance.pub');
  const first = await serve(config); // the identity is made on the first start
  const key = await runCli(['audit', 'key', '--config', config]);
  t.equal(key.code, 0, key.stderr);
  writeFileSync(keyFile, key.stdout);
  first.child.kill('SIGTERM');
  await first.exited;

  let coveredBefore = 0;
  let recoveries = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const app = await serve(config);
    const load = stream(app.forward);
    // A different moment each round: 150 ms to ~1 s into the load.
    await new Promise((r) => setTimeout(r, 150 + ((round * 173) % 850)));
    app.child.kill('SIGKILL');
    await app.exited;
    const answered = await load.stop();
    t.ok(answered > 0, `round ${round}: ${answered} blocked requests answered before the kill`);

    const v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', journal]);
    t.equal(v.code, 0, `round ${round}: after kill -9 the journal verifies:\n${v.stdout}`);
    t.match(v.stdout, /result INTACT/, `round ${round}: intact`);
    const size = Number(/last checkpoint (\d+) leaves/.exec(v.stdout)?.[1] ?? NaN);
    t.ok(size >= coveredBefore, `round ${round}: the signed tree never shrinks (${coveredBefore} → ${size})`);
    coveredBefore = size;
    if (/written before a crash were first signed at the next start/.test(v.stdout)) recoveries++;
  }
  const rows = await verdictRows(journal);
  t.ok(rows > 0, `${rows} verdict rows kept across ${ROUNDS} crashes`);

  // A clean start and stop signs whatever the last crash left uncovered.
  const app = await serve(config);
  app.child.kill('SIGTERM');
  await app.exited;
  const v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', journal]);
  t.equal(v.code, 0, v.stdout);
  t.notMatch(v.stdout, /not covered by any signature/, 'after a clean stop every row is covered');
  t.match(v.stdout, /last checkpoint \d+ leaves, signed .* \(stop\)/);
  t.equal(await verdictRows(journal), rows, 'no verdict row lost by the recoveries');
  t.comment(`${recoveries} of ${ROUNDS} rounds needed a recovery checkpoint (rows written after the last checkpoint before the kill)`);
});
