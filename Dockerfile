# syntax=docker/dockerfile:1
# safespot, the filtering proxy appliance, as a container image for linux/amd64 and linux/arm64.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t safespot .   # where Docker Hub is reachable
#   docker/build-base-image.sh && \
#   CONTAINERS_CONF=docker/containers.conf podman --runtime runc build --format docker \
#     --network host -t safespot .                  # where no registry is reachable (CI, see docs/deployment.md)
#   docker/build-base-image.sh --arch arm64 && \
#   CONTAINERS_CONF=docker/containers.conf podman --runtime runc build --pull=never --format docker \
#     --network host --platform linux/arm64 --build-arg BUILDPLATFORM=linux/amd64 \
#     --build-arg BASE_IMAGE=localhost/node:22-bookworm-slim-arm64 \
#     --build-arg BUILD_BASE_IMAGE=localhost/node:22-bookworm-slim \
#     -t safespot:arm64 .                           # arm64 on an x86-64 machine, under qemu-user-static
#
# `--format docker` matters with podman: the OCI image format has no HEALTHCHECK, so podman drops it.
#
# Four stages; only the last is the image:
#   native   on the TARGET platform (under qemu when it is foreign): the production node_modules,
#            better-sqlite3 compiled from source for that platform, sharp's prebuilt binary for it
#            (the optional dependency @img/sharp-linux-<arch>), and a stripped copy of node;
#   rootfs   on the TARGET platform: the few Debian packages the runtime needs (libc6, libgcc-s1,
#            libstdc++6, libjemalloc2, tini), unpacked with dpkg-deb into an empty directory: no
#            shell, no apt, no dpkg, no coreutils (a "distroless" root filesystem);
#   js       on the BUILD machine's platform (never emulated): every dependency, TypeScript compiled;
#            the compiled JavaScript and the data files beside it (demo lists, block page locales);
#   runtime  FROM scratch: that root filesystem, node, the node_modules and the JavaScript.
# The js stage is arch-independent, so an arm64 build compiles TypeScript at native speed; what runs
# emulated is only what must (apt in the target's Debian, npm ci, better-sqlite3's C compile), and it
# depends only on package-lock.json and the base image, so its layers stay cached across source changes.
# Why not a second `npm ci --omit=dev` in the runtime stage: it would need python3/make/g++ there for
# better-sqlite3 (its prebuilt download is not reachable everywhere we build).

ARG BASE_IMAGE=node:22-bookworm-slim
# The image the js stage runs on, on the build machine's platform: the same multi-arch image for
# docker buildx; podman's locally assembled bases are one arch each, so name the host's one (and pass
# BUILDPLATFORM, which podman 4.3 leaves empty in FROM lines, and --pull=never: with stages of two
# platforms its default policy tries to pull the local base from a registry).
ARG BUILD_BASE_IMAGE=${BASE_IMAGE}

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS native

# better-sqlite3 is compiled from source by node-gyp: python3, make, g++, and the Node headers that the
# node image ships under /usr/local/include/node (npm_config_nodedir), so node-gyp downloads nothing.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local \
    npm_config_build_from_source=true \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false

WORKDIR /src
COPY package.json package-lock.json ./
# Production dependencies only; npm picks sharp's optional @img/sharp-linux-<arch> for the platform it
# runs on. Then only better-sqlite3's install script runs (build_from_source: no prebuilt download),
# and its build intermediates and C sources go. Both addons are loaded once here as a check.
# node is copied stripped (`strip` removes the debug info and the static symbol table, 125 -> 107 MB on
# x86-64; addons link against the dynamic symbol table, which stays).
RUN --mount=type=cache,target=/root/.npm \
    --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && npm ci --omit=dev --ignore-scripts \
 && npm rebuild better-sqlite3 \
 && rm -rf node_modules/better-sqlite3/build/Release/obj.target node_modules/better-sqlite3/build/Release/.deps \
           node_modules/better-sqlite3/build/Release/obj node_modules/better-sqlite3/build/Release/test_extension.node \
           node_modules/better-sqlite3/deps node_modules/better-sqlite3/src \
 && node -e "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()" \
 && node -e "require('sharp')" \
 && mkdir -p /out/usr/local/bin /out/app \
 && strip -o /out/usr/local/bin/node /usr/local/bin/node \
 && cp -a node_modules /out/app/

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS rootfs

