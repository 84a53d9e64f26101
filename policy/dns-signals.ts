/**
 * Names whose answer is itself a signal to the device, answered by the DNS listener and never
 * forwarded (pure: plain strings in, a plain value out):
 *
 * - `use-application-dns.net`: Firefox's canary domain. NXDOMAIN (or NODATA) tells Firefox the
 *   network filters, and it does not turn on DNS over HTTPS by default (Mozilla's documentation
 *   "Canary domain - use-application-dns.net").
 * - `mask.icloud.com`, `mask-h2.icloud.com`: iCloud Private Relay. NXDOMAIN (or NODATA) for these
 *   tells Apple devices that the network does not allow Private Relay; they then use the network's
 *   DNS and connect directly (Apple, "Prepare your network or web server for iCloud Private Relay").
 * - `resolver.arpa` and everything under it: Discovery of Designated Resolvers (RFC 9462 §4) asks
 *   `_dns.resolver.arpa` SVCB to find an encrypted resolver. NODATA means "none designated", so the
 *   device keeps using this unencrypted, filtering resolver.
 */

export type DnsSignalKind = 'encrypted_dns_canary' | 'private_relay' | 'designated_resolver';

export interface DnsSignal {
  readonly kind: DnsSignalKind;
  readonly answer: 'nxdomain' | 'nodata';
}

const CANARY: DnsSignal = Object.freeze({ kind: 'encrypted_dns_canary', answer: 'nxdomain' });
const RELAY: DnsSignal = Object.freeze({ kind: 'private_relay', answer: 'nxdomain' });
const DDR: DnsSignal = Object.freeze({ kind: 'designated_resolver', answer: 'nodata' });

/** The signal `name` (lower case, no trailing dot) carries, or null for an ordinary name. */
export function dnsSignal(name: string): DnsSignal | null {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  // The canary and the relay names are matched with their subdomains too: a device asking a
  // subdomain is asking the same question of the same operator.
  if (n === 'use-application-dns.net' || n.endsWith('.use-application-dns.net')) return CANARY;
  if (n === 'mask.icloud.com' || n === 'mask-h2.icloud.com' || n.endsWith('.mask.icloud.com') || n.endsWith('.mask-h2.icloud.com')) return RELAY;
  if (n === 'resolver.arpa' || n.endsWith('.resolver.arpa')) return DDR;
  return null;
}
