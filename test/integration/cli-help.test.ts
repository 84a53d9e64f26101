/**
 * Every command of the table in appliance/cli.ts answers `--help` and `-h` with its usage on stdout
 * and exit 0 (issue 19): the built binary, each command, each flag, also after other arguments.
 */
import t from 'tap';
import { COMMAND_NAMES } from '../../appliance/cli.js';
import { runCli } from '../helpers/appliance.js';

t.test('safespot --help lists exactly the commands of the table', async (t) => {
  const r = await runCli(['--help']);
  t.equal(r.code, 0);
  const listed = [...r.stdout.matchAll(/^ {2}(\S+) /gm)].map((m) => m[1]);
  t.same(listed, COMMAND_NAMES);
  t.ok(COMMAND_NAMES.length >= 10, 'the table is not empty');
});

for (const name of COMMAND_NAMES) {
  t.test(`${name} answers --help and -h`, async (t) => {
    for (const flag of ['--help', '-h']) {
      const r = await runCli([name, flag]);
      t.equal(r.code, 0, `${name} ${flag} exits 0`);
      t.match(r.stdout, new RegExp(`^usage: safespot ${name}\\b`), `${name} ${flag} prints its usage on stdout`);
      t.equal(r.stderr, '', `${name} ${flag} prints nothing on stderr`);
      // Help wins over whatever else is on the line, an unknown option included.
      const late = await runCli([name, '--no-such-option', flag]);
      t.equal(late.code, 0, `${name} --no-such-option ${flag} exits 0`);
      t.equal(late.stdout, r.stdout, 'the same usage');
    }
  });
}

t.test('certs subcommands answer --help too', async (t) => {
  for (const sub of ['init', 'export', 'show']) {
    const r = await runCli(['certs', sub, '--help']);
    t.equal(r.code, 0, `certs ${sub} --help`);
    t.match(r.stdout, /^usage: safespot certs init/);
  }
});

t.test('after -- a "--help" is a positional, not a help request', async (t) => {
  const r = await runCli(['canonicalize', '--', '--help']);
  t.equal(r.code, 2);
  t.match(r.stderr, /ERR_USAGE/);
  t.equal(r.stdout, '');
});