# The runtime's shared libraries, from the target's own Debian packages, unpacked (not installed: no
# maintainer scripts run, no dpkg database): glibc (node, the addons and libvips need libc, libm,
# libpthread, libdl, libresolv), libgcc_s and libstdc++ (node and every addon), jemalloc, tini.
# Then everything a library does not need at run time goes: docs, man pages, locales, gconv modules
# (iconv's character sets: node has ICU built in), and the package's programs (ldd, iconv, locale...),
# so the image holds no shell or tool beyond node and tini.
# tini as PID 1: forwards SIGTERM to node (which drains by itself: stop accepting, finish in-flight
# requests within limits.drainTimeout, flush the journal, exit 0) and reaps any child, so no
# `docker run --init` is needed.
# jemalloc as the process's malloc (LD_PRELOAD below): glibc's malloc keeps freed native memory longer,
# so a serve under steady load reached its RSS plateau after ~40 minutes instead of ~20 (BENCHMARKS.md,
# "Soak"), and sharp runs libvips on one thread under glibc to limit fragmentation. Its defaults cost
# ~7-9 MiB of RSS beside glibc's at idle (per-thread caches in each of node's ~11 threads, 4 arenas per
# core); MALLOC_CONF below (one arena, no thread caches, dirty pages purged after 1 s and not kept
# muzzy) takes that back: an idle serve 72.0 MiB instead of 80.9 (glibc 72.1), 72.3 instead of 84.9
# after 6,000 blocked requests, and the same CPU per request (253 vs 250 ms per 1,000: noise; issue
# 23, BENCHMARKS.md "Idle memory"). The library's directory depends on the architecture
# (x86_64-linux-gnu, aarch64-linux-gnu, ...), so one fixed link names it for every build.
# The non-root user (10001) owns only the state volume; /etc/passwd and /etc/group name it and root.
WORKDIR /tmp/debs
RUN apt-get update \
 && apt-get download libc6 libgcc-s1 libstdc++6 libjemalloc2 tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /rootfs \
 && for deb in ./*.deb; do dpkg-deb -x "$deb" /rootfs; done \
 && jemalloc=$(dpkg-deb -c ./libjemalloc2_*.deb | awk '{print $6}' | grep '/libjemalloc\.so\.2$' | sed 's/^\.//') \
 && test -n "$jemalloc" && test -e "/rootfs$jemalloc" \
 && rm -rf /rootfs/usr/share /rootfs/usr/bin /rootfs/usr/sbin /rootfs/sbin /rootfs/bin /rootfs/usr/libexec \
           /rootfs/usr/lib/*/gconv \
 && mkdir -p /rootfs/usr/bin /rootfs/usr/local/bin /rootfs/usr/local/lib /rootfs/etc/safespot /rootfs/var/lib/safespot /rootfs/tmp /rootfs/run/secrets \
 && dpkg-deb --fsys-tarfile ./tini_*.deb | tar -x -C /rootfs ./usr/bin/tini \
 && ln -s "$jemalloc" /rootfs/usr/local/lib/libjemalloc.so.2 \
 && echo 'include /etc/ld.so.conf.d/*.conf' >/rootfs/etc/ld.so.conf \
 && ldconfig -r /rootfs \
 && printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nsafespot:x:10001:10001:safespot:/var/lib/safespot:/usr/sbin/nologin\n' >/rootfs/etc/passwd \
 && printf 'root:x:0:\nsafespot:x:10001:\n' >/rootfs/etc/group \
 && printf 'passwd: files\ngroup: files\nhosts: files dns\n' >/rootfs/etc/nsswitch.conf \
 && chmod 1777 /rootfs/tmp \
 && chown 10001:10001 /rootfs/var/lib/safespot \
 && chmod 0750 /rootfs/var/lib/safespot \
 && rm -rf /tmp/debs

