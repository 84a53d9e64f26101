#!/usr/bin/env bash
# A thin access point in front of a safespot box elsewhere on the network, with iptables and
# ip6tables (legacy or nft backend), for routers without nftables tooling. Same interface and the
# same rules as thin-ap-nftables.sh: read its header for what each rule is for.
#
#   thin-ap-iptables.sh up     GUEST_IF BOX [HTTP_PORT [TLS_PORT]]   install (or replace) the rules
#   thin-ap-iptables.sh down                                         remove them (idempotent)
#   thin-ap-iptables.sh status                                       print them
#
# Environment, as for thin-ap-nftables.sh: GUEST_IF, BOX, HTTP_PORT (8080), TLS_PORT (8443),
# DNS_PORT (unset: DNS left alone), BOX6 (unset: guests' forwarded IPv6 to 80/443, and 53 with
# DNS_PORT, is rejected), BOX_PORTS (TCP ports of the box guests may reach directly), EXCLUDE.
# Our own chains SAFESPOT_AP_PRE (nat), SAFESPOT_AP_FWD and SAFESPOT_AP_IN (filter) are jumped to
# from PREROUTING, FORWARD and INPUT for each guest interface. No SNAT is done: the box must route
# the guests' subnet back through this router (docs/deployment.md, "Thin access points").
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "thin-ap-iptables.sh: $*" >&2
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
EXCLUDE=${EXCLUDE:-}
PRE=SAFESPOT_AP_PRE
FWD=SAFESPOT_AP_FWD
IN=SAFESPOT_AP_IN

command -v iptables >/dev/null 2>&1 || die "iptables not found (apt-get install iptables)"

