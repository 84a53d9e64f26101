#!/usr/bin/env bash
# Router rules for safespot's transparent mode, with iptables and ip6tables (legacy or nft backend),
# for routers without nftables tooling. Same interface and rules as nftables.sh.
#
#   iptables.sh up     GUEST_IF [HTTP_PORT [TLS_PORT [DNS_PORT]]]   install (or replace) the rules
#   iptables.sh down   [GUEST_IF …]                                 remove them (idempotent)
#   iptables.sh status                                              print them
#
#   GUEST_IF   the guests' interface, e.g. br-guest or wlan0-1; several as "wlan0-1,eth0.20"
#   HTTP_PORT  safespot's transparent http listener (default 8080)
#   TLS_PORT   safespot's transparent tls listener  (default 8443)
#   DNS_PORT   safespot's DNS listener (listeners.dns, UDP and TCP): guests' port 53, to any address
#              including the router's own, goes there. Unset: DNS is left alone (the listener is optional)
# The same values may come from the environment: GUEST_IF, HTTP_PORT, TLS_PORT, DNS_PORT. Optional:
#   EXCLUDE    addresses or CIDRs on the guest side never redirected (e.g. "10.0.0.5,10.0.0.64/28")
#   IPV6       1 (default) also installs the rules with ip6tables when it works; 0 skips IPv6
#
# What the rules do, for packets arriving on GUEST_IF only (all in our own chains SAFESPOT_PRE in the
# nat table and SAFESPOT_FWD in the filter table, jumped to from PREROUTING and FORWARD):
#   - With DNS_PORT: UDP and TCP 53 -> REDIRECT to DNS_PORT, whatever server the guest names, and
#     also queries to the router itself (the resolver DHCP hands out).
#   - TCP 80  -> REDIRECT to HTTP_PORT; TCP 443 -> REDIRECT to TLS_PORT (safespot routes by Host/SNI,
#     it needs no original destination). Connections to the router's own addresses on 80/443 are left alone.
#   - UDP 443 forwarded to the Internet is dropped (QUIC: browsers fall back to TCP, where SNI is visible).
#   - TCP and UDP 853 forwarded to the Internet are rejected (DNS over TLS / QUIC bypass the venue's
#     resolver; a reject makes clients fall back at once).
# The appliance's own traffic is never redirected: it leaves through OUTPUT, not PREROUTING on GUEST_IF.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "iptables.sh: $*" >&2
  exit 1
}

