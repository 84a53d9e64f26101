/**
 * Admin facts that `serve` puts on the record at start (issue 21, point 7), beside the reloads
 * (serve/reload.ts), list swaps (lists/policy-manager.ts) and pruning (audit/journal.ts):
 *
 * - `ca_change`: the interception CA in ca.dir is read once, at start; when its fingerprint is not
 *   the one the journal last recorded (a `safespot certs init` into a fresh folder, a rotation, a
 *   copied-in CA), an `admin` row says so, with the new fingerprint and the one it replaced. A CA
 *   never changes while serve runs, so a start is where every change shows.
 *
 * Public facts only: the certificate's SHA-256 fingerprint and expiry, never the key.
 */
import type { Journal } from '../../audit/journal.js';

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
