/**
 * `safespot check --config` with `https://` list sources (issue 19): the real `serve` downloads a
 * list from a local HTTPS origin into state.dir, stops; with the origin gone, `check` answers from
 * that last-good copy. A URL list with no copy is a clear ERR_LIST_READ naming it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runCli, serve, tempConfig } from '../helpers/appliance.js';
import { startOrigin } from '../helpers/origin.js';

t.test('check uses the last-good copy serve left in state.dir, and names a URL list without one', async (t) => {
  const origin = await startOrigin();
  let originOpen = true;
  t.teardown(() => (originOpen ? origin.close() : undefined));
  origin.put('/adult.txt', '0.0.0.0 remote-adult.test\n');
  const { dir, config } = tempConfig(t, 'check-url', []);
  writeFileSync(join(dir, 'ca.pem'), origin.caPem);
  const lines = (extra: string[]): string =>
    [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      `sources: { ca: ${join(dir, 'ca.pem')}, timeout: 2s, retries: 0 }`,
      'lists:',
      `  - { id: remote-adult, category: adult, kind: domains, source: "${origin.url('/adult.txt')}" }`,
      ...extra,
      `journal: { path: ${join(dir, 'journal.db')} }`,
      `state: { dir: ${join(dir, 'state')} }`,
      '',
    ].join('\n');
  writeFileSync(config, lines([]));

  // Before serve has run: no copy, so check refuses and names the list and the folder.
  const before = await runCli(['check', '--config', config], '{"host":"remote-adult.test"}\n');
  t.equal(before.code, 1, 'ERR_LIST_READ exits 1');
  t.match(before.stderr, /ERR_LIST_READ/);
  t.match(before.stderr, /list "remote-adult": source https:\/\/127\.0\.0\.1:\d+\/adult\.txt is a URL and \S+state\/lists holds no good copy of it/);
  t.equal(before.stdout, '');

  // serve (startup: wait) downloads the list and keeps its last-good copy; then stops.
  const app = await serve(config);
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'serve drained and exited');
  await origin.close();
  originOpen = false;

  const r = await runCli(['check', '--config', config], '{"host":"remote-adult.test"}\n{"host":"other.test"}\n');
  t.equal(r.code, 0, r.stderr);
  const verdicts = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { action: string; list: string | null });
  t.same(
    verdicts.map((v) => [v.action, v.list]),
    [
      ['block', 'remote-adult'],
      ['allow', null],
    ],
  );
  t.match(r.stderr, /list "remote-adult": using the last-good copy fetched \d{4}-\d\d-\d\dT/);

  // A second URL list without a copy: every problem listed, the list without a copy named.
  writeFileSync(config, lines(['  - { id: never-fetched, category: adult, kind: domains, source: "https://lists.invalid/x.txt" }']));
  const missing = await runCli(['check', '--config', config], '{"host":"remote-adult.test"}\n');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /list "never-fetched": source https:\/\/lists\.invalid\/x\.txt is a URL and \S+ holds no good copy/);
  t.notMatch(missing.stderr, /list "remote-adult": source/, 'the list with a copy is not a problem');
  t.equal(missing.stdout, '');
});
