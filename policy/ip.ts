/**
 * IP addresses and networks without node:net (policy/ stays pure). Addresses are held as 16 bytes;
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) so that one comparison serves both
 * families and `::ffff:10.0.0.1` matches `10.0.0.0/8`.
 */

/** Parse dotted-quad IPv4 (strict: four decimal parts 0..255, no leading zeros beyond "0"). */
function parseIpv4(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[offset + i] = n;
  }
  return true;
}

/** 16 bytes for an IPv4 or IPv6 address in text (brackets and a zone id are accepted), or null. */
export function parseIp(input: string): Uint8Array | null {
  let text = input;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const out = new Uint8Array(16);
  if (!text.includes(':')) {
    out[10] = 0xff;
    out[11] = 0xff;
    return parseIpv4(text, out, 12) ? out : null;
  }
  // IPv6 (RFC 4291 §2.2): groups of up to 4 hex digits, at most one "::", optional trailing IPv4.
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const words: number[] = [];
  const pushAll = (list: string[], into: number[]): boolean => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i]!;
      if (i === list.length - 1 && g.includes('.')) {
        const v4 = new Uint8Array(4);
        if (!parseIpv4(g, v4, 0)) return false;
        into.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      into.push(parseInt(g, 16));
    }
    return true;
  };
  const headWords: number[] = [];
  const tailWords: number[] = [];
  if (!pushAll(head, headWords)) return null;
  if (!pushAll(tail, tailWords)) return null;
  if (head.some((g) => g.includes('.')) && halves.length === 2) return null;
  const missing = 8 - headWords.length - tailWords.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  words.push(...headWords);
  for (let i = 0; i < (halves.length === 2 ? missing : 0); i++) words.push(0);
  words.push(...tailWords);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i]! >> 8;
    out[i * 2 + 1] = words[i]! & 0xff;
  }
  return out;
}

/** True when 16 address bytes are an IPv4-mapped address. */
export function isIpv4Mapped(addr: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return addr[10] === 0xff && addr[11] === 0xff;
}

/** A network: address bytes (IPv4-mapped for IPv4) and a prefix length over the 128-bit form. */
export interface Cidr {
  readonly text: string;
  readonly bytes: Uint8Array;
  readonly prefix128: number;
}

/** Parse `10.0.0.0/8`, `fc00::/7` or a bare address; returns an error message instead of throwing. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(address);
  if (!bytes || address.startsWith('[')) return `"${text}" is not an IP network (expected for example 10.0.0.0/8 or fc00::/7)`;
  const v4 = !address.includes(':');
  const max = v4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `"${text}" has a prefix length outside 0..${max}`;
    prefix = Number(p);
  }
  return { text, bytes, prefix128: v4 ? prefix + 96 : prefix };
}

/** True when `addr` (16 bytes) lies inside `net`. */
export function cidrContains(net: Cidr, addr: Uint8Array): boolean {
  const full = net.prefix128 >> 3;
  for (let i = 0; i < full; i++) if (net.bytes[i] !== addr[i]) return false;
  const rest = net.prefix128 & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((net.bytes[full]! ^ addr[full]!) & mask) === 0;
}

/** A set of networks; `contains` takes address text and is false for anything that is not an IP. */
export class CidrSet {
  readonly nets: readonly Cidr[];
  constructor(nets: readonly Cidr[]) {
    this.nets = nets;
  }
  static parse(texts: readonly string[]): CidrSet {
    const nets: Cidr[] = [];
    for (const t of texts) {
      const c = parseCidr(t);
      if (typeof c === 'string') throw new TypeError(c);
      nets.push(c);
    }
    return new CidrSet(nets);
  }
  contains(address: string): boolean {
    const a = parseIp(address);
    return a !== null && this.containsBytes(a);
  }
  containsBytes(a: Uint8Array): boolean {
    for (const n of this.nets) if (cidrContains(n, a)) return true;
    return false;
  }
}
