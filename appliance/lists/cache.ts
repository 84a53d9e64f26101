/**
 * The last-good copy of each list on disk, under `state.dir/lists/`: what serve starts from when an
 * origin is down, and what stays in force when an update is refused.
 *
 * Layout per list id:
 *   `<id>.<sha256[0:16]>.body`  the body, named by its content
 *   `<id>.json`                 metadata (sha256, size, entries, validators, times); the commit point
 * A write puts the new body under its own name (temp file, fsync, rename), then replaces the
 * metadata the same way, then fsyncs the folder and removes older bodies. A crash at any step
 * leaves the old metadata pointing at the old body, which is still there: the previous last-good
 * copy stays readable. A read checks the body against the metadata's size and SHA-256; anything
 * that does not match is reported (clear message) and ignored, never used.
 *
 * Files are 0600 in a 0700 folder: hotline lists are hashed, but still not for other local users.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** What the cache knows about a stored body. */
export interface CacheMeta {
  readonly format: 1;
  readonly id: string;
  /** SHA-256 of the body, hex. */
  readonly sha256: string;
  readonly bytes: number;
  /** Entry count from the parse when it was accepted (the shrink check compares against it). */
  readonly entries: number;
  /** When this body was fetched (ms since the epoch). */
  readonly fetchedAt: number;
  /** When the origin last confirmed it (a 304, or the fetch itself). */
  readonly checkedAt: number;
  readonly etag?: string;
  readonly lastModified?: string;
  /** The version of its signed statement (appliance/lists/signature.ts): later ones must not go below it. */
  readonly signedVersion?: number;
  /** Printable source (no credentials, no query). */
  readonly source: string;
}

export interface CachedList {
  readonly meta: CacheMeta;
  readonly body: Uint8Array;
}

/** What a write records beside the body. */
export interface CacheWriteInfo {
  readonly entries: number;
  readonly fetchedAt: number;
  readonly checkedAt?: number;
  readonly etag?: string;
  readonly lastModified?: string;
  readonly signedVersion?: number;
  readonly source: string;
}

const ID_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const SHA_RE = /^[0-9a-f]{64}$/;

