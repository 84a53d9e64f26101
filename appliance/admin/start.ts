/**
 * The admin listener of a running appliance, the same for one process (serve.ts) and for the
 * primary of a cluster (serve/cluster.ts): the token (admin.tokenFile, or SAFESPOT_ADMIN_TOKEN_FILE
 * in containers), the routes (reload, PAC, CA, the status page at /), and its bound address
 * registered as an endpoint the proxy must never reach. A failed start runs the caller's cleanup before the error goes on, so
 * neither composition leaves a journal or a policy manager open behind it.
 */
import type { Registry } from 'prom-client';
import { boundEndpoint, type Endpoint } from '../../proxy/upstream.js';
import { applianceRoutes } from './routes.js';
import { readTokenFile, startAdmin, type AdminHandle, type Route } from './listener.js';
import type { Config } from '../config.js';
import type { Journal } from '../../audit/journal.js';
import type { ReloadResult } from '../lists/policy-manager.js';

export interface ApplianceAdminOptions {
  /** The config in force now (the PAC reads admin.pacProxy from it on each request). */
  readonly config: () => Readonly<Config>;
  readonly registry: Pick<Registry, 'metrics' | 'contentType'>;
  /** The journal's grouped counts, for the status page's blocked requests today and this month. */
  readonly journal: Pick<Journal, 'count'>;
  /** POST /reload (journaled with trigger `http`). */
  readonly reloadFromFile: (trigger: 'http') => Promise<ReloadResult>;
  /** The forward listener's bound port, once known. */
  readonly forwardPort: () => number | undefined;
  readonly routes: Readonly<Record<string, Route>>;
  readonly isReady: () => { ready: boolean; reasons: string[] };
  /** Runs when the admin listener cannot start, before the error is rethrown. */
  readonly cleanup: () => Promise<void> | void;
}

/** Start the admin listener (null when `admin` is off) and the endpoints the proxy must refuse. */
export async function startApplianceAdmin(o: ApplianceAdminOptions): Promise<{ admin: AdminHandle | null; ownEndpoints: Endpoint[] }> {
  const config = o.config();
  if (!config.admin) return { admin: null, ownEndpoints: [] };
  const tokenFile = config.admin.tokenFile ?? process.env.SAFESPOT_ADMIN_TOKEN_FILE;
  let admin: AdminHandle;
  try {
    const token = tokenFile ? readTokenFile(tokenFile) : undefined;
    admin = await startAdmin({
      host: config.admin.host,
      port: config.admin.port,
      ...(token ? { token } : {}),
      registry: o.registry,
      extraRoutes: applianceRoutes(o.config, o.reloadFromFile, o.forwardPort, o.routes, { registry: o.registry, journal: o.journal }),
      isReady: o.isReady,
    });
  } catch (err) {
    await o.cleanup();
    throw err;
  }
  // The admin listener is never a destination, not even with upstream.allowPrivate. Its bound
  // address, not the configured text: `localhost` is no address a destination compares equal to.
  return { admin, ownEndpoints: [boundEndpoint(admin.server)] };
}
