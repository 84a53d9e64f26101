/**
 * docs/audit.md, "For the auditor, step by step", run literally (issue 21: "docs/audit.md explains
 * it step by step for an auditor, with the commands"), so the page cannot drift from the program.
 *
 * The section's fenced blocks (```sh step=NAME) are read from the doc; each `$ ` line is a command,
 * run with `sh -c` exactly as written, in a folder of its own (the auditor's), with `safespot` on
 * PATH being the built binary; the lines under it are output lines it must print, in that order
 * (`…` stands for anything); `# exit N` is the exit status it must give. Only the venue's own paths
 * and quarter dates are replaced, by this test's config, journal and times. The appliance is a
 * real `safespot serve` with synthetic lists and blocked traffic in two periods; the venue's blocks
 * run when the doc says (key at start, q1 after the first period, q2 after the second, the journal
 * copy after stop), then every auditor block in order, the tampered cases included.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CLI, CLI_DEMO_DIR, ROOT, serve, tempConfig } from '../helpers/appliance.js';
import { proxyConnect, proxyGet } from '../helpers/blocked-traffic.js';

interface Step {
  block: string;
  cmd: string;
  expect: string[];
  exit: number | null;
}

const SECTION = '## For the auditor, step by step';

/** The section's steps, in order, from the doc's markdown. */
export function walkthroughSteps(markdown: string): Step[] {
  const start = markdown.indexOf(`\n${SECTION}\n`);
  if (start < 0) return [];
  const rest = markdown.slice(start + SECTION.length + 2);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  const steps: Step[] = [];
  for (const m of section.matchAll(/^```sh step=(\S+)\n([\s\S]*?)^```$/gm)) {
    for (const line of m[2]!.split('\n')) {
      if (line.startsWith('$ ')) steps.push({ block: m[1]!, cmd: line.slice(2), expect: [], exit: null });
      else if (/^# exit \d+$/.test(line)) steps[steps.length - 1]!.exit = Number(line.slice(7));
      else if (line.trim() !== '') steps[steps.length - 1]!.expect.push(line);
    }
  }
  return steps;
}

/** An expected line as a whole-line pattern: `…` is anything, the rest literal. */
const linePattern = (line: string): RegExp => new RegExp(`^${line.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

/** Where the expected lines are not all found, in order, among the output's lines: which one. */
function missingLine(expect: readonly string[], output: string): string | null {
  const lines = output.split('\n').map((l) => l.replace(/\r$/, ''));
  let at = 0;
  for (const e of expect) {
    const re = linePattern(e);
    const i = lines.findIndex((l, k) => k >= at && re.test(l));
    if (i < 0) return e;
    at = i + 1;
  }
  return null;
}

function sh(cmd: string, cwd: string, path: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn('sh', ['-c', cmd], { cwd, env: { ...process.env, PATH: path }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('close', (code) => resolve({ code, out }));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('the parser of the walk-through finds what the doc shows', async (t) => {
  const md = ['# x', SECTION, 'text', '```sh step=a', '$ echo one', 'one', '# exit 0', '$ false', '# exit 1', '```', '## Next', '```sh step=b', '$ no', '```', ''].join('\n');
  t.same(walkthroughSteps(md), [
    { block: 'a', cmd: 'echo one', expect: ['one'], exit: 0 },
    { block: 'a', cmd: 'false', expect: [], exit: 1 },
  ]);
  t.ok(linePattern('result NOT INTACT: … fewer than EARLIER\'s …').test("result NOT INTACT: LATER's checkpoint covers 3 rows, fewer than EARLIER's 5"));
  t.notOk(linePattern('rows …').test('arrows 3'), 'whole lines only');
  t.equal(missingLine(['b', 'a'], 'a\nb\n'), 'a', 'in order');
});