const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export class ListCache {
  readonly dir: string;
  readonly #warn: (message: string) => void;
  #made = false;
  /** Writes of one id run one after another (a write removes the bodies its metadata does not name). */
  readonly #chains = new Map<string, Promise<unknown>>();

  /** `dir` is the cache folder itself (serve passes `join(state.dir, 'lists')`). */
  constructor(dir: string, opts: { warn?: (message: string) => void } = {}) {
    this.dir = dir;
    this.#warn = opts.warn ?? (() => undefined);
  }

  /** The cache of a state folder: `<stateDir>/lists`. */
  static forStateDir(stateDir: string, opts: { warn?: (message: string) => void } = {}): ListCache {
    return new ListCache(join(stateDir, 'lists'), opts);
  }

  /** The verified last-good copy of `id`, or null (none, or corrupt: then a warning says why). */
  async read(id: string): Promise<CachedList | null> {
    checkId(id);
    const meta = await this.readMeta(id);
    if (meta === null) return null;
    let body: Buffer;
    try {
      body = await readFile(this.bodyPath(id, meta.sha256));
    } catch (err) {
      this.#warn(`list cache: "${id}": the body named by ${id}.json cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); ignoring the cached copy`);
      return null;
    }
    if (body.length !== meta.bytes || sha256Hex(body) !== meta.sha256) {
      this.#warn(`list cache: "${id}": the cached body does not match its recorded SHA-256/size (corrupt); ignoring the cached copy`);
      return null;
    }
    return { meta, body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
  }

  /** The metadata alone (checked for shape, not against the body), or null. */
  async readMeta(id: string): Promise<CacheMeta | null> {
    checkId(id);
    let text: string;
    try {
      text = await readFile(this.metaPath(id), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#warn(`list cache: "${id}": cannot read ${id}.json (${(err as NodeJS.ErrnoException).code ?? 'error'}); ignoring the cached copy`);
      }
      return null;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      this.#warn(`list cache: "${id}": ${id}.json is not JSON (corrupt); ignoring the cached copy`);
      return null;
    }
    const why = metaProblem(doc, id);
    if (why) {
      this.#warn(`list cache: "${id}": ${id}.json ${why} (corrupt); ignoring the cached copy`);
      return null;
    }
    return doc as CacheMeta;
  }

  /** Store `body` as the last good copy of `id`, atomically. Returns the metadata written. */
  write(id: string, body: Uint8Array, info: CacheWriteInfo): Promise<CacheMeta> {
    checkId(id);
    return this.serial(id, () => this.writeNow(id, body, info));
  }

  private async writeNow(id: string, body: Uint8Array, info: CacheWriteInfo): Promise<CacheMeta> {
    await this.ensureDir();
    const sha256 = sha256Hex(body);
    const meta: CacheMeta = {
      format: 1,
      id,
      sha256,
      bytes: body.byteLength,
      entries: info.entries,
      fetchedAt: info.fetchedAt,
      checkedAt: info.checkedAt ?? info.fetchedAt,
      ...(info.etag !== undefined ? { etag: info.etag } : {}),
      ...(info.lastModified !== undefined ? { lastModified: info.lastModified } : {}),
      ...(info.signedVersion !== undefined ? { signedVersion: info.signedVersion } : {}),
      source: info.source,
    };
    await this.writeAtomic(this.bodyPath(id, sha256), body);
    await this.writeAtomic(this.metaPath(id), Buffer.from(`${JSON.stringify(meta, null, 1)}\n`));
    await this.syncDir();
    await this.removeStale(id, sha256);
    return meta;
  }

  /** After a 304: record the new check time and validators; the body stays. No-op without metadata. */
  touch(id: string, update: { checkedAt: number; etag?: string; lastModified?: string; signedVersion?: number }): Promise<CacheMeta | null> {
    checkId(id);
    return this.serial(id, () => this.touchNow(id, update));
  }

  private async touchNow(id: string, update: { checkedAt: number; etag?: string; lastModified?: string; signedVersion?: number }): Promise<CacheMeta | null> {
    const meta = await this.readMeta(id);
    if (meta === null) return null;
    const next: CacheMeta = {
      ...meta,
      checkedAt: update.checkedAt,
      ...(update.etag !== undefined ? { etag: update.etag } : {}),
      ...(update.lastModified !== undefined ? { lastModified: update.lastModified } : {}),
      ...(update.signedVersion !== undefined ? { signedVersion: update.signedVersion } : {}),
    };
    await this.writeAtomic(this.metaPath(id), Buffer.from(`${JSON.stringify(next, null, 1)}\n`));
    await this.syncDir();
    return next;
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#chains.get(id) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#chains.set(id, tail);
    void tail.then(() => {
      if (this.#chains.get(id) === tail) this.#chains.delete(id);
    });
    return run;
  }

  private metaPath(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  private bodyPath(id: string, sha256: string): string {
    return join(this.dir, `${id}.${sha256.slice(0, 16)}.body`);
  }

  private async ensureDir(): Promise<void> {
    if (this.#made) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.#made = true;
  }

  private async writeAtomic(path: string, data: Uint8Array): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  /** fsync the folder so the renames themselves survive a power cut. */
  private async syncDir(): Promise<void> {
    let fh;
    try {
      fh = await open(this.dir, 'r');
      await fh.sync();
    } catch {
      // Some file systems refuse fsync on a directory; the data files themselves are synced.
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  /** Remove bodies of `id` other than the current one, and temp files left by a crash. */
  private async removeStale(id: string, sha256: string): Promise<void> {
    const keep = `${id}.${sha256.slice(0, 16)}.body`;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!name.startsWith(`${id}.`) || name === keep || name === `${id}.json`) continue;
      const rest = name.slice(id.length + 1);
      // Only this id's own files: `<16 hex>.body`, or temp files of ours (another id may share the prefix, e.g. `a` and `a.b`).
      if (/^[0-9a-f]{16}\.body(\.tmp-\d+-[0-9a-f]{8})?$/.test(rest) || /^json\.tmp-\d+-[0-9a-f]{8}$/.test(rest)) {
        await unlink(join(this.dir, name)).catch(() => undefined);
      }
    }
  }
}

function checkId(id: string): void {
  // Ids come from the validated config; the check keeps a bad one from naming a path outside the folder.
  if (!ID_RE.test(id)) throw new Error(`list cache: invalid list id ${JSON.stringify(id.slice(0, 80))}`);
}

function metaProblem(doc: unknown, id: string): string | null {
  if (!doc || typeof doc !== 'object') return 'is not an object';
  const m = doc as Record<string, unknown>;
  if (m.format !== 1) return 'has an unknown format';
  if (m.id !== id) return 'names another list';
  if (typeof m.sha256 !== 'string' || !SHA_RE.test(m.sha256)) return 'has no valid sha256';
  for (const k of ['bytes', 'entries', 'fetchedAt', 'checkedAt'] as const) {
    if (typeof m[k] !== 'number' || !Number.isFinite(m[k]) || (m[k] as number) < 0) return `has no valid ${k}`;
  }
  for (const k of ['etag', 'lastModified'] as const) if (m[k] !== undefined && typeof m[k] !== 'string') return `has an invalid ${k}`;
  if (m.signedVersion !== undefined && (typeof m.signedVersion !== 'number' || !Number.isSafeInteger(m.signedVersion) || m.signedVersion < 0)) return 'has an invalid signedVersion';
  if (typeof m.source !== 'string') return 'has no source';
  return null;
}
