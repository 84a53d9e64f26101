/**
 * Self-tests that cannot hide a failure (issue 21, point 6), on a real serve: with two canaries in
 * one category, the first failing and the second passing, the category gauge is the minimum of its
 * canaries (0) and each canary has its own series under its configured id, never its URL. Before
 * the fix the category gauge held the last canary's result (1) and SafespotSelftestFailing stayed
 * silent. The journal has one selftest row per canary, named by its id.
 */
import { join } from 'node:path';
import t from 'tap';
import { openJournal } from '../../audit/journal.js';
import { CLI_DEMO_DIR, serve, tempConfig } from '../helpers/appliance.js';

async function metrics(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

t.test('one of two canaries in a category fails: the category gauge says so, and so does the failing canary', async (t) => {
  const { dir, config } = tempConfig(t, 'selftest', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
    'selftest:',
    '  interval: 1h',
    '  canaries:',
    // Not on any list: this canary fails. It comes first, so a last-one-wins gauge reads 1.
    '    - { id: adult-unlisted, category: adult, host: not-on-any-list.test }',
    '    - { id: adult-listed, category: adult, host: adult.test }',
    '    - { category: adult, host: blocked.test }',
  ]);
  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const text = await metrics(app.admin);
  t.match(text, /^safespot_selftest_success\{category="adult"\} 0$/m, 'the category gauge is the minimum of its canaries');
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-unlisted",category="adult"\} 0$/m, 'the failing canary, by its id');
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-listed",category="adult"\} 1$/m, 'the passing one');
  t.match(text, /^safespot_selftest_canary_success\{canary="adult-3",category="adult"\} 1$/m, 'a canary without an id is named by category and position');
  t.notMatch(text, /not-on-any-list|adult\.test|blocked\.test/, 'no canary host or URL in the metrics');
  app.child.kill('SIGTERM');
  await app.exited;
  const j = openJournal({ path: join(dir, 'journal.db'), retentionDays: 400, recordUrls: false, recordClients: false, readOnly: true });
  t.teardown(() => j.close());
  const rows = j.query(0, Date.now() + 1000, ['selftest']);
  t.same(
    rows.map((r) => [r.list, r.action]),
    [
      ['adult-unlisted', 'fail'],
      ['adult-listed', 'pass'],
      ['adult-3', 'pass'],
    ],
    'one journal row per canary, with its id',
  );
});

t.test('canary ids are bounded words and unique: a config that breaks either is refused with every problem', async (t) => {
  const { config } = tempConfig(t, 'selftest-bad', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'selftest:',
    '  canaries:',
    '    - { id: "http://adult.test/", category: adult, host: adult.test }',
    '    - { id: same, category: adult, host: adult.test }',
    '    - { id: same, category: adult, host: blocked.test }',
  ]);
  const app = serve(config);
  await t.rejects(app, /serve exited 2[\s\S]*selftest\.canaries\.0\.id[\s\S]*canary id "same" is used twice/);
});
