/**
 * proxy/ — the network edge: the listeners (explicit `forward`, transparent `http` and `tls`), one
 * file per protocol step, and the decision hooks between them. This file lists the public
 * interface; docs/proxy.md describes the path of a connection.
 *
 * Owns: admission (client networks, connection limits), CONNECT, the ClientHello reader, the TLS
 * passthrough with alerts, HTTP forwarding with the block page, the resolver and destination checks,
 * the tunnel splice, SafeSearch routing, draining.
 *
 * May import: policy/ (pure), audit/ (the Observer type and combineObservers), certs/. Must not
 * import appliance/: `serve` turns the config into ProxyOptions and passes them in.
 *
 * Use from appliance/serve.ts:
 *   const hooks = createPolicyHooks(holder, observer, { recordUrls, recordClients, blockFronting, noSni, ech });
 *   const proxy = await startProxy(options, hooks, observer);
 *   ...
 *   await proxy.close(config.limits.drainTimeout);
 */
export { startProxy, type ProxyHandle, type ProxyOptions } from './server.js';
export { createPolicyHooks, type ImageScanner, type PolicyHookOptions } from './policy-hooks.js';
export type { ClientHelloInfo, ConnInfo, Hooks, ImageBody, ImageVerdict, ListenerName, Observer, Verdict } from './hooks.js';
export type { Endpoint } from './upstream.js';
export { parseClientHello, type HelloParse } from './client-hello.js';
