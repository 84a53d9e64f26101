/**
 * `safespot sign --key KEY.pem --name NAME [--version N] FILE`: write `FILE.sig`, the signed
 * statement for a list (appliance/lists/signature.ts) that an appliance verifies against the list's
 * `publicKey`: it names the list (the appliance's `lists[].signedName`, default the list id) and a
 * version (default: milliseconds since the epoch now), so a mirror can neither serve one signed list as
 * another nor an older signed version as the current one. For list providers; docs/lists-fleet.md.
 */
import { readFileSync } from 'node:fs';
import { SafespotError } from '../../policy/errors.js';
import type { Command } from '../io.js';
import { parseCommandArgs, readSigningKey, writeAtomic } from '../io.js';
import { signList, statementProblems } from '../lists/signature.js';

const USAGE = 'safespot sign --key KEY.pem --name NAME [--version N] FILE';

export const run: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(args, { key: { type: 'string' }, name: { type: 'string' }, version: { type: 'string' } }, USAGE, true);
  const problems: string[] = [];
  if (!values.key) problems.push('--key is required');
  if (!values.name) problems.push('--name is required');
  if (positionals.length !== 1) problems.push('exactly one FILE is required');
  const version = values.version === undefined ? Date.now() : /^\d{1,16}$/.test(values.version) ? Number(values.version) : NaN;
  if (Number.isNaN(version)) problems.push(`--version ${values.version} is not a non-negative integer`);
  else if (values.name) problems.push(...statementProblems(values.name, version));
  if (problems.length) throw new SafespotError('ERR_USAGE', `${problems.join('\n')}\nusage: ${USAGE}`);
  const key = readSigningKey(values.key!, '--key', USAGE);
  const file = positionals[0]!;
  let body: Buffer;
  try {
    body = readFileSync(file);
  } catch (err) {
    throw new SafespotError('ERR_USAGE', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})\nusage: ${USAGE}`);
  }
  writeAtomic(`${file}.sig`, Buffer.from(signList(body, values.name!, version, key)));
  io.stderr.write(`safespot sign: ${file}.sig names "${values.name}", version ${version}\n`);
  return 0;
};
