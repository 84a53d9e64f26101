/**
 * Synthetic ClientHellos built field by field (RFC 8446 §4.1.2), for tests that need a shape no
 * real client sends: no SNI, an ECH extension, odd record fragmentation, corrupted lengths. Pure.
 */

export interface HelloSpec {
  sni?: string | null;
  alpn?: string[];
  ech?: boolean;
  supportedVersions?: number[];
  legacyVersion?: number;
  /** Extra raw extensions: [type, data]. */
  extra?: [number, Buffer][];
  /** Leave the extensions block out entirely (pre-TLS 1.2 style). */
  noExtensions?: boolean;
}

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const vec8 = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length]), b]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
const ext = (type: number, data: Buffer): Buffer => Buffer.concat([u16(type), vec16(data)]);

/** The handshake message (type 1 + length + body). */
export function helloHandshake(spec: HelloSpec = {}): Buffer {
  const exts: Buffer[] = [];
  const sni = spec.sni === undefined ? 'example.test' : spec.sni;
  if (sni !== null) exts.push(ext(0, vec16(Buffer.concat([Buffer.from([0]), vec16(Buffer.from(sni, 'latin1'))]))));
  if (spec.alpn?.length) exts.push(ext(16, vec16(Buffer.concat(spec.alpn.map((p) => vec8(Buffer.from(p, 'latin1')))))));
  const versions = spec.supportedVersions ?? [0x0304, 0x0303];
  if (versions.length) exts.push(ext(43, vec8(Buffer.concat(versions.map(u16)))));
  if (spec.ech) exts.push(ext(0xfe0d, Buffer.from([0, 0, 1, 0, 1, 7, 0, 0, 0, 0])));
  for (const [type, data] of spec.extra ?? []) exts.push(ext(type, data));
  const body = Buffer.concat([
    u16(spec.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 7), // random
    vec8(Buffer.alloc(32, 9)), // legacy_session_id
    vec16(Buffer.concat([u16(0x1301), u16(0x1302), u16(0xc02f)])),
    vec8(Buffer.from([0])),
    spec.noExtensions ? Buffer.alloc(0) : vec16(Buffer.concat(exts)),
  ]);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

/** Wrap handshake bytes into TLS records of at most `fragment` bytes each. */
export function records(handshake: Buffer, fragment = 16384, recordVersion = 0x0301): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < handshake.length; i += fragment) {
    const piece = handshake.subarray(i, i + fragment);
    out.push(Buffer.concat([Buffer.from([0x16]), u16(recordVersion), u16(piece.length), piece]));
  }
  return Buffer.concat(out);
}

/** A complete ClientHello in one record. */
export function clientHello(spec: HelloSpec = {}): Buffer {
  return records(helloHandshake(spec));
}
