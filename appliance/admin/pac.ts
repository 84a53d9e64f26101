/**
 * The proxy auto-configuration file (PAC, also served as WPAD's wpad.dat) for explicit-proxy
 * devices: every web request goes through safespot's forward listener. There is deliberately no
 * DIRECT fallback for Internet hosts: if the appliance is down, guests get an error instead of an
 * unfiltered Internet. Plain host names and private/loopback IP literals (the venue's own devices)
 * go direct.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);

/**
 * `host:port` for the PAC's PROXY line: an explicit setting (admin.pacProxy); else the forward
 * listener's own address when it is bound to one (a Host header cannot change it); else, for a
 * listener on every address (0.0.0.0, ::, as in the container), the host the device used to reach
 * the appliance, from the Host header: then the PAC names what that client sent, so it is never
 * cached (pacRoute).
 */
export function pacProxyAddress(explicit: string | undefined, requestHost: string | undefined, forwardPort: number, forwardHost?: string): string | null {
  if (explicit) return explicit;
  if (forwardHost !== undefined && !WILDCARD.has(forwardHost)) return `${forwardHost.includes(':') && !forwardHost.startsWith('[') ? `[${forwardHost}]` : forwardHost}:${forwardPort}`;
  if (!requestHost) return null;
  // The Host header of the PAC request names this appliance as the device reached it.
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d+)?$/.exec(requestHost.trim());
  if (!m) return null;
  return `${m[1]}:${forwardPort}`;
}

/** The PAC text. `proxy` must be `host:port` (validated by the caller's pattern). */
export function pacFile(proxy: string): string {
  return `// safespot proxy auto-configuration. Every web request goes through the filtering proxy; there is
// no DIRECT fallback for Internet hosts, so an unreachable appliance never means an unfiltered web.
function FindProxyForURL(url, host) {
  if (isPlainHostName(host) || host === "localhost") return "DIRECT";
  if (/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(host) &&
      (isInNet(host, "10.0.0.0", "255.0.0.0") || isInNet(host, "172.16.0.0", "255.240.0.0") ||
       isInNet(host, "192.168.0.0", "255.255.0.0") || isInNet(host, "127.0.0.0", "255.0.0.0") ||
       isInNet(host, "169.254.0.0", "255.255.0.0"))) return "DIRECT";
  return "PROXY ${proxy}";
}
`;
}

/**
 * Admin route for /proxy.pac and /wpad.dat (public: devices fetch it without a token). The body
 * depends on the Host header, so it is never cached (no-store, Vary: Host): a cache in between must
 * not hand one client's PAC, naming whatever Host it sent, to another.
 */
export function pacRoute(explicit: () => string | undefined, forwardPort: () => number | undefined, forwardHost?: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const port = forwardPort();
    const proxy = port === undefined ? null : pacProxyAddress(explicit(), req.headers.host, port, forwardHost);
    if (!proxy) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('no forward listener to advertise\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ns-proxy-autoconfig', 'cache-control': 'no-store', vary: 'Host' }).end(pacFile(proxy));
  };
}
