/**
 * `safespot compile --config FILE -o FILE`: compile every list of a config (URL and image hash
 * lists) into one policy bundle. Writes the bundle atomically (temporary file, then rename) and
 * prints a one-line summary to stderr (lists, entries, malformed lines, version), plus one line per
 * URL list with malformed lines and one per image list (line numbers only: a hashed list's text
 * never leaves it).
 *
 * `--sign KEY.pem` (an Ed25519 private key) also writes `OUT.sig`: the signed statement naming the
 * bundle (`--name`, default `bundle`: the appliance's bundle.signedName) and a version (milliseconds
 * since the epoch) over its SHA-256 (appliance/lists/signature.ts), which lists/source.ts verifies against a
 * `bundle.publicKey`. The key is checked before anything is compiled; a bad key path or a key of
 * another type is bad usage (exit 2).
 */
import { encodeBundle } from '../../policy/bundle.js';
import { compilePolicy, type Policy } from '../../policy/policy.js';
import { loadConfigFile } from '../config.js';
import type { Command, Io } from '../io.js';
import { parseCommandArgs, readSigningKey, writeAtomic } from '../io.js';
import { signList } from '../lists/signature.js';
import { compileInputFromConfig } from '../lists/load.js';
import { SafespotError } from '../../policy/errors.js';

const USAGE = 'safespot compile --config FILE -o FILE [--sign KEY.pem [--name NAME]]';

/** The per-list notes and the summary line of a compiled policy. */
export function describeCompile(policy: Policy, io: Io, output?: string): void {
  const { meta } = policy.parts;
  let entries = 0;
  let malformed = 0;
  let duplicates = 0;
  for (const l of meta.lists) {
    entries += l.entries;
    malformed += l.report.malformed;
    duplicates += l.duplicates;
    if (l.report.malformed > 0) {
      const more = l.report.malformed > l.report.malformedLines.length ? ', …' : '';
      io.stderr.write(`safespot compile: list "${l.id}": ${l.report.malformed} malformed line(s) skipped (line ${l.report.malformedLines.join(', ')}${more})\n`);
    }
    if (l.report.shortPrefixes > 0) {
      io.stderr.write(`safespot compile: list "${l.id}": ${l.report.shortPrefixes} entr(ies) are hash prefixes shorter than 8 bytes and match on those bytes only\n`);
    }
  }
  const images = meta.images ?? [];
  let imageEntries = 0;
  for (const l of images) {
    imageEntries += l.entries;
    const r = l.report;
    const notes = [`${l.entries} entries`];
    if (r.duplicates > 0) notes.push(`${r.duplicates} duplicate(s)`);
    if (r.lowQuality > 0) notes.push(`${r.lowQuality} PDQ hash(es) below quality ${policy.images?.options.pdqMinQuality ?? 50} dropped`);
    if (r.malformed > 0) {
      const more = r.malformed > r.malformedLines.length ? ', …' : '';
      notes.push(`${r.malformed} malformed line(s) skipped (line ${r.malformedLines.join(', ')}${more})`);
    }
    io.stderr.write(`safespot compile: list "${l.id}": image list (${l.kind}, ${l.mode}), ${notes.join(', ')}\n`);
  }
  io.stderr.write(
    `safespot compile: ${meta.lists.length} URL list(s), ${entries} entries, ${malformed} malformed line(s), ` +
      `${duplicates} duplicate(s), ${images.length} image list(s) with ${imageEntries} entries, version ${policy.version}` +
      `${output ? ` -> ${output}` : ''}\n`,
  );
}

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(
    args,
    { config: { type: 'string', short: 'c' }, output: { type: 'string', short: 'o' }, sign: { type: 'string' }, name: { type: 'string' } },
    USAGE,
  );
  if (!values.config || !values.output) throw new SafespotError('ERR_USAGE', `--config and -o are required\nusage: ${USAGE}`);
  const key = values.sign === undefined ? null : readSigningKey(values.sign, '--sign', USAGE);
  const config = loadConfigFile(values.config);
  const policy = compilePolicy(compileInputFromConfig(config));
  const bytes = encodeBundle(policy);
  // The bundle first, then its signature: a reader between the two sees a signature that fails
  // (refused, retried), never an unsigned new bundle accepted. Publishers should upload in the same order.
  writeAtomic(values.output, bytes);
  // The signed statement names the bundle and a version (milliseconds now) that must not go back.
  if (key) writeAtomic(`${values.output}.sig`, Buffer.from(signList(bytes, values.name ?? 'bundle', Date.now(), key)));
  describeCompile(policy, io, values.output);
  if (key) io.stderr.write(`safespot compile: Ed25519 signature -> ${values.output}.sig\n`);
  return 0;
};