action=${1:-}
if [ $# -gt 0 ]; then shift; fi
GUEST_IF=${1:-${GUEST_IF:-}}
HTTP_PORT=${2:-${HTTP_PORT:-8080}}
TLS_PORT=${3:-${TLS_PORT:-8443}}
DNS_PORT=${4:-${DNS_PORT:-}}
EXCLUDE=${EXCLUDE:-}
IPV6=${IPV6:-1}
PRE=SAFESPOT_PRE
FWD=SAFESPOT_FWD

command -v iptables >/dev/null 2>&1 || die "iptables not found (apt-get install iptables)"

valid_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

# The families to handle: iptables always, ip6tables when present and its nat table works.
families=(iptables)
if [ "$IPV6" = 1 ] && command -v ip6tables >/dev/null 2>&1 && ip6tables -t nat -S >/dev/null 2>&1; then
  families+=(ip6tables)
fi

# Remove our jumps (however many were added, for whichever interfaces) and our chains.
remove() {
  local ipt=$1 table chain parent rule
  for spec in "nat:$PRE:PREROUTING" "filter:$FWD:FORWARD"; do
    IFS=: read -r table chain parent <<<"$spec"
    while read -r rule; do
      [ -n "$rule" ] || continue
      # "-A PREROUTING -i eth1 -j SAFESPOT_PRE" -> delete the same rule.
      read -r -a words <<<"${rule#-A "$parent" }"
      "$ipt" -t "$table" -D "$parent" "${words[@]}"
    done < <("$ipt" -t "$table" -S "$parent" 2>/dev/null | grep -E -- "-j $chain( |\$)" || true)
    if "$ipt" -t "$table" -S "$chain" >/dev/null 2>&1; then
      "$ipt" -t "$table" -F "$chain"
      "$ipt" -t "$table" -X "$chain"
    fi
  done
}

install() {
  local ipt=$1 ifname item proto excl=()
  IFS=', ' read -r -a items <<<"$EXCLUDE"
  for item in "${items[@]}"; do
    [ -n "$item" ] || continue
    if [ "$ipt" = iptables ] && [[ $item =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$ ]]; then
      excl+=("$item")
    elif [ "$ipt" = ip6tables ] && [[ $item =~ ^[0-9A-Fa-f:]+(/[0-9]{1,3})?$ && $item == *:* ]]; then
      excl+=("$item")
    fi
  done

  "$ipt" -t nat -N "$PRE"
  for item in "${excl[@]}"; do "$ipt" -t nat -A "$PRE" -s "$item" -j RETURN; done
  # DNS before the local return: the guests' resolver is usually the router itself.
  if [ -n "$DNS_PORT" ]; then
    for proto in udp tcp; do "$ipt" -t nat -A "$PRE" -p "$proto" --dport 53 -j REDIRECT --to-ports "$DNS_PORT"; done
  fi
  "$ipt" -t nat -A "$PRE" -m addrtype --dst-type LOCAL -j RETURN
  "$ipt" -t nat -A "$PRE" -p tcp --dport 80 -j REDIRECT --to-ports "$HTTP_PORT"
  "$ipt" -t nat -A "$PRE" -p tcp --dport 443 -j REDIRECT --to-ports "$TLS_PORT"

  "$ipt" -t filter -N "$FWD"
  "$ipt" -t filter -A "$FWD" -p udp --dport 443 -j DROP
  "$ipt" -t filter -A "$FWD" -p tcp --dport 853 -j REJECT --reject-with tcp-reset
  "$ipt" -t filter -A "$FWD" -p udp --dport 853 -j REJECT

  IFS=',' read -r -a ifnames <<<"$GUEST_IF"
  for ifname in "${ifnames[@]}"; do
    "$ipt" -t nat -I PREROUTING -i "$ifname" -j "$PRE"
    "$ipt" -t filter -I FORWARD -i "$ifname" -j "$FWD"
  done
}

case "$action" in
  up)
    [ -n "$GUEST_IF" ] || usage
    valid_port "$HTTP_PORT" || die "bad HTTP_PORT: $HTTP_PORT"
    valid_port "$TLS_PORT" || die "bad TLS_PORT: $TLS_PORT"
    [ -z "$DNS_PORT" ] || valid_port "$DNS_PORT" || die "bad DNS_PORT: $DNS_PORT"
    IFS=',' read -r -a ifnames <<<"$GUEST_IF"
    for ifname in "${ifnames[@]}"; do
      [[ $ifname =~ ^[A-Za-z0-9_.@-]{1,15}$ ]] || die "bad interface name: '$ifname'"
    done
    IFS=', ' read -r -a items <<<"$EXCLUDE"
    for item in "${items[@]}"; do
      [ -z "$item" ] || [[ $item =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$ ]] ||
        [[ $item =~ ^[0-9A-Fa-f:]+(/[0-9]{1,3})?$ && $item == *:* ]] || die "EXCLUDE: not an address or CIDR: '$item'"
    done
    for ipt in "${families[@]}"; do
      remove "$ipt"
      install "$ipt"
    done
    echo "iptables.sh: installed for ${families[*]}: $GUEST_IF tcp/80 -> :$HTTP_PORT, tcp/443 -> :$TLS_PORT${DNS_PORT:+, 53 -> :$DNS_PORT}, udp/443 dropped, 853 rejected" >&2
    ;;
  down)
    for ipt in "${families[@]}"; do remove "$ipt"; done
    echo "iptables.sh: rules removed (${families[*]})" >&2
    ;;
  status)
    for ipt in "${families[@]}"; do
      echo "# $ipt"
      "$ipt" -t nat -S "$PRE" 2>/dev/null || echo "# (no $PRE chain)"
      "$ipt" -t filter -S "$FWD" 2>/dev/null || echo "# (no $FWD chain)"
    done
    ;;
  *) usage ;;
esac
