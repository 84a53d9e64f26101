/**
 * List sources shipped inside safespot (`source: builtin:NAME`): read like a file that is always
 * there, never fetched. Today one: `builtin:encrypted-dns`, the public DoH/DoT/DoQ endpoints
 * (policy/encrypted-dns.ts; docs/dns.md says where the names come from and how they are kept current).
 */
import { readFileSync } from 'node:fs';
import { encryptedDnsListText } from '../../policy/encrypted-dns.js';

const BUILTIN: ReadonlyMap<string, { readonly kind: 'domains'; readonly text: () => string }> = new Map([
  ['builtin:encrypted-dns', { kind: 'domains', text: encryptedDnsListText }],
]);

export const BUILTIN_SOURCES: readonly string[] = [...BUILTIN.keys()];

export const isBuiltinSource = (s: string): boolean => s.startsWith('builtin:');

/** The list kind a builtin source holds, or null for an unknown name. */
export function builtinKind(s: string): 'domains' | null {
  return BUILTIN.get(s)?.kind ?? null;
}

/** The bytes of a builtin source, or null for an unknown name. */
export function builtinBody(s: string): Uint8Array | null {
  const b = BUILTIN.get(s);
  return b ? new TextEncoder().encode(b.text()) : null;
}

/** A list file's bytes: a builtin source's, or the file's (readFileSync's errors for a missing file). */
export function readListFile(path: string): Uint8Array {
  return builtinBody(path) ?? readFileSync(path);
}