# ---------------------------------------------------------------------------------------------------
# Last of the build stages on purpose: podman 4.3 looks the base of every stage after a
# `FROM --platform=…` up for that platform, so the target's stages come first.
FROM --platform=$BUILDPLATFORM ${BUILD_BASE_IMAGE} AS js
ENV npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency script runs unasked (nothing native is needed to compile TypeScript),
# and our own `prepare` (tsc) waits for the sources.
# Behind a TLS-inspecting egress proxy, pass its CA for the npm steps only (it never enters a layer):
#   --secret id=build_ca,src=/path/to/ca.pem   (docker buildx and podman both accept it)
RUN --mount=type=cache,target=/root/.npm \
    --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && npm ci --ignore-scripts

COPY tsconfig.json ./
COPY policy policy
COPY audit audit
COPY certs certs
COPY proxy proxy
COPY appliance appliance
# Data files beside the sources (demo lists, block page locales) go along: the code finds them relative
# to dist/ (dist/appliance/../../appliance/demo).
RUN npm run build \
 && mkdir -p /out/app \
 && cp -a package.json /out/app/ \
 && cp -a dist /out/app/dist && rm -f /out/app/dist/.tsbuildinfo \
 && find policy audit certs proxy appliance -type f ! -name '*.ts' -exec cp --parents {} /out/app/ \;

# ---------------------------------------------------------------------------------------------------
FROM scratch AS runtime

COPY --from=rootfs /rootfs/ /
COPY --from=native /out/ /
COPY --from=js /out/app /app
COPY docker/config.example.yaml /etc/safespot/config.yaml

# Config from a mounted file (replace /etc/safespot/config.yaml, or point SAFESPOT_CONFIG elsewhere);
# the admin bearer token from a secret file (SAFESPOT_ADMIN_TOKEN_FILE, the same path as admin.tokenFile
# in the shipped config). NODE_ENV=production; no npm at run time. `-e LD_PRELOAD=` runs on glibc's
# malloc instead (docs/deployment.md).
ENV PATH=/usr/local/bin:/usr/bin \
    NODE_ENV=production \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    MALLOC_CONF=narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0 \
    SAFESPOT_CONFIG=/etc/safespot/config.yaml \
    SAFESPOT_ADMIN_TOKEN_FILE=/run/secrets/admin-token

# The assembled root filesystem is complete for what runs: node starts on jemalloc, both native addons
# load, and the CLI answers (exec form: there is no shell to run a string).
RUN ["node", "-e", "const fs = require('fs'); if (!fs.readFileSync('/proc/self/maps', 'utf8').includes('/libjemalloc.so')) throw new Error('jemalloc is not preloaded'); new (require('/app/node_modules/better-sqlite3'))(':memory:').prepare('select 1').get(); require('/app/node_modules/sharp');"]
RUN ["node", "/app/dist/appliance/cli.js", "--help"]

WORKDIR /var/lib/safespot
VOLUME ["/var/lib/safespot"]
USER 10001:10001
# 3128 forward (explicit) proxy, 8080 transparent HTTP, 8443 transparent TLS, 9090 admin and metrics.
EXPOSE 3128 8080 8443 9090
STOPSIGNAL SIGTERM
# Checks the real path: /readyz on the admin listener and one decision through the forward listener.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["node", "/app/dist/appliance/cli.js", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/appliance/cli.js"]
CMD ["serve"]

# Labels last: CREATED/REVISION change every build and would otherwise invalidate the cached layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="safespot" \
      org.opencontainers.image.description="Filtering proxy appliance for child-friendly public WiFi: hashed URL lists, image hash lists, SNI peek, Prometheus metrics and an audit journal." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.documentation="docs/deployment.md" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
