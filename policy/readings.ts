/**
 * Readings an origin may make of a request URL besides the Safe Browsing canonical form: the
 * RFC 3986 normalised path (percent-escapes decoded once, `\` as `/`, slashes merged, dot
 * segments resolved, a trailing `/.` dropped) and, case-folding, that path lower-cased. The
 * policy decides on every reading and blocks if any matches (docs/canonicalization.md,
 * "Readings an origin may make"). Pure; no allocation when the path has nothing to read.
 */

/** True when the path (up to `?`/`#`) holds `%`, `\`, `//`, a `/.` segment or an upper-case letter. */
function needsReading(url: string, start: number): boolean {
  for (let i = start; i < url.length; i++) {
    const ch = url.charCodeAt(i);
    if (ch === 0x3f || ch === 0x23) return false; // ? #
    if (ch === 0x25 || ch === 0x5c) return true; // % \
    if (ch >= 0x41 && ch <= 0x5a) return true; // A-Z
    if (ch === 0x2f) {
      const n = url.charCodeAt(i + 1);
      if (n === 0x2f || n === 0x2e) return true; // // /.
    }
  }
  return false;
}

function decodeOnce(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** RFC 3986 path normalisation of a decoded path; `?`, `#` and `%` re-escaped so they stay path. */
function normalisePath(path: string): string {
  const decoded = decodeOnce(path).replace(/\\/g, '/');
  const out: string[] = [];
  const segs = decoded.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === '' || s === '.') continue;
    if (s === '..') {
      out.pop();
      continue;
    }
    out.push(s);
  }
  const last = segs[segs.length - 1];
  const trailing = out.length > 0 && last === '' ? '/' : '';
  const p = '/' + out.join('/') + trailing;
  return p.replace(/%/g, '%25').replace(/\?/g, '%3F').replace(/#/g, '%23');
}

/**
 * The extra URLs to decide on for `url` (absolute, with scheme), deduplicated and never `url`
 * itself; usually none (and none, without allocating, when the path has nothing to read).
 */
export function extraReadings(url: string, caseFold = true): string[] {
  const schemeEnd = url.indexOf('://');
  if (schemeEnd < 0) return [];
  let pathStart = -1;
  for (let i = schemeEnd + 3; i < url.length; i++) {
    const ch = url.charCodeAt(i);
    if (ch === 0x2f || ch === 0x5c) {
      pathStart = i;
      break;
    }
    if (ch === 0x3f || ch === 0x23) break;
  }
  if (pathStart < 0 || !needsReading(url, pathStart)) return [];
  let pathEnd = url.length;
  for (let i = pathStart; i < url.length; i++) {
    const ch = url.charCodeAt(i);
    if (ch === 0x3f || ch === 0x23) {
      pathEnd = i;
      break;
    }
  }
  const prefix = url.slice(0, pathStart);
  const rest = url.slice(pathEnd);
  const norm = normalisePath(url.slice(pathStart, pathEnd));
  const found: string[] = [];
  const add = (u: string): void => {
    if (u !== url && !found.includes(u)) found.push(u);
  };
  add(prefix + norm + rest);
  if (caseFold) add(prefix + norm.toLowerCase() + rest);
  return found;
}
