/**
 * `safespot hash [--dihedral] FILE…`: one JSON line per file with its exact hashes (md5, sha1,
 * sha256), its PDQ hash and quality, and the stored width and height; with --dihedral also the
 * eight PDQ dihedral variants (order: original, rotate90, rotate180, rotate270, flipx, flipy,
 * flipplus1, flipminus1). `lowQuality` is true when quality < 50, the reference's bar below which
 * a PDQ hash is neither listed nor matched by default.
 *
 * A file that cannot be read gives `{"file","error","message"}`; one that reads but does not decode
 * as an image also carries its exact hashes (they need no decoding). Every file is tried; the exit
 * status is 1 if any failed.
 */
import { readFile } from 'node:fs/promises';
import { SafespotError } from '../../policy/errors.js';
import { exactHashes } from '../../policy/image-hash.js';
import { pdqFromPixels } from '../../policy/pdq.js';
import { decodeForPdq } from '../serve/image-decode.js';
import { parseCommandArgs, writeOut, type Command } from '../io.js';

const USAGE = 'safespot hash [--dihedral] FILE…';
/** The reference's recommended floor (pdq/README.md): hashes of quality ≤ 49 say little. */
const MIN_QUALITY = 50;

export const run: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(args, { dihedral: { type: 'boolean' } }, USAGE, true);
  if (positionals.length === 0) throw new SafespotError('ERR_USAGE', `no files given\nusage: ${USAGE}`);
  let failed = false;
  for (const file of positionals) {
    const line = await hashFile(file, values.dihedral === true);
    if ('error' in line) failed = true;
    await writeOut(io.stdout, `${JSON.stringify(line)}\n`);
  }
  return failed ? 1 : 0;
};

async function hashFile(file: string, dihedral: boolean): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { file, error: e.code ?? 'ERR_FILE_READ', message: e.message };
  }
  const exact = exactHashes(bytes);
  try {
    const img = await decodeForPdq(bytes);
    const pdq = pdqFromPixels(img.pixels, { dihedral });
    return {
      file,
      ...exact,
      pdq: pdq.hash,
      quality: pdq.quality,
      lowQuality: pdq.quality < MIN_QUALITY,
      width: img.width,
      height: img.height,
      ...(dihedral ? { dihedral: pdq.dihedral } : {}),
    };
  } catch (err) {
    const code = err instanceof SafespotError ? err.code : 'ERR_INTERNAL';
    return { file, ...exact, error: code, message: (err as Error).message };
  }
}
