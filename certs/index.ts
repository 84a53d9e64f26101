/**
 * certs/ — the interception CA and the leaf certificates minted from it. The public interface of
 * the folder is this file; import nothing else from certs/.
 *
 * Owns: creating a CA (`initCa` on disk, `generateCa` in memory), loading and checking one
 * (`loadCa`), describing its public certificate for devices (`caInstallInfo`), and minting
 * per-host leaves with cached TLS contexts (`LeafMinter`). node-forge is used only inside
 * certs/x509.ts, as a DER encoder; keys and signatures are Node's native crypto.
 *
 * Must not import: anything of ours except policy/errors.ts (floor 1). No proxy/, audit/,
 * appliance/, no config: callers pass plain values (a directory, options).
 *
 * The CA private key never leaves this folder: a `Ca` carries public material only.
 *
 * Use from proxy/ (interception):
 *   const ca = await loadCa(config.ca.dir);            // at start; ERR_CERT if missing/corrupt/expired
 *   const minter = new LeafMinter(ca, { cacheSize: 1000 });
 *   const ctx = await minter.getSecureContext(sni);    // per intercepted connection
 *   new tls.TLSSocket(socket, { isServer: true, secureContext: ctx, ALPNProtocols: ['http/1.1'] });
 * or `tls.createServer({ SNICallback: minter.sniCallback, ALPNProtocols: ['http/1.1'] })`.
 * (tls.createServer ignores a `secureContext` option; a server-side TLSSocket honours it, and is
 * the way to serve clients that send no SNI, such as IP-literal destinations.)
 */
export { generateCa, initCa, loadCa, caInstallInfo, CA_CERT_FILE, CA_KEY_FILE } from './ca.js';
export type { Ca, CaInstallInfo, CaOptions, InitCaOptions, KeyKind } from './ca.js';
export { LeafMinter, normalizeHost } from './leaf.js';
export type { LeafMinterOptions, LeafMinterStats, LeafName, MintedLeaf } from './leaf.js';
