#!/usr/bin/env bash
# Router rules for safespot's transparent mode, with nftables (Debian ≥ 10, OpenWrt fw4, any kernel
# with nf_tables; IPv4 and IPv6 in one `inet` table).
#
#   nftables.sh up     GUEST_IF [HTTP_PORT [TLS_PORT [DNS_PORT]]]   install (or replace) the rules
#   nftables.sh down   [GUEST_IF …]                                 remove them (idempotent)
#   nftables.sh status                                              print them
#
#   GUEST_IF   the guests' interface, e.g. br-guest or wlan0-1; several as "wlan0-1,eth0.20"
#   HTTP_PORT  safespot's transparent http listener (default 8080)
#   TLS_PORT   safespot's transparent tls listener  (default 8443)
#   DNS_PORT   safespot's DNS listener (listeners.dns, UDP and TCP): guests' port 53, to any address
#              including the router's own, goes there. Unset: DNS is left alone (the listener is optional)
# The same values may come from the environment: GUEST_IF, HTTP_PORT, TLS_PORT, DNS_PORT. Optional:
#   EXCLUDE    addresses or CIDRs on the guest side never redirected (e.g. "10.0.0.5,10.0.0.64/28")
#   TABLE      nftables table name (default safespot)
#
# What the rules do, for packets arriving on GUEST_IF only:
#   - With DNS_PORT: UDP and TCP 53 -> REDIRECT to DNS_PORT, whatever server the guest names (a
#     hard-coded 8.8.8.8 too), and also queries to the router itself (the resolver DHCP hands out).
#   - TCP 80  -> REDIRECT to HTTP_PORT; TCP 443 -> REDIRECT to TLS_PORT (safespot routes by Host/SNI,
#     it needs no original destination). Connections to the router's own addresses on 80/443 (its web
#     UI) are left alone.
#   - UDP 443 forwarded to the Internet is dropped: QUIC (HTTP/3 over UDP) is not proxied, so
#     browsers must fall back to TCP, where the SNI is visible.
#   - TCP and UDP 853 forwarded to the Internet are rejected: DNS over TLS / QUIC would bypass the
#     venue's resolver; a reject (not a drop) makes clients fall back at once.
# The appliance's own traffic is never redirected: it leaves through the router's OUTPUT path, not
# through PREROUTING on GUEST_IF. Run safespot on the router itself (or in a container there with
# --network host): REDIRECT delivers to the router's local sockets.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "nftables.sh: $*" >&2
  exit 1
}

action=${1:-}
if [ $# -gt 0 ]; then shift; fi
GUEST_IF=${1:-${GUEST_IF:-}}
HTTP_PORT=${2:-${HTTP_PORT:-8080}}
TLS_PORT=${3:-${TLS_PORT:-8443}}
DNS_PORT=${4:-${DNS_PORT:-}}
TABLE=${TABLE:-safespot}
EXCLUDE=${EXCLUDE:-}

command -v nft >/dev/null 2>&1 || die "nft not found (apt-get install nftables; OpenWrt: part of fw4)"
[[ $TABLE =~ ^[A-Za-z][A-Za-z0-9_]{0,31}$ ]] || die "bad TABLE name: $TABLE"

valid_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

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

# EXCLUDE -> two comma lists (IPv4, IPv6); anything else is an error.
v4_excl=""
v6_excl=""
if [ -n "$EXCLUDE" ]; then
  IFS=', ' read -r -a items <<<"$EXCLUDE"
  for item in "${items[@]}"; do
    [ -n "$item" ] || continue
    if [[ $item =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$ ]]; then
      v4_excl+="${v4_excl:+, }$item"
    elif [[ $item =~ ^[0-9A-Fa-f:]+(/[0-9]{1,3})?$ && $item == *:* ]]; then
      v6_excl+="${v6_excl:+, }$item"
    else
      die "EXCLUDE: not an address or CIDR: '$item'"
    fi
  done
fi

table_exists() { nft list table inet "$TABLE" >/dev/null 2>&1; }

case "$action" in
  up)
    [ -n "$GUEST_IF" ] || usage
    valid_port "$HTTP_PORT" || die "bad HTTP_PORT: $HTTP_PORT"
    valid_port "$TLS_PORT" || die "bad TLS_PORT: $TLS_PORT"
    [ -z "$DNS_PORT" ] || valid_port "$DNS_PORT" || die "bad DNS_PORT: $DNS_PORT"
    ifs=$(if_set "$GUEST_IF")
    excl=""
    [ -n "$v4_excl" ] && excl+="    iifname { $ifs } ip saddr { $v4_excl } return"$'\n'
    [ -n "$v6_excl" ] && excl+="    iifname { $ifs } ip6 saddr { $v6_excl } return"$'\n'
    # DNS before the local return: the guests' resolver is usually the router itself.
    [ -z "$DNS_PORT" ] || excl+="    iifname { $ifs } meta l4proto { tcp, udp } th dport 53 counter redirect to :$DNS_PORT comment \"DNS to safespot\""$'\n'
    # One transaction: create-then-delete makes "up" idempotent, then the whole table is (re)built.
    nft -f - <<EOF
table inet $TABLE
delete table inet $TABLE
table inet $TABLE {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
${excl}    iifname { $ifs } fib daddr type local return
    iifname { $ifs } tcp dport 80 redirect to :$HTTP_PORT
    iifname { $ifs } tcp dport 443 redirect to :$TLS_PORT
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname { $ifs } udp dport 443 counter drop comment "QUIC: fall back to TCP"
    iifname { $ifs } tcp dport 853 counter reject with tcp reset comment "DNS over TLS"
    iifname { $ifs } udp dport 853 counter reject comment "DNS over QUIC"
  }
}
EOF
    echo "nftables.sh: table inet $TABLE installed: $GUEST_IF tcp/80 -> :$HTTP_PORT, tcp/443 -> :$TLS_PORT${DNS_PORT:+, 53 -> :$DNS_PORT}, udp/443 dropped, 853 rejected" >&2
    ;;
  down)
    if table_exists; then
      nft delete table inet "$TABLE"
      echo "nftables.sh: table inet $TABLE removed" >&2
    else
      echo "nftables.sh: table inet $TABLE not present; nothing to remove" >&2
    fi
    ;;
  status)
    table_exists || die "table inet $TABLE not present"
    nft list table inet "$TABLE"
    ;;
  *) usage ;;
esac
