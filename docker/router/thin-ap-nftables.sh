#!/usr/bin/env bash
# A thin access point in front of a safespot box elsewhere on the network, with nftables: the router
# runs no safespot, it only sends its guests' web (and DNS) traffic to the box by DNAT and routing.
# For routers that cannot run Node.js (MIPS MT7621 class); the box sits at the venue or at the ISP.
#
#   thin-ap-nftables.sh up     GUEST_IF BOX [HTTP_PORT [TLS_PORT]]   install (or replace) the rules
#   thin-ap-nftables.sh down                                         remove them (idempotent)
#   thin-ap-nftables.sh status                                       print them
#
#   GUEST_IF   the guests' interface, e.g. br-guest or wlan0-1; several as "wlan0-1,eth0.20"
#   BOX        the safespot box's IPv4 address (the router must route to it; no SNAT is done)
#   HTTP_PORT  the box's transparent http listener (default 8080)
#   TLS_PORT   the box's transparent tls listener  (default 8443)
# The same values may come from the environment: GUEST_IF, BOX, HTTP_PORT, TLS_PORT. Optional:
#   DNS_PORT   the box's DNS listener (UDP and TCP): guests' port 53, to anywhere including the router
#              itself, goes there. Unset: DNS is left alone
#   BOX6       the box's IPv6 address: IPv6 guests get the same DNAT. Unset: guests' forwarded IPv6 to
#              TCP 80/443 (and 53 with DNS_PORT, also to the router) is rejected, so IPv6 is no way around
#   BOX_PORTS  TCP ports of the box guests may also reach directly, e.g. "3128" for the explicit proxy.
#              Every other direct connection from a guest to the box (its admin port) is rejected
#   EXCLUDE    guest-side addresses or CIDRs never redirected (e.g. "10.0.0.5,10.0.0.64/28")
#   TABLE      nftables table name (default safespot_ap)
#
# What the rules do, for packets arriving on GUEST_IF only:
#   - TCP 80 -> BOX:HTTP_PORT, TCP 443 -> BOX:TLS_PORT by DNAT (REDIRECT would only reach the router).
#     safespot routes by Host/SNI, it needs no original destination. Connections to the router's own
#     addresses on 80/443 (its web UI) are left alone.
#   - UDP 443 forwarded is dropped (QUIC: browsers fall back to TCP, where the SNI is visible).
#   - TCP and UDP 853 forwarded are rejected (DNS over TLS / QUIC; a reject makes clients fall back at once).
#   - No SNAT: the box sees each guest's own address, so profiles and per-client limits work. The box
#     must therefore route the guests' subnet back through this router (docs/deployment.md, "Thin
#     access points"); a router that masquerades towards the box must exempt this traffic.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "thin-ap-nftables.sh: $*" >&2
  exit 1
}