t.test("docs/audit.md's auditor walk-through, run literally against a real serve", async (t) => {
  const steps = walkthroughSteps(readFileSync(join(ROOT, 'docs', 'audit.md'), 'utf8'));
  // The section shows every verify form and every exit status, and a tampered journal.
  const verifies = steps.filter((s) => s.cmd.startsWith('safespot audit verify'));
  for (const form of [/--journal journal\.db$/, /^safespot audit verify --key venue\.pub q1\.json$/, / q1\.json --journal /, / q1\.json q2\.json --journal /]) {
    t.ok(verifies.some((s) => form.test(s.cmd)), `the doc shows the form ${form}`);
  }
  t.same([...new Set(verifies.map((s) => s.exit))].sort(), [0, 1, 2], 'and exits 0, 1 and 2');
  t.ok(steps.some((s) => /^sqlite3 edited\.db "UPDATE events/.test(s.cmd)), 'a row edited with sqlite3');
  t.ok(steps.every((s) => s.exit !== null), 'every command says its exit status');
  const blocks = [...new Set(steps.map((s) => s.block))];
  t.same(blocks, ['venue-key', 'venue-q1', 'venue-q2', 'venue-journal', 'auditor'], 'the venue steps, then the auditor');

  const { dir, config } = tempConfig(t, 'audit-walkthrough', [
    'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
    'admin: null',
    'site: { id: kafe-ere, name: "Kafe Ërë" }',
    'lists:',
    `  - { id: demo-adult, category: adult, kind: domains, source: ${join(CLI_DEMO_DIR, 'adult.txt')} }`,
    '  - { id: mal, category: malware, kind: domains, source: mal.txt }',
  ]);
  writeFileSync(join(dir, 'mal.txt'), 'malware.test\n');
  const journal = join(dir, 'journal.db');
  const auditor = join(dir, 'auditor');
  const bin = join(dir, 'bin');
  mkdirSync(auditor);
  mkdirSync(bin);
  writeFileSync(join(bin, 'safespot'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
  chmodSync(join(bin, 'safespot'), 0o755);
  const path = `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`;
  const times = { t0: new Date(Date.now() - 60_000).toISOString(), t1: '', t2: new Date(Date.now() + 3_600_000).toISOString() };

  const outputs = new Map<string, string>();
  const runBlock = async (block: string) => {
    for (const s of steps.filter((x) => x.block === block)) {
      // The venue's paths and quarters are this test's; the auditor's commands run as written.
      const cmd = s.cmd
        .replaceAll('/etc/safespot/config.yaml', config)
        .replaceAll('/var/lib/safespot/journal.db', journal)
        .replaceAll('2026-07-01', times.t0)
        .replaceAll('2026-10-01', times.t1)
        .replaceAll('2027-01-01', times.t2);
      const r = await sh(cmd, auditor, path);
      outputs.set(s.cmd, r.out);
      t.equal(r.code, s.exit, `${s.cmd}: exit ${s.exit}\n${r.out}`);
      const missing = missingLine(s.expect, r.out);
      t.equal(missing, null, `${s.cmd}: prints what the doc shows${missing ? `; no line like "${missing}" in:\n${r.out}` : ''}`);
    }
  };

  const app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  await runBlock('venue-key');
  // Quarter 1: blocks in two categories, over HTTP and CONNECT.
  for (let i = 0; i < 4; i++) t.equal(await proxyGet(app.forward, `http://blocked.test/q1-${i}`), 403);
  t.match(await proxyConnect(app.forward, 'adult-video.test:443'), /^HTTP\/1\.1 403/);
  t.equal(await proxyGet(app.forward, 'http://malware.test/x'), 403);
  await sleep(600);
  times.t1 = new Date().toISOString();
  await sleep(50);
  await runBlock('venue-q1');
  // Quarter 2.
  for (let i = 0; i < 3; i++) t.equal(await proxyGet(app.forward, `http://adult.test/q2-${i}`), 403);
  await sleep(600);
  await runBlock('venue-q2');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);
  await runBlock('venue-journal');
  await runBlock('auditor');

  // Step 4: the csv's figure and the json's are one number, the quarter's real blocks.
  const csv = /^blocked_requests,adult,,(\d+)\r?$/m.exec(outputs.get("grep '^blocked_requests,adult,' q1.csv") ?? '')?.[1];
  const json = outputs.get("jq '.blockedRequests.byCategory.adult' q1.json")?.trim();
  t.equal(csv, '5', 'the csv: 4 blocked.test and 1 adult-video.test in quarter 1');
  t.equal(json, csv, 'the json says the same');
  const q1 = JSON.parse(readFileSync(join(auditor, 'q1.json'), 'utf8')) as { appliance: { fingerprint: string } };
  t.match(outputs.get('safespot audit verify --key venue.pub --journal journal.db'), `key safespot/kafe-ere ${q1.appliance.fingerprint}`, "the fingerprint verify prints is the report's");
  t.match(readFileSync(join(auditor, 'q1.html'), 'utf8'), q1.appliance.fingerprint, 'and the html page shows it');
});
