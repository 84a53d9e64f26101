#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real (curl, openssl s_client, Prometheus and
# promtool, iproute2/iptables/nftables for the transparent-mode namespaces, Chromium for pages and certutil for its trust store,
# podman/runc/debootstrap for the container test). Does nothing when everything is present, so a
# developer's second `npm test` costs nothing. Needs root (CI and these machines run as root).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have curl || need+=(curl)
have openssl || need+=(openssl)
have prometheus || need+=(prometheus)
have promtool || need+=(prometheus)
have ip || need+=(iproute2)
have iptables || need+=(iptables)
have nft || need+=(nftables)
have chromium || need+=(chromium)
have podman || need+=(podman)
have runc || need+=(runc)
have debootstrap || need+=(debootstrap)
have xxd || need+=(xxd)
# dig: a real DNS client against the DNS listener (test/integration/dns-*.test.ts).
have dig || need+=(bind9-dnsutils)
# python3: a real origin parser (http.server) in the URL-readings differential, and a ClientHello client.
have python3 || need+=(python3)
# sqlite3: the audit tests tamper with a real journal the way a person would, with the sqlite3 shell.
have sqlite3 || need+=(sqlite3)
# pdftotext, pdfinfo, pdftoppm: the printed audit report is read back from Chromium's PDF (test/integration/audit-pdf.test.ts).
have pdftotext || need+=(poppler-utils)
have pdftoppm || need+=(poppler-utils)
# jq: docs/audit.md's auditor walk-through reads a figure of the signed json with it (test/integration/audit-walkthrough.test.ts).
have jq || need+=(jq)
have certutil || need+=(libnss3-tools)
# qemu-user-static + binfmt-support: arm64 binaries (the arm64 image, its base, Node for arm64) run
# here under emulation (test/integration/container-arm64.test.ts).
have qemu-aarch64-static || need+=(qemu-user-static)
have update-binfmts || need+=(binfmt-support)
# jemalloc: the image's malloc; test/integration/hardening-soak.test.ts preloads it into a serve here too.
compgen -G '/usr/lib/*-linux-gnu/libjemalloc.so.2' >/dev/null || need+=(libjemalloc2)
# binfmt_misc is in the kernel but not always mounted; qemu-aarch64 needs registering (with the F
# flag, so that it works inside chroots and containers) where no init system did it at install.
binfmt() {
  [ "$(id -u)" = 0 ] && have update-binfmts || return 0
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || return 0
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
}
if [ ${#need[@]} -eq 0 ]; then
  binfmt
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "test/setup-system.sh: missing ${need[*]}; run as root (or install them) so the real-client tests can run" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "test/setup-system.sh: installing ${need[*]}" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
binfmt
