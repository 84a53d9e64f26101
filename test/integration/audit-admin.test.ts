/**
 * Admin actions on the record (issue 21, point 7), with a real `safespot serve`: the CA in use, each
 * list's version in force, POST /reload and SIGHUP (with the SHA-256 of the config file read, and a
 * refused one too) are `admin` rows of the journal's tree; `audit verify` accepts the journal, and
 * an admin row edited or deleted with the sqlite3 shell is found (exit 1). A restart with another CA
 * says which one it replaced. No list clear text in any admin row.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CLI_DEMO_DIR, runCli, serve, tempConfig } from '../helpers/appliance.js';
import { runCmd } from '../helpers/commands.js';

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

interface AdminRow {
  id: number;
  action: string;
  list: string | null;
  category: string | null;
  detail: string;
}

async function adminRows(journal: string): Promise<AdminRow[]> {
  const r = await runCmd('sqlite3', ['-json', journal, "SELECT id, action, list, category, detail FROM events WHERE kind = 'admin' ORDER BY id"]);
  if (r.code !== 0) throw new Error(r.stderr);
  const text = r.stdout.toString().trim();
  return text === '' ? [] : (JSON.parse(text) as AdminRow[]);
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function caFingerprint(dir: string): Promise<string> {
  const r = await runCmd('openssl', ['x509', '-in', join(dir, 'ca.crt'), '-noout', '-fingerprint', '-sha256']);
  return /=([0-9A-F:]+)/.exec(r.stdout.toString())![1]!.replace(/:/g, '').toLowerCase();
}

t.test('CA, list swaps, POST /reload and SIGHUP are journaled rows that verify, and tampering with them is found', async (t) => {
  const { dir, config } = tempConfig(t, 'audit-admin', []);
  const listFile = join(dir, 'adult.txt');
  copyFileSync(join(CLI_DEMO_DIR, 'adult.txt'), listFile);
  const caA = join(dir, 'ca-a');
  const caB = join(dir, 'ca-b');
  for (const d of [caA, caB]) t.equal((await runCli(['certs', 'init', '--dir', d])).code, 0, `certs init ${d}`);
  const base = readFileSync(config, 'utf8');
  const write = (ca: string, extra = ''): void =>
    writeFileSync(
      config,
      [
        'listeners: { forward: { host: 127.0.0.1, port: 0 } }',
        'admin: { host: 127.0.0.1, port: 0, serveCa: true }',
        'site: { id: venue-admin, name: "Admin venue" }',
        `ca: { dir: ${ca} }`,
        `lists: [{ id: demo-adult, category: adult, kind: domains, source: ${listFile} }]`,
        extra,
        base,
      ].join('\n'),
    );
  write(caA);
  const journal = join(dir, 'journal.db');
  const keyFile = join(dir, 'appliance.pub');

  let app = await serve(config);
  t.teardown(() => void app.child.kill('SIGKILL'));
  const key = await runCli(['audit', 'key', '--config', config]);
  writeFileSync(keyFile, key.stdout);
  const fpA = await caFingerprint(caA);
  const listSha1 = sha256(readFileSync(listFile));

  let rows = await until('the start rows', async () => {
    const r = await adminRows(journal);
    return r.some((x) => x.action === 'list_swap') && r.some((x) => x.action === 'ca_change') ? r : undefined;
  });
  const ca1 = rows.find((r) => r.action === 'ca_change')!;
  t.match(ca1.detail, new RegExp(`^ca sha256:${fpA}; valid until \\S+; first recorded$`), 'the CA in use, by the fingerprint openssl shows');
  const startSha = sha256(readFileSync(config));
  t.same(rows.filter((r) => r.action === 'config').map((r) => r.detail), [`config sha256:${startSha} at start`], 'the start\'s config, by the digest sha256sum gives');
  const swap1 = rows.find((r) => r.action === 'list_swap')!;
  t.equal(swap1.list, 'demo-adult');
  t.equal(swap1.category, 'adult');
  t.match(swap1.detail, new RegExp(`^sha256:${listSha1}; \\d+ entries; first in force since start$`), 'the list body digest, as sha256sum gives it');

  // A new list version and POST /reload.
  appendFileSync(listFile, 'new-one.test\n');
  const listSha2 = sha256(readFileSync(listFile));
  const configSha = sha256(readFileSync(config));
  const res = await fetch(`http://127.0.0.1:${app.admin}/reload`, { method: 'POST' });
  t.equal(res.status, 200, await res.text());
  rows = await until('the reload row', async () => {
    const r = await adminRows(journal);
    return r.some((x) => x.action === 'reload') && r.filter((x) => x.action === 'list_swap').length >= 2 ? r : undefined;
  });
  const reload1 = rows.find((r) => r.action === 'reload')!;
  t.match(reload1.detail, new RegExp(`^trigger http; config sha256:${configSha}; applied; policy \\S+$`), 'POST /reload with the config file digest');
  const swap2 = rows.filter((r) => r.action === 'list_swap')[1]!;
  t.match(swap2.detail, new RegExp(`^sha256:${listSha2}; \\d+ entries$`), 'the new list version swapped in');

  // A broken config by SIGHUP: refused, and the digest is that of the refused file.
  writeFileSync(config, `${readFileSync(config, 'utf8')}\nnoSuchKey: 1\n`);
  const badSha = sha256(readFileSync(config));
  app.child.kill('SIGHUP');
  rows = await until('the refused reload', async () => {
    const r = await adminRows(journal);
    return r.filter((x) => x.action === 'reload').length >= 2 ? r : undefined;
  });
  t.match(rows.filter((r) => r.action === 'reload')[1]!.detail, new RegExp(`^trigger sighup; config sha256:${badSha}; refused: config invalid, 1 problem\\(s\\)$`));
  for (const r of rows) t.notMatch(r.detail, /new-one\.test|blocked\.test|adult\.test/, 'no list line in an admin row');

  // Restart with another CA: the change is recorded with the one it replaces.
  app.child.kill('SIGTERM');
  await app.exited;
  write(caB);
  app = await serve(config);
  const fpB = await caFingerprint(caB);
  rows = await until('the CA change', async () => {
    const r = await adminRows(journal);
    return r.filter((x) => x.action === 'ca_change').length >= 2 ? r : undefined;
  });
  t.match(rows.filter((r) => r.action === 'ca_change')[1]!.detail, new RegExp(`^ca sha256:${fpB}; valid until \\S+; replaces sha256:${fpA}$`));
  app.child.kill('SIGTERM');
  await app.exited;
  // A second start with the same CA adds no CA row.
  app = await serve(config);
  app.child.kill('SIGTERM');
  await app.exited;
  t.equal((await adminRows(journal)).filter((x) => x.action === 'ca_change').length, 2, 'an unchanged CA is not recorded again');
  const configs = (await adminRows(journal)).filter((x) => x.action === 'config');
  t.equal(configs.length, 3, 'one config row per start');
  t.equal(configs[2]!.detail, `config sha256:${sha256(readFileSync(config))} at start`, 'the last start\'s config is the file as it is now');

  const v = await runCli(['audit', 'verify', '--key', keyFile, '--journal', journal]);
  t.equal(v.code, 0, `the journal with its admin rows verifies:\n${v.stdout}`);
  t.match(v.stdout, /result INTACT/);

  const tamper = async (name: string, sql: string): Promise<void> => {
    const copy = join(dir, `${name}.db`);
    copyFileSync(journal, copy);
    const r = await runCmd('sqlite3', [copy, sql]);
    t.equal(r.code, 0, r.stderr);
    const out = await runCli(['audit', 'verify', '--key', keyFile, '--journal', copy]);
    t.equal(out.code, 1, `${name}: exit 1\n${out.stdout}`);
    t.match(out.stdout, /result NOT INTACT: checkpoint #\d+ .*a row was edited, deleted, inserted or moved/, `${name}: named`);
  };
  await tamper('reload-digest-edited', `UPDATE events SET detail = replace(detail, '${configSha}', '${'0'.repeat(64)}') WHERE kind = 'admin' AND action = 'reload'`);
  await tamper('refused-reload-deleted', "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events WHERE kind = 'admin' AND action = 'reload')");
  await tamper('ca-change-deleted', "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events WHERE kind = 'admin' AND action = 'ca_change')");
  await tamper('list-swap-relabelled', "UPDATE events SET action = 'reload' WHERE id = (SELECT MIN(id) FROM events WHERE kind = 'admin' AND action = 'list_swap')");
});
