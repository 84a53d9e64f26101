/**
 * What a reload applies, and what it says it did not (issue 19: "reload says ok but does not
 * apply"). Through a real serve, one process and a cluster: a new config that changes the self-test
 * interval and admin.pacProxy (both applied: the self-test runs on the new interval, the PAC names
 * the new address) and start-only settings (limits, upstream ports, the admin port): POST /reload
 * answers ok with those keys in `notApplied`, and a warning says a restart is needed.
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { CLI_DEMO_DIR as DEMO, serve, tempConfig } from '../helpers/appliance.js';
import { metricValue } from '../helpers/intercept-rig.js';
import { join } from 'node:path';

for (const workers of [1, 2]) {
  t.test(`reload scope (workers: ${workers})`, async (t) => {
    const base = [
      'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
      `workers: ${workers}`,
      `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${join(DEMO, 'adult.txt')} }]`,
    ];
    const { config } = tempConfig(t, 'reload-scope', [...base, 'admin: { host: 127.0.0.1, port: 0, pacProxy: "old.venue.test:3128" }', 'selftest: { interval: 1h }']);
    const app = await serve(config);
    t.teardown(() => void app.child.kill('SIGKILL'));
    const admin = `http://127.0.0.1:${app.admin}`;
    t.match(await (await fetch(`${admin}/proxy.pac`)).text(), /PROXY old\.venue\.test:3128/, 'the PAC names admin.pacProxy');
    const runs0 = metricValue(await (await fetch(`${admin}/metrics`)).text(), 'safespot_selftest_last_run_timestamp_seconds');

    // The same file, now with a new pacProxy and self-test interval (applied), and start-only changes.
    const text = (await import('node:fs')).readFileSync(config, 'utf8')
      .replace('pacProxy: "old.venue.test:3128"', `pacProxy: "new.venue.test:8080"`)
      .replace('admin: { host: 127.0.0.1, port: 0,', 'admin: { host: 127.0.0.1, port: 0, serveCa: false,')
      .replace('selftest: { interval: 1h }', 'selftest: { interval: 1s }\nlimits: { maxConnections: 77 }\nupstream: { ports: [443, 80, 8080] }');
    writeFileSync(config, text);
    const res = await fetch(`${admin}/reload`, { method: 'POST' });
    const answer = (await res.json()) as { ok: boolean; notApplied?: string[] };
    t.equal(res.status, 200);
    t.equal(answer.ok, true, 'the reload is ok: the policy side was applied');
    t.same([...(answer.notApplied ?? [])].sort(), ['limits', 'upstream'], 'the start-only keys that changed are named, nothing else');
    t.match(app.log(), /read at start only and take a restart/, 'and a warning says so');
    t.match(await (await fetch(`${admin}/proxy.pac`)).text(), /PROXY new\.venue\.test:8080/, 'admin.pacProxy followed the reload');
    // The self-test now runs every second: its timestamp moves on (bounded wait, not a timing threshold).
    let runs = runs0;
    for (let i = 0; i < 100 && runs <= runs0 + 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      runs = metricValue(await (await fetch(`${admin}/metrics`)).text(), 'safespot_selftest_last_run_timestamp_seconds');
    }
    t.ok(runs > runs0 + 1, `the self-test ran on the new interval (last run ${runs - runs0} s after the first)`);
    // Reloading the same file again: those settings are still not in force, and it still says so.
    const again = (await (await fetch(`${admin}/reload`, { method: 'POST' })).json()) as { ok: boolean; notApplied?: string[] };
    t.equal(again.ok, true);
    t.same([...(again.notApplied ?? [])].sort(), ['limits', 'upstream'], 'still named: compared with what the process started with');
    // Back to the started values: nothing is pending any more.
    writeFileSync(config, text.replace('\nlimits: { maxConnections: 77 }\nupstream: { ports: [443, 80, 8080] }', ''));
    const back = (await (await fetch(`${admin}/reload`, { method: 'POST' })).json()) as { ok: boolean; notApplied?: string[] };
    t.equal(back.notApplied, undefined, 'the start values again: no notApplied');
    app.child.kill('SIGTERM');
    t.equal(await app.exited, 0);
  });
}
