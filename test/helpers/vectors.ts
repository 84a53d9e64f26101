/**
 * Where the shared reference vectors are: `../shared/vectors` beside the repository (CI lays a copy
 * of shared/ beside its clone, as on the development machines). Tests read them at run time and
 * never copy them into the repository.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest directory above this file holding package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the test helpers');
    dir = up;
  }
  return dir;
}

export const VECTORS_DIR = join(repoRoot(), '..', 'shared', 'vectors');
export const SAFE_BROWSING_VECTORS = join(VECTORS_DIR, 'safebrowsing', 'official.json');
export const PDQ_VECTORS = join(VECTORS_DIR, 'pdq');
