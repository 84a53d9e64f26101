/**
 * The image tap: on a plain HTTP response that is an image, hold the body (up to
 * `images.maxBytes`, within `images.timeout`), ask `hooks.onImage` (hashing and matching, off the
 * event loop), then release the body unchanged (byte-exact, original status and headers) or replace
 * it with a neutral placeholder PNG, status 403 and `Cache-Control: no-store`.
 *
 * Which responses:
 * - Declared images: a Content-Type of a raster type (JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF/HEIF).
 * - Sniffed images: any other response without Content-Encoding has its first bytes read before its
 *   head is forwarded; JPEG, PNG, GIF, WebP or BMP magic bytes make it an image whatever the
 *   Content-Type says (browsers render <img> by its bytes). Server-sent events and multipart
 *   streams are not sniffed. Every other response's head waits for its first body bytes: until the
 *   bytes rule out every image format (for text, the first byte), at most 32 bytes, or the end.
 * - Never: HEAD, 1xx, 204, 205, 304 (no body), upgrades (they never reach here).
 *
 * Ranges. A part of a file has no hash to match, and a guest who asks for an image in two halves (or
 * `bytes=0-` of it) must not get it past the lists. So a 206 that may be part of an image (declared
 * an image, multipart/byteranges, or of a whole no larger than images.maxBytes) is not passed on:
 * the object is asked for again, once, with no Range, If-Range or validators (GET only), held and
 * scanned like any response, and when it is released the client's own single range is served from
 * the scanned bytes (206, or 416 when it cannot be satisfied; several ranges, an unmatched If-Range
 * or a body released before its end get the whole, 200, as RFC 9110 §14.2 allows). Ranges of large
 * non-image files (video) still go to the origin untouched. An origin that answers the second
 * request with a 206 again is counted `partial` and follows images.unscanned.
 *
 * Content-Encoding gzip, deflate and br are decoded (bounded by maxBytes) before hashing, and the
 * original encoded bytes are what is released; any other encoding is counted `undecodable`.
 *
 * Counting (the Observer): `scanned` (exact hashes and PDQ matched), `undecodable` (the bytes did
 * not decode as an image: exact hashes were still matched), `too_large`, `timeout`, `partial`; a
 * match is also `imageBlocked` (action block or monitor). `too_large`, `timeout`, `undecodable` (when
 * nothing matched) and a failing hook follow `images.unscanned`: pass, or the placeholder.
 */
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { brotliDecompress, deflateSync, gunzip, inflate, inflateRaw, type InputType, type ZlibOptions } from 'node:zlib';
import type { ConnInfo, ImageVerdict } from './hooks.js';
import { fieldsObject } from './fields.js';
import type { EdgeContext } from './options.js';
import { pipeResponse } from './pipe-response.js';

export type SniffedImage = 'jpeg' | 'png' | 'gif' | 'webp' | 'bmp';

/** Bytes read before deciding whether an undeclared body is an image. */
export const SNIFF_BYTES = 32;

/** Raster image types held on their Content-Type alone. */
const DECLARED = new Set([
  'image/jpeg',
  'image/jpg',
  'image/pjpeg',
  'image/png',
  'image/apng',
  'image/gif',
  'image/webp',
  'image/bmp',
  'image/x-bmp',
  'image/x-ms-bmp',
  'image/tiff',
  'image/avif',
  'image/heic',
  'image/heif',
]);

/** The media type of a Content-Type value, lower case, without parameters. */
export function mediaType(contentType: string | null | undefined): string | null {
  if (!contentType) return null;
  const t = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return t === '' ? null : t;
}

export function declaredImage(contentType: string | null): boolean {
  const t = mediaType(contentType);
  return t !== null && DECLARED.has(t);
}

const BMP_HEADER_SIZES = new Set([12, 40, 52, 56, 64, 108, 124]);

