/**
 * The decision points of the network edge. Protocol code in proxy/ builds a small typed value, calls
 * one hook, and acts on the Verdict; it never looks inside the policy (proxy/policy-hooks.ts is the
 * one implementation over the real policy; tests pass small objects).
 *
 * proxy/ may import policy/, audit/ and certs/; never appliance/.
 */
import type { Decision } from '../policy/decision.js';

export type { Observer } from '../audit/observer.js';

/** The listeners of the proxy: explicit proxy, transparent HTTP (from :80), transparent TLS (from :443). */
export type ListenerName = 'forward' | 'http' | 'tls';

/** Who is asking, on which listener. */
export interface ConnInfo {
  readonly listener: ListenerName;
  /** Remote IP address as text (IPv4-mapped IPv6 shown as plain IPv4). */
  readonly client: string;
  /**
   * A self-test or health-check request: a loopback client that sent `X-Safespot-Selftest` (HTTP) or
   * offered the SELFTEST_ALPN protocol in its ClientHello (TLS). Its verdicts are reported under the
   * `selftest` listener, so probes never inflate guest figures.
   */
  readonly selftest?: boolean;
}

/** The ALPN protocol id a loopback self-test probe offers on a TLS listener (never a real protocol). */
export const SELFTEST_ALPN = 'safespot-selftest';

/** Guests are never on loopback: only the appliance itself (self-test, health checks) may mark its probes. */
export function loopbackClient(client: string): boolean {
  return client === '::1' || client.startsWith('127.') || client.startsWith('::ffff:127.');
}

/** What the ClientHello says (proxy/client-hello.ts). */
export interface ClientHelloInfo {
  /** server_name host_name (RFC 6066 §3), lower case; null when absent. */
  readonly sni: string | null;
  /** An encrypted_client_hello extension (0xfe0d) is present; `sni` is then the outer (public) name. */
  readonly ech: boolean;
  /** application_layer_protocol_negotiation names (RFC 7301), in client order. */
  readonly alpn: readonly string[];
  /** ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3). */
  readonly legacyVersion: number;
  /** supported_versions (RFC 8446 §4.2.1), in client order; empty when absent. */
  readonly supportedVersions: readonly number[];
}

/** A hook's answer: the policy decision, and optionally a different host to connect to. */
export interface Verdict {
  readonly decision: Decision;
  /** Connect here instead (SafeSearch front end), keeping the guest's SNI / Host header. */
  readonly connectHost?: string;
  /**
   * onClientHello only: the client's profile intercepts this host (policy/intercept.ts), so the TLS
   * step terminates TLS (proxy/intercept.ts) instead of splicing or sending an alert.
   */
  readonly intercept?: boolean;
}

/** An image response body held by the image tap (proxy/image-tap.ts), as received (after content decoding). */
export interface ImageBody {
  readonly bytes: Uint8Array;
  /** The response's Content-Type, or null. */
  readonly contentType: string | null;
}

/** The onImage answer: the decision on the image's hashes and how far scanning got. */
export interface ImageVerdict {
  /** block: replace with the placeholder; monitor: pass and record; allow: pass. */
  readonly decision: Decision;
  /** The list kind that matched, when one did. */
  readonly match?: 'md5' | 'sha1' | 'sha256' | 'pdq';
  /** Hamming distance of a PDQ match. */
  readonly distance?: number;
  /**
   * scanned: exact hashes and PDQ were matched; undecodable: the bytes did not decode as an image,
   * so only the exact hashes were matched (the tap then applies `images.unscanned` to an allow).
   */
  readonly result: 'scanned' | 'undecodable';
}

export interface Hooks {
  /** CONNECT authority, before the tunnel is answered. */
  onConnect(target: { host: string; port: number }, conn: ConnInfo): Verdict;
  /** SNI (and the CONNECT authority host when there was one). */
  onClientHello(hello: ClientHelloInfo, conn: ConnInfo, connectHost?: string): Verdict;
  /** Full URL of a plain HTTP request (`http://host[:port]/path?query`), or of a request inside an intercepted TLS connection (`https://…`). */
  onRequest(url: string, conn: ConnInfo): Verdict;
  /**
   * An image response body (`url` is the request's). Optional: without it the image tap is off.
   * Counting (observer.imageScanned / imageBlocked) is the tap's, which alone knows the outcome.
   */
  onImage?(img: ImageBody, conn: ConnInfo, url: string): Promise<ImageVerdict>;
}
