/**
 * Whether a TLS connection is intercepted (terminated with a minted certificate, so every request
 * inside it is decided on its full https:// URL) or spliced (the bytes pass untouched, the decision
 * was on the SNI only). Pure: the profile's intercept options and a host in, a choice out.
 *
 * Order (first that applies wins):
 * 1. the profile does not intercept                         → splice (`disabled`)
 * 2. the host is on NEVER_INTERCEPT (shipped, below)        → splice (`default-exclude`)
 * 3. the host is on the profile's `intercept.exclude`        → splice (`exclude`)
 * 4. `intercept.include` is not empty and does not name it   → splice (`not-included`)
 * 5. otherwise                                               → intercept
 * Every entry covers the name itself and all its subdomains (`bank` covers every `*.bank` host).
 *
 * The shipped list (docs/interception.md explains it) is deliberately short and generic: hosts whose
 * clients pin certificates or verify their own downloads (OS and browser updates, certificate and
 * activation services, end-to-end-encrypted messengers), and bank and insurance TLDs, where a
 * break would lock a user out of their money and where nothing on the hotline lists lives. An
 * operator extends it with `intercept.exclude`; it cannot be shortened from the configuration.
 */
import type { InterceptOptions } from './sections.js';

/** Hosts (and their subdomains) that are never intercepted, whatever the configuration says. */
export const NEVER_INTERCEPT: readonly string[] = Object.freeze([
  // Banking and insurance: the .bank and .insurance TLDs (fTLD Registry, verified registrants only).
  'bank',
  'insurance',
  // Apple: software update, activation, push and certificate services (clients pin these).
  'swscan.apple.com',
  'swdist.apple.com',
  'swcdn.apple.com',
  'mesu.apple.com',
  'gdmf.apple.com',
  'updates.cdn-apple.com',
  'albert.apple.com',
  'gs.apple.com',
  'push.apple.com',
  'ppq.apple.com',
  // Microsoft: Windows Update and its delivery network.
  'windowsupdate.com',
  'update.microsoft.com',
  'windowsupdate.microsoft.com',
  'delivery.mp.microsoft.com',
  // Linux distributions' package and update servers (packages are signed; some tools pin).
  'deb.debian.org',
  'security.debian.org',
  'archive.ubuntu.com',
  'security.ubuntu.com',
  'api.snapcraft.io',
  // Browser and app updates.
  'update.googleapis.com',
  'dl.google.com',
  'aus5.mozilla.org',
  // End-to-end encrypted messengers that pin their certificates: interception only breaks them.
  'whatsapp.net',
  'whatsapp.com',
  'signal.org',
]);

export type InterceptChoice =
  | { readonly intercept: true }
  | { readonly intercept: false; readonly why: 'disabled' | 'default-exclude' | 'exclude' | 'not-included' | 'no-name' };

const INTERCEPT: InterceptChoice = Object.freeze({ intercept: true });
const splice = (why: Exclude<InterceptChoice, { intercept: true }>['why']): InterceptChoice => Object.freeze({ intercept: false, why });
const DISABLED = splice('disabled');
const DEFAULT_EXCLUDE = splice('default-exclude');
const EXCLUDE = splice('exclude');
const NOT_INCLUDED = splice('not-included');
const NO_NAME = splice('no-name');

/** Lower case, no brackets, no trailing dot. */
export function interceptHostKey(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  while (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** True when `host` or one of its parent names is in `names`. IP literals match only themselves. */
function coveredBy(host: string, names: ReadonlySet<string>): boolean {
  if (names.size === 0) return false;
  if (names.has(host)) return true;
  if (host.includes(':') || /^\d+(?:\.\d+){3}$/.test(host)) return false; // an IP address has no parents
  for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
    if (names.has(host.slice(dot + 1))) return true;
  }
  return false;
}

const DEFAULT_SET: ReadonlySet<string> = new Set(NEVER_INTERCEPT);

interface Compiled {
  readonly include: ReadonlySet<string>;
  readonly exclude: ReadonlySet<string>;
}
// Profile views are long-lived frozen objects: compile their lists once.
const compiled = new WeakMap<InterceptOptions, Compiled>();

function compile(opts: InterceptOptions): Compiled {
  let c = compiled.get(opts);
  if (!c) {
    c = { include: new Set(opts.include.map(interceptHostKey)), exclude: new Set(opts.exclude.map(interceptHostKey)) };
    compiled.set(opts, c);
  }
  return c;
}

/** Intercept or splice a connection to `host` for a client whose profile has `opts`. */
export function interceptChoice(opts: InterceptOptions, host: string | null): InterceptChoice {
  if (!opts.enabled) return DISABLED;
  if (host === null) return NO_NAME;
  const h = interceptHostKey(host);
  if (h.length === 0) return NO_NAME;
  if (coveredBy(h, DEFAULT_SET)) return DEFAULT_EXCLUDE;
  const c = compile(opts);
  if (coveredBy(h, c.exclude)) return EXCLUDE;
  if (c.include.size > 0 && !coveredBy(h, c.include)) return NOT_INCLUDED;
  return INTERCEPT;
}
