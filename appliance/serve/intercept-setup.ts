/**
 * What `serve` needs for TLS interception and the CA download, from the configuration: the CA
 * (loaded from `ca.dir` once, at start), the leaf minter, the upstream trust anchors, and the admin
 * routes of `admin.serveCa`.
 *
 * Interception enabled anywhere (top level or any profile), or `admin.serveCa`, without a usable CA
 * is a configuration error: serve refuses to start and says to run `safespot certs init`. A profile
 * that intercepts without a CA would otherwise silently pass HTTPS unfiltered at page level.
 *
 * Upstream trust (full verification of every intercepted upstream): the system's CA bundle (the
 * first of the usual paths that exists), else Node's bundled Mozilla roots; plus the PEM file
 * named by `NODE_EXTRA_CA_CERTS` when set (Node's own convention, e.g. behind a TLS-inspecting egress:
 * Node applies it only to its default trust store, which an explicit `ca` list replaces, so it is
 * read here); plus `intercept.upstreamCa` when set. A NODE_EXTRA_CA_CERTS file that cannot be read
 * or holds no certificate stops the start (ERR_CONFIG_READ / ERR_CONFIG_INVALID, exit 2), where Node
 * itself would only warn: ignoring it would turn every intercepted site into a 502.
 */
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { SafespotError } from '../../policy/errors.js';
import type { InterceptEdgeOptions } from '../../proxy/intercept.js';
import type { Route } from '../admin/listener.js';
import { caRoutes } from '../admin/ca-routes.js';
import type { Config } from '../config.js';

/** Where distributions keep the system CA bundle (Debian/Ubuntu/Alpine, Fedora/RHEL, macOS/BSD). */
export const SYSTEM_CA_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'] as const;

export interface InterceptSetup {
  /** For ProxyOptions.intercept; absent when no profile intercepts. */
  readonly edge?: InterceptEdgeOptions;
  /** Admin routes (/ca, /ca.pem, /ca.der) when admin.serveCa; else empty. */
  readonly routes: Record<string, Route>;
  /** Non-fatal problems (the CA's own warnings: loose key mode, near expiry). */
  readonly warnings: readonly string[];
  /** The CA in use (interception or admin.serveCa), public facts only: journaled when it changes. */
  readonly ca?: { readonly fingerprint: string; readonly notAfter: Date };
}

/** Names of the places that turn interception on, for the error message. */
export function interceptingProfiles(c: Readonly<Config>): string[] {
  const out: string[] = [];
  if (c.intercept.enabled) out.push('intercept.enabled');
  c.profiles.forEach((p) => {
    if (p.intercept?.enabled) out.push(`profiles[${p.name}].intercept.enabled`);
  });
  return out;
}

function readPemCertificates(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new SafespotError('ERR_CONFIG_READ', `cannot read ${what} ${path}: ${(cause as Error).message}`, { cause });
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new SafespotError('ERR_CONFIG_INVALID', `${what} ${path} holds no PEM certificate`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (cause) {
      throw new SafespotError('ERR_CONFIG_INVALID', `${what} ${path} holds a certificate that does not parse`, { cause });
    }
  }
  return blocks.join('\n');
}

/** The trust anchors for intercepted upstreams (`env` gives NODE_EXTRA_CA_CERTS). */
export function upstreamTrust(c: Readonly<Config>, bundles: readonly string[] = SYSTEM_CA_BUNDLES, env: NodeJS.ProcessEnv = process.env): string[] {
  const system = bundles.find((p) => existsSync(p));
  const roots = system ? [readPemCertificates(system, 'the system CA bundle')] : [...rootCertificates];
  const extra = env.NODE_EXTRA_CA_CERTS;
  if (extra) roots.push(readPemCertificates(extra, 'NODE_EXTRA_CA_CERTS'));
  if (c.intercept.upstreamCa) roots.push(readPemCertificates(c.intercept.upstreamCa, 'intercept.upstreamCa'));
  return roots;
}

export async function setupInterception(c: Readonly<Config>): Promise<InterceptSetup> {
  const users = interceptingProfiles(c);
  const serveCa = c.admin?.serveCa === true;
  if (users.length === 0 && !serveCa) return { routes: {}, warnings: [] };
  const why = [...users, ...(serveCa ? ['admin.serveCa'] : [])].join(', ');
  // certs/ (and node-forge, ~1.3 MiB of V8 heap) is loaded only by the appliances that need a CA.
  const { caInstallInfo, LeafMinter, loadCa } = await import('../../certs/index.js');
  let ca;
  try {
    ca = await loadCa(c.ca.dir);
  } catch (err) {
    const detail = err instanceof SafespotError ? err.message : String(err);
    throw new SafespotError(
      'ERR_CONFIG_INVALID',
      `${why} needs the interception CA in ca.dir (${c.ca.dir}), which cannot be used: ${detail}. Create one with: safespot certs init --dir ${c.ca.dir}`,
      { cause: err },
    );
  }
  const info = caInstallInfo(ca);
  const routes = serveCa ? caRoutes(info) : {};
  const inUse = { fingerprint: info.sha256Fingerprint, notAfter: info.notAfter };
  if (users.length === 0) return { routes, warnings: ca.warnings, ca: inUse };
  const edge: InterceptEdgeOptions = { minter: new LeafMinter(ca, { cacheSize: 1000 }), upstreamCa: upstreamTrust(c), mintsPerMinute: c.intercept.mintsPerMinute };
  return { edge, routes, warnings: ca.warnings, ca: inUse };
}
