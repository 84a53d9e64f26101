/**
 * A list source made ready at start (the PreparedSource that lists/source.ts fetches): the URL
 * checked to be https, `env:NAME` and `file:PATH` header values read, the Ed25519 public key
 * loaded, and the printable form of the location. Kept apart from fetching because it runs once,
 * on the configuration, and collects every problem into one ERR_CONFIG_INVALID; no message here
 * holds a header value or a URL's query.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SafespotError } from '../../policy/errors.js';
import type { ListConfig } from '../config.js';

/** A list source made ready at start: credentials read, key loaded. Safe to log: `id`, `display`. */
export interface PreparedSource {
  readonly id: string;
  readonly type: 'file' | 'url';
  /** The path or URL as configured (a URL may hold a token in its query: print `display`). */
  readonly location: string;
  /** Printable form: the path, or the URL without query and user info. */
  readonly display: string;
  /** Refresh interval in ms (from the config; undefined = not configured). */
  readonly refreshMs: number | undefined;
  /** Expected SHA-256 of the body, lower-case hex. */
  readonly sha256: string | undefined;
  /** Ed25519 key for the detached signature at `${location}.sig`. */
  readonly publicKey: KeyObject | undefined;
  /** The name its signed statement must carry (appliance/lists/signature.ts). */
  readonly signedName: string;
  /** A bare signature over the bytes is accepted too (lists[].bareSignature). */
  readonly bareSignature: boolean;
  /** Request headers with their values read (never print these). */
  readonly headers: Readonly<Record<string, string>>;
  readonly maxBytes: number;
  readonly maxShrinkPercent: number;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the fetch sets itself. */
const RESERVED_HEADERS = new Set(['host', 'if-none-match', 'if-modified-since', 'content-length', 'transfer-encoding', 'connection', 'accept-encoding']);

export const isUrlSource = (s: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/** The printable form of a source: a path as is; a URL without user info, query or fragment. */
export function displaySource(location: string): string {
  if (!isUrlSource(location)) return location;
  try {
    const u = new URL(location);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Read a list's credentials and key: `env:NAME` and `file:PATH` header values, the public key PEM.
 * Collects every problem and throws one ERR_CONFIG_INVALID; no message holds a header value.
 */
export function prepareSources(lists: readonly ListConfig[], env: NodeJS.ProcessEnv = process.env): PreparedSource[] {
  const problems: string[] = [];
  const out = lists.map((l) => prepareOne(l, env, problems));
  if (problems.length) throw new SafespotError('ERR_CONFIG_INVALID', `list sources: ${problems.join('; ')}`, { details: problems });
  return out;
}

/** prepareSources for one list. */
export function prepareSource(list: ListConfig, env: NodeJS.ProcessEnv = process.env): PreparedSource {
  const [one] = prepareSources([list], env);
  return one!;
}

function prepareOne(l: ListConfig, env: NodeJS.ProcessEnv, problems: string[]): PreparedSource {
  const where = `lists "${l.id}"`;
  const type = isUrlSource(l.source) ? 'url' : 'file';
  if (type === 'url') {
    let u: URL | null = null;
    try {
      u = new URL(l.source);
    } catch {
      problems.push(`${where}: source is not a valid URL`);
    }
    if (u && u.protocol !== 'https:') problems.push(`${where}: source ${displaySource(l.source)}: only https:// URLs are fetched`);
  }
  const headers: Record<string, string> = {};
  for (const [name, spec] of Object.entries(l.headers ?? {})) {
    if (!HEADER_NAME.test(name)) {
      problems.push(`${where}: header name "${name.slice(0, 60)}" is not a valid HTTP header name`);
      continue;
    }
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      problems.push(`${where}: header ${name} is set by safespot itself`);
      continue;
    }
    let value: string | undefined;
    if (spec.startsWith('env:')) {
      value = env[spec.slice(4)];
      if (value === undefined) problems.push(`${where}: header ${name}: environment variable ${spec.slice(4)} is not set`);
    } else if (spec.startsWith('file:')) {
      try {
        value = readFileSync(spec.slice(5), 'utf8').trim();
      } catch (err) {
        problems.push(`${where}: header ${name}: cannot read ${spec.slice(5)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    } else {
      value = spec;
    }
    if (value === undefined) continue;
    if (/[\r\n\0]/.test(value)) problems.push(`${where}: header ${name}: the value holds a line break or NUL`);
    else headers[name] = value;
  }
  if (type === 'file' && Object.keys(headers).length) problems.push(`${where}: headers apply to https:// sources only`);
  let publicKey: KeyObject | undefined;
  if (l.publicKey !== undefined) {
    try {
      publicKey = createPublicKey(readFileSync(l.publicKey));
      if (publicKey.asymmetricKeyType !== 'ed25519') {
        problems.push(`${where}: publicKey ${l.publicKey} is a ${publicKey.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
        publicKey = undefined;
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${where}: publicKey ${l.publicKey}: ${code?.startsWith('E') && !code.startsWith('ERR_') ? `cannot read (${code})` : 'not a PEM public key'}`);
    }
  }
  return Object.freeze({
    id: l.id,
    type,
    location: l.source,
    display: displaySource(l.source),
    refreshMs: l.refresh,
    sha256: l.sha256?.toLowerCase(),
    publicKey,
    signedName: l.signedName ?? l.id,
    bareSignature: l.bareSignature ?? false,
    headers: Object.freeze(headers),
    maxBytes: l.maxBytes,
    maxShrinkPercent: l.maxShrinkPercent,
  });
}