valid_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_v4() {
  [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
  local octet
  for octet in "${BASH_REMATCH[@]:1}"; do [ "$octet" -le 255 ] || return 1; done
}
valid_v6() { [[ $1 =~ ^[0-9A-Fa-f:]{2,39}$ && $1 == *:* ]]; }
is_v4_cidr() { [[ $1 =~ ^([0-9.]+)(/[0-9]{1,2})?$ ]] && valid_v4 "${BASH_REMATCH[1]}"; }
is_v6_cidr() { [[ $1 =~ ^([0-9A-Fa-f:]+)(/[0-9]{1,3})?$ ]] && valid_v6 "${BASH_REMATCH[1]}"; }

# IPv4 always; IPv6 when ip6tables is present (its nat table only matters with BOX6).
families=(iptables)
if command -v ip6tables >/dev/null 2>&1 && ip6tables -S >/dev/null 2>&1; then families+=(ip6tables); fi

# Remove our jumps (however many were added, for whichever interfaces) and our chains.
remove() {
  local ipt=$1 table chain parent rule
  for spec in "nat:$PRE:PREROUTING" "filter:$FWD:FORWARD" "filter:$IN:INPUT"; do
    IFS=: read -r table chain parent <<<"$spec"
    "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
    while read -r rule; do
      [ -n "$rule" ] || continue
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
  local ipt=$1 box item to proto port ifname
  local -a excl=()
  if [ "$ipt" = iptables ]; then box=$BOX; to=$BOX; else box=$BOX6; to="[$BOX6]"; fi
  IFS=', ' read -r -a items <<<"$EXCLUDE"
  for item in "${items[@]}"; do
    if [ "$ipt" = iptables ] && is_v4_cidr "$item"; then excl+=("$item"); fi
    if [ "$ipt" = ip6tables ] && is_v6_cidr "$item"; then excl+=("$item"); fi
  done

  "$ipt" -t filter -N "$FWD"
  "$ipt" -t filter -A "$FWD" -p udp --dport 443 -j DROP
  "$ipt" -t filter -A "$FWD" -p tcp --dport 853 -j REJECT --reject-with tcp-reset
  "$ipt" -t filter -A "$FWD" -p udp --dport 853 -j REJECT
  if [ -n "$box" ]; then
    "$ipt" -t nat -N "$PRE"
    for item in "${excl[@]}"; do "$ipt" -t nat -A "$PRE" -s "$item" -j RETURN; done
    if [ -n "$DNS_PORT" ]; then
      for proto in udp tcp; do "$ipt" -t nat -A "$PRE" -p "$proto" --dport 53 -j DNAT --to-destination "$to:$DNS_PORT"; done
    fi
    "$ipt" -t nat -A "$PRE" -m addrtype --dst-type LOCAL -j RETURN
    "$ipt" -t nat -A "$PRE" -p tcp --dport 80 -j DNAT --to-destination "$to:$HTTP_PORT"
    "$ipt" -t nat -A "$PRE" -p tcp --dport 443 -j DNAT --to-destination "$to:$TLS_PORT"
    # The box itself: reached only through the DNAT (and BOX_PORTS), never its admin port.
    "$ipt" -t filter -A "$FWD" -d "$box" -m conntrack --ctstate DNAT -j RETURN
    IFS=', ' read -r -a items <<<"$BOX_PORTS"
    for port in "${items[@]}"; do
      [ -z "$port" ] || "$ipt" -t filter -A "$FWD" -d "$box" -p tcp --dport "$port" -j RETURN
    done
    "$ipt" -t filter -A "$FWD" -d "$box" -j REJECT
  else
    # IPv6 without BOX6: no way around the box over IPv6.
    "$ipt" -t filter -A "$FWD" -p tcp -m multiport --dports 80,443 -j REJECT --reject-with tcp-reset
    if [ -n "$DNS_PORT" ]; then
      "$ipt" -t filter -N "$IN"
      for proto in udp tcp; do
        "$ipt" -t filter -A "$FWD" -p "$proto" --dport 53 -j REJECT
        "$ipt" -t filter -A "$IN" -p "$proto" --dport 53 -j REJECT
      done
    fi
  fi

  IFS=',' read -r -a ifnames <<<"$GUEST_IF"
  for ifname in "${ifnames[@]}"; do
    if [ -n "$box" ]; then "$ipt" -t nat -I PREROUTING -i "$ifname" -j "$PRE"; fi
    "$ipt" -t filter -I FORWARD -i "$ifname" -j "$FWD"
    if "$ipt" -t filter -S "$IN" >/dev/null 2>&1; then "$ipt" -t filter -I INPUT -i "$ifname" -j "$IN"; fi
  done
}

case "$action" in
  up)
    [ -n "$GUEST_IF" ] && [ -n "$BOX" ] || usage
    valid_v4 "$BOX" || die "BOX is not an IPv4 address: $BOX"
    [ -z "$BOX6" ] || valid_v6 "$BOX6" || die "BOX6 is not an IPv6 address: $BOX6"
    valid_port "$HTTP_PORT" || die "bad HTTP_PORT: $HTTP_PORT"
    valid_port "$TLS_PORT" || die "bad TLS_PORT: $TLS_PORT"
    [ -z "$DNS_PORT" ] || valid_port "$DNS_PORT" || die "bad DNS_PORT: $DNS_PORT"
    IFS=',' read -r -a ifnames <<<"$GUEST_IF"
    for ifname in "${ifnames[@]}"; do
      [[ $ifname =~ ^[A-Za-z0-9_.@-]{1,15}$ ]] || die "bad interface name: '$ifname'"
    done
    IFS=', ' read -r -a items <<<"$BOX_PORTS"
    for item in "${items[@]}"; do [ -z "$item" ] || valid_port "$item" || die "BOX_PORTS: not a port: '$item'"; done
    IFS=', ' read -r -a items <<<"$EXCLUDE"
    for item in "${items[@]}"; do
      [ -z "$item" ] || is_v4_cidr "$item" || is_v6_cidr "$item" || die "EXCLUDE: not an address or CIDR: '$item'"
    done
    if [ -n "$BOX6" ] && ! ip6tables -t nat -S >/dev/null 2>&1; then die "BOX6 given but ip6tables has no nat table here"; fi
    for ipt in "${families[@]}"; do
      remove "$ipt"
      install "$ipt"
    done
    echo "thin-ap-iptables.sh: installed for ${families[*]}: $GUEST_IF tcp/80 -> $BOX:$HTTP_PORT, tcp/443 -> $BOX:$TLS_PORT${DNS_PORT:+, 53 -> $BOX:$DNS_PORT}${BOX6:+ (and $BOX6)}, udp/443 dropped, 853 rejected" >&2
    ;;
  down)
    for ipt in "${families[@]}"; do remove "$ipt"; done
    echo "thin-ap-iptables.sh: rules removed (${families[*]})" >&2
    ;;
  status)
    for ipt in "${families[@]}"; do
      echo "# $ipt"
      "$ipt" -t nat -S "$PRE" 2>/dev/null || echo "# (no $PRE chain)"
      "$ipt" -t filter -S "$FWD" 2>/dev/null || echo "# (no $FWD chain)"
      "$ipt" -t filter -S "$IN" 2>/dev/null || true
    done
    ;;
  *) usage ;;
esac