action=${1:-}
if [ $# -gt 0 ]; then shift; fi
GUEST_IF=${1:-${GUEST_IF:-}}
BOX=${2:-${BOX:-}}
HTTP_PORT=${3:-${HTTP_PORT:-8080}}
TLS_PORT=${4:-${TLS_PORT:-8443}}
DNS_PORT=${DNS_PORT:-}
BOX6=${BOX6:-}
BOX_PORTS=${BOX_PORTS:-}
TABLE=${TABLE:-safespot_ap}
EXCLUDE=${EXCLUDE:-}

command -v nft >/dev/null 2>&1 || die "nft not found (apt-get install nftables; OpenWrt: part of fw4)"
[[ $TABLE =~ ^[A-Za-z][A-Za-z0-9_]{0,31}$ ]] || die "bad TABLE name: $TABLE"

valid_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_v4() {
  [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
  local octet
  for octet in "${BASH_REMATCH[@]:1}"; do [ "$octet" -le 255 ] || return 1; done
}
valid_v6() { [[ $1 =~ ^[0-9A-Fa-f:]{2,39}$ && $1 == *:* ]]; }

# "a,b" -> '"a", "b"' for an nftables anonymous set of interface names.
if_set() {
  local out="" name
  IFS=',' read -r -a names <<<"$1"
  for name in "${names[@]}"; do
    [[ $name =~ ^[A-Za-z0-9_.@-]{1,15}$ ]] || die "bad interface name: '$name'"
    out+="${out:+, }\"$name\""
  done
  [ -n "$out" ] || die "no guest interface given"
  printf '%s' "$out"
}

table_exists() { nft list table inet "$TABLE" >/dev/null 2>&1; }

case "$action" in
  up)
    [ -n "$GUEST_IF" ] && [ -n "$BOX" ] || usage
    valid_v4 "$BOX" || die "BOX is not an IPv4 address: $BOX"
    [ -z "$BOX6" ] || valid_v6 "$BOX6" || die "BOX6 is not an IPv6 address: $BOX6"
    valid_port "$HTTP_PORT" || die "bad HTTP_PORT: $HTTP_PORT"
    valid_port "$TLS_PORT" || die "bad TLS_PORT: $TLS_PORT"
    [ -z "$DNS_PORT" ] || valid_port "$DNS_PORT" || die "bad DNS_PORT: $DNS_PORT"
    box_ports=""
    IFS=', ' read -r -a items <<<"$BOX_PORTS"
    for item in "${items[@]}"; do
      [ -n "$item" ] || continue
      valid_port "$item" || die "BOX_PORTS: not a port: '$item'"
      box_ports+="${box_ports:+, }$item"
    done
    ifs=$(if_set "$GUEST_IF")

    pre="" fwd="" in=""
    IFS=', ' read -r -a items <<<"$EXCLUDE"
    for item in "${items[@]}"; do
      [ -n "$item" ] || continue
      if [[ $item =~ ^([0-9.]+)(/[0-9]{1,2})?$ ]] && valid_v4 "${BASH_REMATCH[1]}"; then
        pre+="    iifname { $ifs } ip saddr $item return"$'\n'
      elif [[ $item =~ ^([0-9A-Fa-f:]+)(/[0-9]{1,3})?$ ]] && valid_v6 "${BASH_REMATCH[1]}"; then
        pre+="    iifname { $ifs } ip6 saddr $item return"$'\n'
      else
        die "EXCLUDE: not an address or CIDR: '$item'"
      fi
    done
    # DNS first: guests' resolver is usually the router itself, so 53 is caught before the local return.
    if [ -n "$DNS_PORT" ]; then
      pre+="    iifname { $ifs } meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 counter dnat ip to $BOX:$DNS_PORT comment \"DNS to the box\""$'\n'
      if [ -n "$BOX6" ]; then
        pre+="    iifname { $ifs } meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter dnat ip6 to [$BOX6]:$DNS_PORT"$'\n'
      else
        fwd+="    iifname { $ifs } meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter reject comment \"IPv6 DNS: no BOX6\""$'\n'
        in+="    iifname { $ifs } meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter reject comment \"IPv6 DNS: no BOX6\""$'\n'
      fi
    fi
    pre+="    iifname { $ifs } fib daddr type local return"$'\n'
    pre+="    iifname { $ifs } meta nfproto ipv4 tcp dport 80 counter dnat ip to $BOX:$HTTP_PORT"$'\n'
    pre+="    iifname { $ifs } meta nfproto ipv4 tcp dport 443 counter dnat ip to $BOX:$TLS_PORT"$'\n'
    if [ -n "$BOX6" ]; then
      pre+="    iifname { $ifs } meta nfproto ipv6 tcp dport 80 counter dnat ip6 to [$BOX6]:$HTTP_PORT"$'\n'
      pre+="    iifname { $ifs } meta nfproto ipv6 tcp dport 443 counter dnat ip6 to [$BOX6]:$TLS_PORT"$'\n'
    else
      fwd+="    iifname { $ifs } meta nfproto ipv6 tcp dport { 80, 443 } counter reject with tcp reset comment \"IPv6 web: no BOX6\""$'\n'
    fi
    fwd+="    iifname { $ifs } udp dport 443 counter drop comment \"QUIC: fall back to TCP\""$'\n'
    fwd+="    iifname { $ifs } tcp dport 853 counter reject with tcp reset comment \"DNS over TLS\""$'\n'
    fwd+="    iifname { $ifs } udp dport 853 counter reject comment \"DNS over QUIC\""$'\n'
    # The box itself: reached only through the DNAT above (and BOX_PORTS), never its admin port.
    for addr in "ip daddr $BOX" ${BOX6:+"ip6 daddr $BOX6"}; do
      fwd+="    iifname { $ifs } $addr ct status dnat accept"$'\n'
      [ -z "$box_ports" ] || fwd+="    iifname { $ifs } $addr tcp dport { $box_ports } accept"$'\n'
      fwd+="    iifname { $ifs } $addr counter reject comment \"guests reach the box only through the DNAT\""$'\n'
    done
    input=""
    [ -z "$in" ] || input="  chain input {
    type filter hook input priority filter; policy accept;
${in}  }"
    # One transaction: create-then-delete makes "up" idempotent, then the whole table is (re)built.
    nft -f - <<EOF
table inet $TABLE
delete table inet $TABLE
table inet $TABLE {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
${pre}  }
  chain forward {
    type filter hook forward priority filter; policy accept;
${fwd}  }
${input}
}
EOF
    echo "thin-ap-nftables.sh: table inet $TABLE installed: $GUEST_IF tcp/80 -> $BOX:$HTTP_PORT, tcp/443 -> $BOX:$TLS_PORT${DNS_PORT:+, 53 -> $BOX:$DNS_PORT}${BOX6:+ (and $BOX6)}, udp/443 dropped, 853 rejected" >&2
    ;;
  down)
    if table_exists; then
      nft delete table inet "$TABLE"
      echo "thin-ap-nftables.sh: table inet $TABLE removed" >&2
    else
      echo "thin-ap-nftables.sh: table inet $TABLE not present; nothing to remove" >&2
    fi
    ;;
  status)
    table_exists || die "table inet $TABLE not present"
    nft list table inet "$TABLE"
    ;;
  *) usage ;;
esac
