/**
 * The ClientHello reader: a pure function from the bytes a client sent so far to one of three
 * outcomes, `need-more`, `parsed` or `invalid`. No I/O, no clock: proxy/hello-reader.ts feeds it from
 * a socket and bounds the bytes and the time.
 *
 * Formats:
 * - TLS record layer (RFC 8446 §5.1): type(1) legacy_record_version(2) length(2) fragment. The
 *   ClientHello may be fragmented over several handshake records (never interleaved with other
 *   types, and zero-length handshake fragments are forbidden).
 * - Handshake (RFC 8446 §4): msg_type(1) = client_hello(1), length(3).
 * - ClientHello (RFC 8446 §4.1.2, same layout as RFC 5246 §7.4.1.2): legacy_version(2), random(32),
 *   legacy_session_id<0..32>, cipher_suites<2..2^16-2>, legacy_compression_methods<1..2^8-1>,
 *   extensions<8..2^16-1> (absent in some pre-TLS 1.2 hellos).
 * - server_name (RFC 6066 §3), ALPN (RFC 7301 §3.1), supported_versions (RFC 8446 §4.2.1),
 *   encrypted_client_hello (0xfe0d, RFC 9849 / draft-ietf-tls-esni).
 *
 * Every read is bounds-checked; the function never throws on any input.
 */
import type { ClientHelloInfo } from './hooks.js';

export type HelloParse =
  /** A prefix of something that may still become a valid ClientHello. */
  | { readonly kind: 'need-more' }
  /** `consumed` = bytes of the records that carried the ClientHello. */
  | { readonly kind: 'parsed'; readonly hello: ClientHelloInfo; readonly consumed: number }
  /** `notTls`: the first byte is not a TLS handshake record at all (HTTP, SSH, …). */
  | { readonly kind: 'invalid'; readonly reason: string; readonly notTls: boolean };

const NEED_MORE: HelloParse = Object.freeze({ kind: 'need-more' });

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
/** RFC 8446 §5.1: a plaintext record fragment is at most 2^14 bytes. */
const MAX_FRAGMENT = 16384;

const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const EXT_SUPPORTED_VERSIONS = 0x002b;
const EXT_ECH = 0xfe0d;

function invalid(reason: string, notTls = false): HelloParse {
  return { kind: 'invalid', reason, notTls };
}

/**
 * Collect the handshake bytes carried by consecutive handshake records. Returns the bytes found so
 * far, how many input bytes they took, and whether the records are well formed.
 */
