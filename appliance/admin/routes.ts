/**
 * The appliance's own admin routes beside /metrics, /healthz and /readyz (appliance/admin/listener.ts), shared
 * by the single-process and the worker (cluster) composition: POST /reload (token-protected), the PAC
 * file for explicit-proxy devices (public: devices have no token), the interception CA routes and
 * the venue's status page at `/` (status-page.ts).
 */
import type { Route } from './listener.js';
import type { Config } from '../config.js';
import { pacRoute } from './pac.js';
import type { ReloadResult } from '../lists/policy-manager.js';
import { statusPageRoute, type StatusSources } from './status-page.js';

export function applianceRoutes(
  config: () => Readonly<Config>,
  reloadFromFile: (trigger: 'http') => Promise<ReloadResult>,
  forwardPort: () => number | undefined,
  extra: Readonly<Record<string, Route>> = {},
  /** What the venue's status page at `/` reads (status-page.ts); token-protected like /metrics (Basic too: listener.ts). */
  status?: Omit<StatusSources, 'config'>,
): Record<string, Route> {
  // Read on each request: admin.pacProxy follows a reload (the listener's address is as started).
  const forwardHost = config().listeners.forward?.host;
  const pac = { handler: pacRoute(() => config().admin?.pacProxy, forwardPort, forwardHost), public: true };
  return {
    ...extra,
    // browser: the token is also taken as a Basic password here (GET/HEAD only), so staff can open it.
    ...(status ? { '/': { handler: statusPageRoute({ ...status, config }), public: false, browser: true } } : {}),
    '/proxy.pac': pac,
    '/wpad.dat': pac,
    '/reload': (req, res) => {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' }).end('{"error":"POST only"}\n');
        return;
      }
      void reloadFromFile('http').then((r) => {
        res.writeHead(r.ok ? 200 : 409, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
      });
    },
  };
}
