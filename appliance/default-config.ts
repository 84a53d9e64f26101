/**
 * The embedded default configuration: what `safespot serve` runs with no --config. An explicit proxy
 * on 127.0.0.1:3128, the admin listener on 127.0.0.1:9090, and the synthetic demo lists shipped in
 * appliance/demo/ (all hosts under the reserved .test TLD), so a newcomer can see a block at once:
 *
 *   curl -x http://127.0.0.1:3128 http://blocked.test/      -> 403 block page (adult)
 *   curl -x http://127.0.0.1:3128 http://csam-canary.test/  -> 403 block page (csam, hashed list)
 *
 * It goes through the same schema as any operator's file.
 */
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { validateConfig, type Config } from './config.js';

/** appliance/demo in the source tree (dist/appliance/ -> ../../appliance/demo). */
export const DEMO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'appliance', 'demo');

export const DEFAULT_CONFIG_DOC = {
  listeners: { forward: { host: '127.0.0.1', port: 3128 } },
  admin: { host: '127.0.0.1', port: 9090 },
  lists: [
    { id: 'demo-hotline', category: 'csam', kind: 'hashed-urls', source: 'hotline.txt', overridable: false },
    { id: 'demo-adult', category: 'adult', kind: 'domains', source: 'adult.txt' },
    { id: 'demo-malware', category: 'malware', kind: 'urls', source: 'malware.txt' },
    { id: 'demo-bypass', category: 'bypass', kind: 'domains', source: 'bypass.txt' },
    // Public DoH/DoT/DoQ endpoints (policy/encrypted-dns.ts): blocked by DNS, SNI and CONNECT.
    { id: 'encrypted-dns', category: 'bypass', kind: 'domains', source: 'builtin:encrypted-dns' },
  ],
  journal: { path: resolve('safespot-state', 'journal.db') },
  state: { dir: resolve('safespot-state') },
  ca: { dir: resolve('safespot-state', 'ca') },
  selftest: {
    interval: '15m',
    canaries: [
      { category: 'adult', url: 'http://blocked.test/' },
      { category: 'csam', url: 'http://csam-canary.test/' },
    ],
  },
} as const;

/** The validated embedded default; state paths are relative to the working directory. */
export function defaultConfig(): Readonly<Config> {
  return validateConfig(DEFAULT_CONFIG_DOC, DEMO_DIR, 'embedded default config');
}