function gatherHandshake(buf: Uint8Array): { body: Uint8Array; consumed: number; complete: boolean } | HelloParse {
  const first = buf[0];
  if (first === undefined) return NEED_MORE;
  if (first !== RECORD_HANDSHAKE) {
    // SSLv2-compatible ClientHello (RFC 5246 Appendix E.2): high bit set, msg_type 1 at offset 2.
    if (first & 0x80) return invalid('SSLv2-style ClientHello is not supported');
    if (first >= 20 && first <= 24) return invalid('TLS record of an unexpected type before the ClientHello');
    return invalid('not a TLS handshake record', true);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  let pos = 0;
  let need = -1; // total handshake bytes needed once the handshake header is known
  while (true) {
    if (pos + 5 > buf.length) {
      // Check what we can of a partial record header, so that garbage fails early.
      if (pos < buf.length && buf[pos] !== RECORD_HANDSHAKE) return invalid('ClientHello interrupted by a non-handshake record');
      if (pos + 1 < buf.length && buf[pos + 1] !== 3) return invalid('record version major is not 3');
      return NEED_MORE;
    }
    if (buf[pos] !== RECORD_HANDSHAKE) return invalid('ClientHello interrupted by a non-handshake record');
    if (buf[pos + 1] !== 3) return invalid('record version major is not 3');
    const len = (buf[pos + 3]! << 8) | buf[pos + 4]!;
    if (len === 0) return invalid('zero-length handshake record');
    if (len > MAX_FRAGMENT) return invalid('record longer than 2^14 bytes');
    const end = pos + 5 + len;
    const available = Math.min(end, buf.length);
    const piece = buf.subarray(pos + 5, available);
    chunks.push(piece);
    total += piece.length;
    if (need < 0 && total >= 4) {
      const head = concat(chunks, total).subarray(0, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return invalid('first handshake message is not a ClientHello');
      need = 4 + ((head[1]! << 16) | (head[2]! << 8) | head[3]!);
      if (need < 4 + 38) return invalid('ClientHello too short');
    } else if (need < 0 && total >= 1 && concat(chunks, total)[0] !== HANDSHAKE_CLIENT_HELLO) {
      return invalid('first handshake message is not a ClientHello');
    }
    if (available < end) return NEED_MORE;
    pos = end;
    if (need >= 0 && total >= need) return { body: concat(chunks, total).subarray(0, need), consumed: pos, complete: true };
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  chunks.length = 0;
  chunks.push(out);
  return out;
}

/** A bounds-checked reader over one buffer; `ok` turns false at the first overrun. */
class Reader {
  pos: number;
  ok = true;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }
  left(): number {
    return this.end - this.pos;
  }
  u8(): number {
    if (this.pos + 1 > this.end) return this.fail();
    return this.buf[this.pos++]!;
  }
  u16(): number {
    if (this.pos + 2 > this.end) return this.fail();
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  /** A sub-reader over the next `n` bytes. */
  sub(n: number): Reader {
    if (n < 0 || this.pos + n > this.end) {
      this.fail();
      return new Reader(this.buf, this.end, this.end);
    }
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
  private fail(): number {
    this.ok = false;
    this.pos = this.end;
    return 0;
  }
}

/** RFC 6066 §3: an ASCII host name without a trailing dot. We also refuse empty labels and odd bytes. */
function hostNameText(r: Reader): string | null {
  const { buf, pos, end } = r;
  const n = end - pos;
  if (n === 0 || n > 253) return null;
  let upper = false;
  let prev = 0x2e; // as if a dot came before: a leading dot is an empty label
  for (let i = pos; i < end; i++) {
    const b = buf[i]!;
    if (b >= 0x41 && b <= 0x5a) upper = true;
    else if (!((b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f)) return null;
    if (b === 0x2e && prev === 0x2e) return null; // empty label
    prev = b;
  }
  if (prev === 0x2e) return null; // trailing dot
  // Only these ASCII bytes remain: one latin1 decode (no per-character string building).
  const text = Buffer.from(buf.buffer, buf.byteOffset + pos, n).toString('latin1');
  return upper ? text.toLowerCase() : text;
}

/** Parse the ClientHello body (after the 4-byte handshake header). */
function parseBody(body: Uint8Array): ClientHelloInfo | string {
  const r = new Reader(body, 4, body.length);
  const legacyVersion = r.u16();
  if (!r.ok) return 'truncated legacy_version';
  if (legacyVersion >> 8 !== 3) return 'legacy_version major is not 3';
  r.sub(32); // random
  const sidLen = r.u8();
  if (sidLen > 32) return 'legacy_session_id longer than 32 bytes';
  r.sub(sidLen);
  const csLen = r.u16();
  if (!r.ok) return 'truncated before cipher_suites';
  if (csLen < 2 || csLen % 2 !== 0) return 'cipher_suites length is not a positive even number';
  r.sub(csLen);
  const cmLen = r.u8();
  if (!r.ok || cmLen < 1) return 'legacy_compression_methods empty or truncated';
  r.sub(cmLen);
  if (!r.ok) return 'truncated compression methods';

  let sni: string | null = null;
  let ech = false;
  const alpn: string[] = [];
  const supportedVersions: number[] = [];
  if (r.left() === 0) return { sni, ech, alpn, legacyVersion, supportedVersions }; // no extensions (RFC 5246 §7.4.1.2)
  const extLen = r.u16();
  if (!r.ok) return 'truncated extensions length';
  if (extLen !== r.left()) return 'extensions length does not match the ClientHello length';
  const exts = r.sub(extLen);
  const seen = new Set<number>();
  while (exts.left() > 0) {
    const type = exts.u16();
    const len = exts.u16();
    const data = exts.sub(len);
    if (!exts.ok) return 'truncated extension';
    // RFC 8446 §4.2: there MUST NOT be more than one extension of the same type.
    if (seen.has(type)) return `duplicate extension ${type}`;
    seen.add(type);
    switch (type) {
      case EXT_SERVER_NAME: {
        if (data.left() === 0) break; // an empty server_name is only legal in a ServerHello; tolerate
        const listLen = data.u16();
        if (!data.ok || listLen !== data.left() || listLen === 0) return 'server_name list length mismatch';
        const seenTypes = new Set<number>();
        while (data.left() > 0) {
          const nameType = data.u8();
          const nameLen = data.u16();
          const name = data.sub(nameLen);
          if (!data.ok) return 'truncated server_name entry';
          // RFC 6066 §3: no more than one name of the same name_type.
          if (seenTypes.has(nameType)) return 'more than one server name of one type';
          seenTypes.add(nameType);
          if (nameType === 0) {
            const text = hostNameText(name);
            if (text === null) return 'server_name is not a valid ASCII host name';
            sni = text;
          }
        }
        break;
      }
      case EXT_ALPN: {
        const listLen = data.u16();
        if (!data.ok || listLen !== data.left() || listLen < 2) return 'ALPN list length mismatch';
        while (data.left() > 0) {
          const n = data.u8();
          const p = data.sub(n);
          if (!data.ok || n === 0) return 'bad ALPN protocol name';
          alpn.push(String.fromCharCode(...p.buf.subarray(p.pos, p.end)));
        }
        break;
      }
      case EXT_SUPPORTED_VERSIONS: {
        const n = data.u8();
        if (!data.ok || n !== data.left() || n < 2 || n % 2 !== 0) return 'supported_versions length mismatch';
        while (data.left() > 0) supportedVersions.push(data.u16());
        break;
      }
      case EXT_ECH:
        ech = true;
        break;
      default:
        break;
    }
  }
  return { sni, ech, alpn, legacyVersion, supportedVersions };
}

/** Read a ClientHello from the start of what a client sent. Never throws. */
export function parseClientHello(buf: Uint8Array): HelloParse {
  const gathered = gatherHandshake(buf);
  if ('kind' in gathered) return gathered;
  const result = parseBody(gathered.body);
  if (typeof result === 'string') return invalid(result);
  return { kind: 'parsed', hello: result, consumed: gathered.consumed };
}
