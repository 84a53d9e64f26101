import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { openJournal } from '../../audit/journal.js';
import { parseIsoTime } from '../../appliance/commands/audit.js';

const cli = fileURLToPath(new URL('../../appliance/cli.js', import.meta.url));
const DAY = 86_400_000;
const T0 = Date.UTC(2025, 0, 1);

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.once('error', reject);
    p.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('safespot audit report prints the journal’s figures as JSON, CSV and HTML', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-cli-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'safespot.yaml'),
    [
      'journal: { path: data/journal.db, retentionDays: 4000 }',
      'lists:',
      '  - { id: adult-domains, category: adult, kind: domains, source: lists/adult.txt }',
      '  - { id: hotline, category: csam, kind: hashed-urls, source: lists/hotline.txt }',
      '',
    ].join('\n'),
  );
  const j = openJournal({ path: join(dir, 'data', 'journal.db'), retentionDays: 4000, recordUrls: false, recordClients: false, lifecycle: false });
  const plan = { adult: [3, 0, 5], csam: [1, 2, 0] } as const;
  j.record({ kind: 'filtering_active', time: T0 - 1000 });
  for (const [category, perDay] of Object.entries(plan)) {
    perDay.forEach((n, d) => {
      for (let i = 0; i < n; i++) j.record({ kind: 'verdict', action: 'block', category, list: category === 'adult' ? 'adult-domains' : 'hotline', listener: 'forward', protocol: 'connect', time: T0 + d * DAY + i });
    });
  }
  j.record({ kind: 'image', action: 'block', category: 'csam', list: 'img', match: 'pdq', time: T0 + DAY });
  j.record({ kind: 'list_refresh', list: 'hotline', time: T0 + 12 * 3_600_000 });
  j.record({ kind: 'selftest', category: 'adult', action: 'pass', time: T0 + 5 });
  j.close();

  const cfg = join(dir, 'safespot.yaml');
  const period = ['--from', '2025-01-01', '--to', '2025-01-03T00:00:00Z'];
  const json = await run(['audit', 'report', '--config', cfg, ...period, '--format', 'json']);
  t.equal(json.code, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  t.same(r.blockedRequests, { total: 3 + 0 + 1 + 2, byCategory: { adult: 3, csam: 3 } }, 'day 3 is outside the period');
  t.same(r.blockedImages.byCategory, { adult: 0, csam: 1 });
  t.same(r.blocksPerDay, [
    { day: '2025-01-01', requests: 4, images: 0 },
    { day: '2025-01-02', requests: 2, images: 1 },
  ]);
  t.same(r.lists.map((l: { list: string }) => l.list), ['adult-domains', 'hotline'], 'configured lists are listed');
  t.equal(r.filtering.activeFraction, 1);
  t.equal(r.selftests.passed, 1);

  const csv = await run(['audit', 'report', '--config', cfg, ...period, '--format', 'csv']);
  t.equal(csv.code, 0, csv.stderr);
  t.match(csv.stdout, /^section,key,subkey,value\r\n/);
  t.match(csv.stdout, /\r\nblocked_requests,adult,,3\r\n/);
  t.match(csv.stdout, /\r\nblocked_images,csam,pdq,1\r\n/);

  const html = await run(['audit', 'report', '--journal', join(dir, 'data', 'journal.db'), ...period, '--format', 'html']);
  t.equal(html.code, 0, html.stderr);
  t.match(html.stdout, /^<!DOCTYPE html>/);
  t.match(html.stdout, /<svg /);
  t.match(html.stdout, /<h2>Blocked requests: 6<\/h2>/);

  // The report opens the journal read-only: nothing was added to it.
  const again = openJournal({ path: join(dir, 'data', 'journal.db'), retentionDays: 4000, recordUrls: false, recordClients: false, readOnly: true });
  t.equal(again.query(0, T0 + 10 * DAY).length, 1 + 8 + 3 + 1 + 1 + 1, 'exactly the seeded rows: no start/stop written by a report');
  again.close();
});

t.test('bad arguments are clear errors with the documented exit statuses', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safespot-cli-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const journal = join(dir, 'missing.db');
  const cases: Array<{ args: string[]; code: number; err: RegExp }> = [
    { args: ['audit'], code: 2, err: /subcommand "report"/ },
    { args: ['audit', 'report', '--journal', journal, '--from', '2025-01-01'], code: 2, err: /--to is required/ },
    { args: ['audit', 'report', '--from', '2025-01-01', '--to', '2025-02-01'], code: 2, err: /--config FILE/ },
    { args: ['audit', 'report', '--journal', journal, '--from', 'yesterday', '--to', '2025-02-01'], code: 2, err: /--from "yesterday" is not an ISO 8601/ },
    { args: ['audit', 'report', '--journal', journal, '--from', '2025-01-01T00:00:00', '--to', '2025-02-01'], code: 2, err: /with a zone/ },
    { args: ['audit', 'report', '--journal', journal, '--from', '2025-02-01', '--to', '2025-01-01'], code: 2, err: /--to must be after --from/ },
    { args: ['audit', 'report', '--journal', journal, '--from', '2025-01-01', '--to', '2025-02-01', '--format', 'pdf'], code: 2, err: /--format must be one of json, csv, html/ },
    { args: ['audit', 'report', '--journal', journal, '--from', '2025-01-01', '--to', '2025-02-01', '--bogus'], code: 2, err: /ERR_USAGE/ },
    { args: ['audit', 'report', '--journal', journal, '--from', '2025-01-01', '--to', '2025-02-01'], code: 1, err: /ERR_JOURNAL: cannot open the audit journal/ },
  ];
  for (const c of cases) {
    const r = await run(c.args);
    t.equal(r.code, c.code, c.args.join(' '));
    t.match(r.stderr, c.err, c.args.join(' '));
    t.notMatch(r.stderr, /internal error|at .*\.js:\d+/, 'no stack trace');
  }
});

t.test('ISO 8601 parsing', async (t) => {
  const table: Array<[string, number | null]> = [
    ['2025-01-01', T0],
    ['2025-01-01T00:00:00Z', T0],
    ['2025-01-01T02:00:00+02:00', T0],
    ['2025-01-01T00:00Z', T0],
    ['2025-01-01T00:00:00.250Z', T0 + 250],
    ['2025-02-30', null],
    ['2025-01-01T00:00:00', null],
    ['01/01/2025', null],
    ['', null],
  ];
  for (const [text, want] of table) t.equal(parseIsoTime(text), want, JSON.stringify(text));
});
