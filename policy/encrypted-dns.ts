/**
 * The built-in list of public encrypted-DNS endpoints (DNS over HTTPS, TLS and QUIC), used as
 * `source: builtin:encrypted-dns` in a `domains` list of category `bypass`. Blocking these names by
 * DNS, SNI and CONNECT makes a device that was set to use one of them fall back to the venue's DNS
 * (where the DNS listener applies the policy). Pure data: host names of public resolvers, the names
 * their operators publish for their DoH/DoT/DoQ service. Each entry covers its subdomains.
 *
 * Sources and upkeep: docs/dns.md ("The encrypted-DNS endpoint list").
 */

export const ENCRYPTED_DNS_HOSTS: readonly string[] = Object.freeze([
  // Cloudflare
  'cloudflare-dns.com',
  'one.one.one.one',
  '1dot1dot1dot1.cloudflare-dns.com',
  // Google Public DNS
  'dns.google',
  'dns.google.com',
  // Quad9
  'dns.quad9.net',
  'dns9.quad9.net',
  'dns10.quad9.net',
  'dns11.quad9.net',
  // OpenDNS / Cisco Umbrella
  'doh.opendns.com',
  'doh.familyshield.opendns.com',
  'doh.umbrella.com',
  // AdGuard DNS
  'dns.adguard.com',
  'dns.adguard-dns.com',
  'dns-family.adguard.com',
  'family.adguard-dns.com',
  'dns-unfiltered.adguard.com',
  'unfiltered.adguard-dns.com',
  // NextDNS
  'dns.nextdns.io',
  // CleanBrowsing
  'doh.cleanbrowsing.org',
  // Mullvad
  'dns.mullvad.net',
  'doh.mullvad.net',
  // Control D
  'freedns.controld.com',
  'dns.controld.com',
  // DNS.SB
  'doh.dns.sb',
  'dot.sb',
  // dns0.eu
  'dns0.eu',
  // Comcast Xfinity
  'doh.xfinity.com',
  // CIRA Canadian Shield
  'private.canadianshield.cira.ca',
  'protected.canadianshield.cira.ca',
  'family.canadianshield.cira.ca',
  // AliDNS, DNSPod, 360
  'dns.alidns.com',
  'doh.pub',
  'dot.pub',
  'doh.360.cn',
  // Hurricane Electric
  'ordns.he.net',
  // Switch, Digitale Gesellschaft, LibreDNS, UncensoredDNS, applied-privacy, dnsforge
  'dns.switch.ch',
  'dns.digitale-gesellschaft.ch',
  'doh.libredns.gr',
  'dot.libredns.gr',
  'anycast.uncensoreddns.org',
  'unicast.uncensoreddns.org',
  'doh.applied-privacy.net',
  'dot1.applied-privacy.net',
  'dnsforge.de',
]);

const SET: ReadonlySet<string> = new Set(ENCRYPTED_DNS_HOSTS);

/** The list as a `domains` list file (one name a line), for the `builtin:encrypted-dns` source. */
export function encryptedDnsListText(): string {
  return `# safespot builtin:encrypted-dns (public DoH/DoT/DoQ endpoints; docs/dns.md)\n${ENCRYPTED_DNS_HOSTS.join('\n')}\n`;
}

/** Is `name` (lower case) one of the endpoints or under one? Allocation-free on a short name. */
export function isEncryptedDnsEndpoint(name: string): boolean {
  let n = name.endsWith('.') ? name.slice(0, -1) : name;
  for (;;) {
    if (SET.has(n)) return true;
    const dot = n.indexOf('.');
    if (dot < 0) return false;
    n = n.slice(dot + 1);
  }
}