/** The image format the first bytes announce, or null (the magic numbers of each format's spec). */
export function sniffImage(b: Uint8Array): SniffedImage | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  // GIF87a / GIF89a; RIFF....WEBP (compared byte by byte: this runs on every undeclared body)
  if (b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38 && (b[4] === 0x37 || b[4] === 0x39) && b[5] === 0x61) return 'gif';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return 'webp';
  // "BM" alone is too weak (text starts with it); the DIB header size must be a known one.
  if (b.length >= 18 && b[0] === 0x42 && b[1] === 0x4d) {
    const dib = b[14]! | (b[15]! << 8) | (b[16]! << 16) | (b[17]! << 24);
    if (BMP_HEADER_SIZES.has(dib)) return 'bmp';
  }
  return null;
}

const MAGIC: ReadonlyArray<ReadonlyArray<number | null>> = [
  [0xff, 0xd8, 0xff],
  [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  [...Buffer.from('GIF87a')],
  [...Buffer.from('GIF89a')],
  [...Buffer.from('RIFF'), null, null, null, null, ...Buffer.from('WEBP')],
  [0x42, 0x4d, ...Array<null>(16).fill(null)],
];

/**
 * Whether these first bytes are an image or could still become one with more bytes. A body whose
 * first byte already rules out every format is released at once, so streaming text is not held.
 */
export function mayBeImage(b: Uint8Array): boolean {
  if (b.length > 0 && !mayStartImage(b[0]!)) return false;
  if (sniffImage(b) !== null) return true;
  return MAGIC.some((m) => b.length < m.length && b.every((x, i) => m[i] === null || m[i] === x));
}

/** Whether a body starting with this byte may be an image (the first byte of every MAGIC above). */
export function mayStartImage(first: number): boolean {
  return first === 0xff || first === 0x89 || first === 0x47 || first === 0x52 || first === 0x42;
}

/**
 * One response field from the raw head, as `IncomingMessage.headers` would give it (`join`: the
 * values of a repeated field joined with ", ", else the first), or null. Reading `upRes.headers`
 * builds node:http's header object for the whole response; the tap needs two fields of it.
 */
export function rawField(raw: readonly string[], lowerName: string, join: boolean): string | null {
  let out: string | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== lowerName.length || name.toLowerCase() !== lowerName) continue;
    if (out === null) out = raw[i + 1]!;
    else if (join) out = `${out}, ${raw[i + 1]!}`;
    else break;
  }
  return out;
}

