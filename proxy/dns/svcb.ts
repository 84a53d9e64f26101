/**
 * SVCB and HTTPS rdata (RFC 9460 §2.2), edited as bytes: SvcPriority (2 octets), TargetName (an
 * uncompressed name, §2.2: "MUST NOT be compressed"), then SvcParams, each a 2-octet key, a 2-octet
 * length and that many octets of value, keys in strictly increasing order (§2.2).
 *
 * The one edit: the `ech` SvcParam (key 5, RFC 9460 §14.3.2 / the ECH draft's SVCB binding) is
 * removed and everything else is kept byte for byte. A record whose `mandatory` list (key 0, §8)
 * names `ech` is dropped instead: a client must not use a record without its mandatory keys, so
 * keeping it without `ech` would be a record the origin says is unusable. A record we cannot read
 * is dropped too: passing it might pass an `ech` we did not see.
 */
import { readName } from './codec.js';

export const SVC_KEY_MANDATORY = 0;
export const SVC_KEY_ALPN = 1;
export const SVC_KEY_IPV4HINT = 4;
export const SVC_KEY_ECH = 5;
export const SVC_KEY_IPV6HINT = 6;

export type SvcbEdit =
  | { readonly kind: 'keep' }
  | { readonly kind: 'edited'; readonly rdata: Uint8Array }
  | { readonly kind: 'drop'; readonly why: 'mandatory_ech' | 'malformed' };

const KEEP: SvcbEdit = Object.freeze({ kind: 'keep' });
const DROP_MANDATORY: SvcbEdit = Object.freeze({ kind: 'drop', why: 'mandatory_ech' });
const DROP_MALFORMED: SvcbEdit = Object.freeze({ kind: 'drop', why: 'malformed' });

/** Offset (within rdata) where SvcParams start, or -1 when priority and target do not fit. */
function paramsStart(rdata: Uint8Array): number {
  if (rdata.length < 3) return -1;
  // TargetName is uncompressed: walk its labels without pointers.
  let pos = 2;
  for (let labels = 0; labels < 128; labels++) {
    if (pos >= rdata.length) return -1;
    const len = rdata[pos]!;
    if (len === 0) return pos + 1;
    if (len > 63) return -1;
    pos += len + 1;
  }
  return -1;
}

/** The TargetName of an SVCB/HTTPS rdata ('' for the root, i.e. "the owner name"), or null if unreadable. */
export function svcbTarget(rdata: Uint8Array): string | null {
  if (paramsStart(rdata) < 0) return null;
  // readName on a copy with a 12-byte pad would allow pointers; paramsStart already refused them.
  const padded = new Uint8Array(12 + rdata.length);
  padded.set(rdata, 12);
  try {
    return readName(padded, 14).name;
  } catch {
    return null;
  }
}

/** Remove `ech`; drop the record when `mandatory` names it or the params do not parse. */
export function stripEch(rdata: Uint8Array): SvcbEdit {
  const start = paramsStart(rdata);
  if (start < 0) return DROP_MALFORMED;
  let pos = start;
  let echAt = -1;
  let echEnd = -1;
  let lastKey = -1;
  while (pos < rdata.length) {
    if (pos + 4 > rdata.length) return DROP_MALFORMED;
    const key = (rdata[pos]! << 8) | rdata[pos + 1]!;
    const len = (rdata[pos + 2]! << 8) | rdata[pos + 3]!;
    const end = pos + 4 + len;
    if (end > rdata.length) return DROP_MALFORMED;
    // §2.2: keys strictly increasing; a repeated key could hide a second ech.
    if (key <= lastKey) return DROP_MALFORMED;
    lastKey = key;
    if (key === SVC_KEY_MANDATORY) {
      if (len % 2 !== 0) return DROP_MALFORMED;
      for (let i = pos + 4; i < end; i += 2) if (((rdata[i]! << 8) | rdata[i + 1]!) === SVC_KEY_ECH) return DROP_MANDATORY;
    }
    if (key === SVC_KEY_ECH) {
      echAt = pos;
      echEnd = end;
    }
    pos = end;
  }
  if (echAt < 0) return KEEP;
  const out = new Uint8Array(rdata.length - (echEnd - echAt));
  out.set(rdata.subarray(0, echAt), 0);
  out.set(rdata.subarray(echEnd), echAt);
  return { kind: 'edited', rdata: out };
}
