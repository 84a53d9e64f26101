/**
 * A start with unchanged lists and a valid last good bundle compiles nothing (issue 23): the real
 * `serve` restarted on the same config and list file enforces the saved bundle, logs that the
 * lists are unchanged, and never starts a compile worker (its debug line "compile worker started"
 * is absent); a changed list file or a changed option compiles again. Each start is checked through
 * the forward proxy: the listed hosts get the block page, so the policy in force is the right one.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { serve, tempConfig, type Running } from '../helpers/appliance.js';

async function status(app: Running, url: string): Promise<number> {
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${app.forward}`, proxyTunnel: false });
  try {
    const res = await request(url, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.dump();
    return res.statusCode;
  } finally {
    await agent.close();
  }
}

async function run(t: Test, config: string): Promise<string> {
  const app = await serve(config);
  try {
    t.equal(await status(app, 'http://a.test/'), 403, 'a listed host is blocked');
    return app.log();
  } finally {
    app.child.kill('SIGTERM');
    await app.exited;
  }
}

const configLines = (dir: string, allow: string) => [
  'logLevel: debug',
  'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
  'admin: { host: 127.0.0.1, port: 0 }',
  'lists:',
  `  - { id: adult, category: adult, kind: domains, source: ${join(dir, 'adult.txt')} }`,
  `allow: [${allow}]`,
];

t.test('restart with the same lists and options: no compile, no compile worker', async (t) => {
  const { dir, config } = tempConfig(t, 'start-unchanged', []);
  const write = (allow: string) => writeFileSync(config, [...configLines(dir, allow), `journal: { path: ${join(dir, 'journal.db')} }`, `state: { dir: ${join(dir, 'state')} }`, ''].join('\n'));
  write('');
  // Above INLINE_BYTES (256 KiB): a list this size is compiled in the worker, whose start is the
  // evidence of a compile here (smaller lists compile on the main thread, compile-worker-inline.test).
  const filler = Array.from({ length: 20_000 }, (_, i) => `filler${i}.blocked.test\n`).join('');
  writeFileSync(join(dir, 'adult.txt'), `a.test\nb.test\n${filler}`);

  const first = await run(t, config);
  t.match(first, /compile worker started/, 'the first start compiles in the worker');
  t.match(first, /"policy in force"[^\n]*"how":"compiled"/);

  const second = await run(t, config);
  t.match(second, /"how":"last good bundle"/, 'the restart enforces the last good bundle');
  t.match(second, /lists and options unchanged: the policy in force is theirs, not compiled again/, 'and says it did not compile');
  t.notMatch(second, /compile worker started/, 'no compile worker was started');
  t.notMatch(second, /"policy in force"[^\n]*"how":"compiled"/, 'no compiled policy was swapped in');

  // A changed list file: compiled again, and the new entry is enforced.
  writeFileSync(join(dir, 'adult.txt'), `a.test\nb.test\nc.test\n${filler}`);
  const app = await serve(config);
  try {
    t.match(app.log(), /compile worker started/, 'a changed list is compiled');
    t.equal(await status(app, 'http://c.test/'), 403, 'the new entry is in force');
  } finally {
    app.child.kill('SIGTERM');
    await app.exited;
  }
  t.notMatch(await run(t, config), /compile worker started/, 'unchanged again: no compile');

  // A changed option (the allowlist), lists unchanged: compiled again.
  write('b.test');
  const fourth = await run(t, config);
  t.match(fourth, /compile worker started/, 'a changed option is compiled');
  t.notMatch(fourth, /not compiled again/);
});