// ---- the placeholder -----------------------------------------------------------------------------

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A flat light-grey PNG (PNG spec: signature, IHDR, IDAT, IEND), built once. */
function placeholderPng(size: number, grey: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const raw = Buffer.alloc(size * (size + 1), grey);
  for (let y = 0; y < size; y++) raw[y * (size + 1)] = 0; // filter type None per row
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

/** What replaces a blocked image. */
export const PLACEHOLDER_PNG: Buffer = placeholderPng(16, 0xd0);

// ---- content decoding --------------------------------------------------------------------------

type Decoder = (buf: InputType, opts: ZlibOptions, cb: (err: Error | null, out: Buffer) => void) => void;

/** deflate is meant to be zlib-wrapped (RFC 9110 §8.4.1.2), but some servers send it raw. */
const inflateEither: Decoder = (buf, opts, cb) => inflate(buf, opts, (err, out) => (err ? inflateRaw(buf, opts, cb) : cb(null, out)));

const DECODERS: Readonly<Record<string, Decoder>> = {
  gzip: gunzip,
  'x-gzip': gunzip,
  deflate: inflateEither,
  br: brotliDecompress as Decoder,
};

/** Decode a body (zlib runs on the libuv pool); 'too_large' past maxBytes, 'undecodable' otherwise. */
function decodeBody(encoding: string, body: Buffer, maxBytes: number): Promise<Buffer | 'too_large' | 'undecodable'> {
  if (encoding === '') return Promise.resolve(body);
  const decoder = DECODERS[encoding];
  if (!decoder) return Promise.resolve('undecodable');
  return new Promise((resolve) => {
    decoder(body, { maxOutputLength: maxBytes }, (err, out) => {
      if (!err) resolve(out);
      else resolve((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'too_large' : 'undecodable');
    });
  });
}

// ---- the tap ---------------------------------------------------------------------------------------

export interface TapArgs {
  readonly req: IncomingMessage;
  readonly upReq: ClientRequest;
  readonly upRes: IncomingMessage;
  readonly res: ServerResponse;
  /** The response head as it would be forwarded (end-to-end headers, Via added; flat fields or an object). */
  readonly headers: OutgoingHttpHeaders | string[];
  readonly conn: ConnInfo;
  readonly url: string;
  /** Drop this exchange and ask for the whole object (absent: not possible, or this is that request). */
  readonly again?: () => void;
  /** On the request for the whole: the client's range, served from the scanned bytes. */
  readonly range?: ClientRange;
}

// ---- ranges ------------------------------------------------------------------------------------------

/** The client's Range and If-Range, as sent. */
export interface ClientRange {
  readonly range: string | null;
  readonly ifRange: string | null;
}

export function clientRange(req: IncomingMessage): ClientRange {
  return { range: single(req.headers.range), ifRange: single(req.headers['if-range']) };
}

/** Request fields the request for the whole object goes without: it must be a 200 with a body. */
const NOT_FOR_WHOLE = new Set(['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'content-length']);

export function wholeRequestHeaders(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!NOT_FOR_WHOLE.has(k.toLowerCase())) out[k] = v;
  return out;
}

/** The complete length in a Content-Range (`bytes 0-99/1234`), or null (`*`, absent, malformed). */
export function completeLength(contentRange: string | null): number | null {
  const m = contentRange === null ? null : /^\s*bytes\s+(?:\d+-\d+|\*)\/(\d{1,15})\s*$/i.exec(contentRange);
  return m ? Number(m[1]) : null;
}

/**
 * What to answer a client's Range with, from a whole of `length` bytes (RFC 9110 §14): one range
 * (206), unsatisfiable (416), or null for the whole (200): no Range, a malformed or multiple one,
 * or an If-Range that does not match the whole's strong ETag or exact Last-Modified (§13.1.5).
 */
export function pickRange(
  asked: ClientRange,
  length: number,
  validators: { readonly etag: string | null; readonly lastModified: string | null },
): { readonly start: number; readonly end: number } | 'unsatisfiable' | null {
  if (asked.range === null) return null;
  if (asked.ifRange !== null) {
    const v = asked.ifRange.trim();
    const tag = v.startsWith('"') || v.startsWith('W/');
    const ok = tag ? !v.startsWith('W/') && validators.etag !== null && validators.etag.trim() === v : validators.lastModified !== null && validators.lastModified.trim() === v;
    if (!ok) return null;
  }
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(asked.range);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || length === 0) return 'unsatisfiable';
    return { start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? length - 1 : Number(m[2]);
  if (m[2] !== '' && end < start) return null; // an invalid range is ignored, not refused
  if (start >= length) return 'unsatisfiable';
  return { start, end: Math.min(end, length - 1) };
}

/** `headers` (an object, or flat fields) without the fields named (lower case), as an object. */
function without(headers: OutgoingHttpHeaders | readonly string[], names: readonly string[]): OutgoingHttpHeaders {
  if (Array.isArray(headers)) return fieldsObject(headers, names);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!names.includes(k.toLowerCase())) out[k] = v;
  return out;
}

function single(v: string | string[] | undefined): string | null {
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
}

/**
 * Take over the response when it is (or may be) an image: returns true when the tap writes the
 * response from now on, false when the caller should forward it as usual.
 */
export function tapImage(ctx: EdgeContext, a: TapArgs): boolean {
  const opts = ctx.opts.images;
  if (!opts?.enabled || !ctx.hooks.onImage) return false;
  const { req, upRes } = a;
  const status = upRes.statusCode ?? 0;
  if (req.method === 'HEAD' || status < 200 || status === 204 || status === 205 || status === 304) return false;
  const contentType = rawField(upRes.rawHeaders, 'content-type', false);
  const encoding = (rawField(upRes.rawHeaders, 'content-encoding', true) ?? '').trim().toLowerCase();
  const declared = declaredImage(contentType);
  if (status === 206) {
    const t = mediaType(contentType);
    const whole = completeLength(single(upRes.headers['content-range']));
    if (!declared && t !== 'multipart/byteranges' && (whole === null || whole > opts.maxBytes)) return false;
    if (a.again) {
      a.again();
      return true;
    }
    if (!declared && t !== 'multipart/byteranges') return false;
    ctx.observer.imageScanned('partial');
    if (opts.unscanned !== 'block') return false;
    new ImageHold(ctx, a, contentType, '', true).refuse();
    return true;
  }
  const plain = encoding === '' || encoding === 'identity';
  if (!declared) {
    const t = mediaType(contentType);
    if (!plain || t === 'text/event-stream' || (t !== null && t.startsWith('multipart/'))) return false;
  }
  new ImageHold(ctx, a, contentType, plain ? '' : encoding, declared).start();
  return true;
}

/** One held response: sniff (undeclared only), hold, then release or replace, exactly once. */
class ImageHold {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Bytes of ctx.imageBytes this hold has taken (returned once, when its bytes are gone). */
  private taken = 0;
  private ended = false;
  private phase: 'sniff' | 'hold' | 'done';
  private timer: NodeJS.Timeout | undefined;
  private readonly opts: NonNullable<EdgeContext['opts']['images']>;

  constructor(
    private readonly ctx: EdgeContext,
    private readonly a: TapArgs,
    private readonly contentType: string | null,
    private readonly encoding: string,
    declared: boolean,
  ) {
    this.opts = ctx.opts.images!;
    this.phase = declared ? 'hold' : 'sniff';
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.phase === 'sniff') {
      // Most undeclared bodies (text, scripts, JSON) are ruled out by their first byte: no copy.
      if (this.size === chunk.length && chunk.length > 0 && !mayStartImage(chunk[0]!)) return this.notAnImage();
      const first = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.size);
      if (this.size >= SNIFF_BYTES || !mayBeImage(first)) this.sniffed(first);
    } else if (this.phase === 'hold') {
      if (this.size > this.opts.maxBytes) this.unscanned('too_large');
      else if (!this.take(chunk.length)) this.unscanned('over_budget');
    }
  };

  private take(n: number): boolean {
    if (!this.ctx.imageBytes.take(n)) return false;
    this.taken += n;
    return true;
  }

  /** Give back what was taken: the held bytes are dropped, or written to the client. */
  private readonly giveBack = (): void => {
    this.ctx.imageBytes.give(this.taken);
    this.taken = 0;
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (this.phase === 'sniff') this.sniffed(this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size));
    else if (this.phase === 'hold') void this.scan();
  };

  /** Upstream failed or the client went away before a verdict: nothing is released. */
  private readonly onAbort = (): void => {
    if (this.phase === 'done') return;
    this.finish();
    this.chunks = [];
    this.giveBack();
    if (!this.a.res.headersSent) this.a.res.destroy();
  };

  start(): void {
    const { upRes, res } = this.a;
    upRes.on('error', this.onAbort);
    upRes.on('aborted', this.onAbort);
    res.on('close', this.onAbort);
    res.once('close', this.giveBack); // released bytes stay in memory until the client has them
    upRes.on('data', this.onData);
    upRes.on('end', this.onEnd);
    if (this.phase === 'hold') this.startHold();
  }

  /** The sniffed bytes (all that came) are no image: the response goes on unheld. */
  private notAnImage(): void {
    this.finish();
    this.release();
  }

  private sniffed(first: Buffer): void {
    if (sniffImage(first) === null) return this.notAnImage();
    this.phase = 'hold';
    this.startHold();
    if (this.phase === 'hold' && this.ended) void this.scan();
  }

  private startHold(): void {
    const declaredLength = Number(this.a.upRes.headers['content-length']);
    if ((Number.isFinite(declaredLength) && declaredLength > this.opts.maxBytes) || this.size > this.opts.maxBytes) {
      this.unscanned('too_large');
      return;
    }
    if (!this.take(this.size)) {
      this.unscanned('over_budget');
      return;
    }
    this.timer = setTimeout(() => this.unscanned('timeout'), this.opts.timeout);
  }

  private async scan(): Promise<void> {
    // One copy of the body, kept for the release (the chunks go).
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [body];
    const decoded = await decodeBody(this.encoding, body, this.opts.maxBytes);
    if (this.phase !== 'hold') return;
    if (decoded === 'too_large' || decoded === 'undecodable') {
      this.unscanned(decoded);
      return;
    }
    // A decoded copy is held too while it is hashed.
    const decodedBytes = decoded === body ? 0 : decoded.length;
    if (decodedBytes > 0 && !this.take(decodedBytes)) {
      this.unscanned('over_budget');
      return;
    }
    let verdict: ImageVerdict;
    try {
      verdict = await this.ctx.hooks.onImage!({ bytes: decoded, contentType: this.contentType }, this.a.conn, this.a.url);
    } catch {
      if (this.phase === 'hold') this.unscanned('undecodable');
      return;
    }
    if (decodedBytes > 0) {
      this.ctx.imageBytes.give(decodedBytes);
      this.taken -= decodedBytes;
    }
    if (this.phase !== 'hold') return; // timed out or aborted meanwhile
    this.finish();
    const d = verdict.decision;
    const { observer } = this.ctx;
    observer.imageScanned(verdict.result);
    if (verdict.match && d.list !== null && d.category !== null && (d.action === 'block' || d.action === 'monitor')) {
      observer.imageBlocked({ category: d.category, match: verdict.match, list: d.list, action: d.action });
    }
    if (d.action === 'block' || (verdict.result === 'undecodable' && d.action === 'allow' && this.opts.unscanned === 'block')) this.replace();
    else this.release();
  }

  /** Too large, timed out, or not decodable: counted, then passed or replaced per images.unscanned. */
  private unscanned(result: 'too_large' | 'timeout' | 'undecodable' | 'over_budget'): void {
    if (this.phase === 'done') return;
    this.finish();
    this.ctx.observer.imageScanned(result);
    if (this.opts.unscanned === 'block') this.replace();
    else this.release();
  }

  private finish(): void {
    this.phase = 'done';
    clearTimeout(this.timer);
  }

  /** The original head and body, byte for byte; what has not arrived yet streams on. */
  private release(): void {
    const { upRes, res, upReq } = this.a;
    upRes.off('data', this.onData);
    upRes.off('end', this.onEnd);
    if (res.destroyed) return;
    const status = upRes.statusCode ?? 502;
    if (this.ended) {
      const body = Buffer.concat(this.chunks);
      if (this.a.range && status === 200 && this.served(body)) return;
      if (upRes.statusMessage) res.writeHead(status, upRes.statusMessage, this.a.headers);
      else res.writeHead(status, this.a.headers);
      res.end(body);
      return;
    }
    if (upRes.statusMessage) res.writeHead(status, upRes.statusMessage, this.a.headers);
    else res.writeHead(status, this.a.headers);
    upRes.pause();
    for (const c of this.chunks) res.write(c);
    pipeResponse(upReq, upRes, res);
  }

  /** The client's range of the scanned whole: 206 or 416 written (true), or false for the whole. */
  private served(body: Buffer): boolean {
    const h = this.a.upRes.headers;
    const pick = pickRange(this.a.range!, body.length, { etag: single(h.etag), lastModified: single(h['last-modified']) });
    if (pick === null) return false;
    const headers = without(this.a.headers, ['content-length', 'content-range']);
    if (pick === 'unsatisfiable') {
      this.a.res.writeHead(416, { ...headers, 'Content-Range': `bytes */${body.length}`, 'Content-Length': 0 });
      this.a.res.end();
      return true;
    }
    this.a.res.writeHead(206, { ...headers, 'Content-Range': `bytes ${pick.start}-${pick.end}/${body.length}`, 'Content-Length': pick.end - pick.start + 1 });
    this.a.res.end(body.subarray(pick.start, pick.end + 1));
    return true;
  }

  /** Replaced without being held: a part that cannot be scanned, under images.unscanned block. */
  refuse(): void {
    this.finish();
    this.replace();
  }

  /** The placeholder, 403; the rest of the upstream body is not wanted. */
  private replace(): void {
    const { upRes, res, upReq } = this.a;
    upRes.off('data', this.onData);
    upRes.off('end', this.onEnd);
    this.chunks = [];
    this.giveBack();
    if (!this.ended) upReq.destroy();
    if (res.destroyed) return;
    res.writeHead(403, {
      'content-type': 'image/png',
      'content-length': PLACEHOLDER_PNG.length,
      'cache-control': 'no-store',
      'x-safespot': 'image-blocked',
    });
    res.end(PLACEHOLDER_PNG);
  }
}
