/**
 * Admin facts that `serve` puts on the record at start (issue 21, point 7), beside the reloads
 * (serve/reload.ts), list swaps (lists/policy-manager.ts) and pruning (audit/journal.ts):
 *
 * - `ca_change`: the interception CA in ca.dir is read once, at start; when its fingerprint is not
 *   the one the journal last recorded (a `safespot certs init` into a fresh folder, a rotation, a
 *   copied-in CA), an `admin` row says so, with the new fingerprint and the one it replaced. A CA
 *   never changes while serve runs, so a start is where every change shows.
 *
 * - `config`: every start records the SHA-256 of the config file's bytes it started from (what an
 *   auditor compares with `sha256sum` of the file the venue hands over), as reloads do for theirs.
 *
 * Public facts only: the certificate's SHA-256 fingerprint and expiry, never the key; the config's
 * digest, never its content (it may name token files and list URLs).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Journal } from '../../audit/journal.js';

/**
 * Journal the configuration a start came up with. The file is read again for its digest (the
 * config was parsed from it a moment before); unreadable now, the row says so rather than nothing.
 */
export function noteConfigAtStart(journal: Pick<Journal, 'record'>, configPath: string | undefined): void {
  let detail: string;
  if (configPath === undefined) detail = 'embedded defaults (no config file)';
  else {
    try {
      detail = `config sha256:${createHash('sha256').update(readFileSync(configPath)).digest('hex')}`;
    } catch (err) {
      detail = `config file unreadable for its digest (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  }
  journal.record({ kind: 'admin', action: 'config', detail: `${detail} at start` });
}

/** Journal the CA in use when it differs from the last one recorded; returns whether a row was written. */
export function noteCaInForce(journal: Pick<Journal, 'record' | 'lastAdmin'>, ca: { fingerprint: string; notAfter: Date } | undefined): boolean {
  if (!ca) return false;
  // Plain lower-case hex (64 digits): the colon form would not fit the detail twice.
  const fp = ca.fingerprint.replace(/:/g, '').toLowerCase();
  const last = journal.lastAdmin('ca_change');
  const lastFp = /^ca sha256:([0-9a-f]{64})/.exec(last?.detail ?? '')?.[1] ?? null;
  if (lastFp === fp) return false;
  journal.record({
    kind: 'admin',
    action: 'ca_change',
    detail: `ca sha256:${fp}; valid until ${ca.notAfter.toISOString()}; ${lastFp === null ? 'first recorded' : `replaces sha256:${lastFp}`}`,
  });
  return true;
}
