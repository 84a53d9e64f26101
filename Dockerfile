# syntax=docker/dockerfile:1
# safespot, the filtering proxy appliance, as a container image.
#
#   docker build -t safespot .                      # on a machine that reaches Docker Hub
#   docker/build-base-image.sh && \
#   CONTAINERS_CONF=docker/containers.conf podman --runtime runc build --format docker \
#     --network host -t safespot .                  # where no registry is reachable (CI, see docs/deployment.md)
#
# `--format docker` matters with podman: the OCI image format has no HEALTHCHECK, so podman drops it.
#
# Two stages on the same base, so the native module compiled in the first (better-sqlite3) matches the
# Node ABI of the second:
#   build    compilers + every dependency; compiles TypeScript; prunes to production dependencies;
#   runtime  the pruned node_modules, the compiled JavaScript and the data files beside it (demo lists,
#            block page locales); no compilers, no npm install, no TypeScript.
# Why copy the pruned node_modules instead of a second `npm ci --omit=dev`: the second install would
# need python3/make/g++ again for better-sqlite3 (its prebuilt download is not reachable everywhere we
# build), and the package's `prepare` script would want TypeScript.

ARG BASE_IMAGE=node:22-bookworm-slim

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

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
# --ignore-scripts: no dependency script runs unasked, and our own `prepare` (tsc) waits for the
# sources. Then only better-sqlite3's install script runs (build_from_source: no prebuilt download).
# sharp needs no script: its prebuilt binary is the optional dependency @img/sharp-linux-x64.
# Behind a TLS-inspecting egress proxy, pass its CA for this step only (it never enters a layer):
#   --secret id=build_ca,src=/path/to/ca.pem   (docker buildx and podman both accept it)
RUN --mount=type=cache,target=/root/.npm \
    --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && npm ci --ignore-scripts \
 && npm rebuild better-sqlite3 \
 && node -e "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()" \
 && node -e "require('sharp')"

COPY tsconfig.json ./
COPY policy policy
COPY audit audit
COPY certs certs
COPY proxy proxy
COPY appliance appliance
# Data files beside the sources (demo lists, block page locales) go along: the code finds them relative
# to dist/ (dist/appliance/../../appliance/demo).
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && rm -rf node_modules/better-sqlite3/build/Release/obj.target node_modules/better-sqlite3/build/Release/.deps \
           node_modules/better-sqlite3/deps node_modules/better-sqlite3/src \
 && mkdir -p /out/app \
 && cp -a package.json node_modules /out/app/ \
 && cp -a dist /out/app/dist && rm -f /out/app/dist/.tsbuildinfo \
 && find policy audit certs proxy appliance -type f ! -name '*.ts' -exec cp --parents {} /out/app/ \; \
 && node /out/app/dist/appliance/cli.js --help >/dev/null

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM to node (which drains by itself: stop accepting, finish in-flight
# requests within limits.drainTimeout, flush the journal, exit 0) and reaps any child, so no
# `docker run --init` is needed. The non-root user owns only the state volume.
# jemalloc as the process's malloc (LD_PRELOAD below): glibc's malloc keeps freed native memory longer,
# so a serve under steady load reached its RSS plateau after ~40 minutes instead of ~20 (BENCHMARKS.md,
# "Soak"), and sharp runs libvips on one thread under glibc to limit fragmentation. It costs ~6-7 MiB
# of RSS. The library's directory depends on the architecture (x86_64-linux-gnu, aarch64-linux-gnu,
# ...), so one fixed link names it for every build.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && ln -s "$(dpkg -L libjemalloc2 | grep '/libjemalloc\.so\.2$')" /usr/local/lib/libjemalloc.so.2 \
 && test -e /usr/local/lib/libjemalloc.so.2 \
 && groupadd --system --gid 10001 safespot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/safespot --no-create-home --shell /usr/sbin/nologin safespot \
 && mkdir -p /var/lib/safespot /etc/safespot \
 && chown 10001:10001 /var/lib/safespot \
 && chmod 0750 /var/lib/safespot

COPY --from=build /out/app /app
COPY docker/config.example.yaml /etc/safespot/config.yaml

# Config from a mounted file (replace /etc/safespot/config.yaml, or point SAFESPOT_CONFIG elsewhere);
# the admin bearer token from a secret file (SAFESPOT_ADMIN_TOKEN_FILE, the same path as admin.tokenFile
# in the shipped config). NODE_ENV=production; no npm at run time. `-e LD_PRELOAD=` runs on glibc's
# malloc instead (docs/deployment.md).
ENV NODE_ENV=production \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    SAFESPOT_CONFIG=/etc/safespot/config.yaml \
    SAFESPOT_ADMIN_TOKEN_FILE=/run/secrets/admin-token

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
