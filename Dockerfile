# syntax=docker/dockerfile:1
# socks4-fleet: one image for `socks4-fleet proxy`, `socks4-fleet operator` and the Helm chart's
# test pod (charts/socks4-fleet points at it). Node 24 runs the TypeScript sources directly (type
# stripping works for files outside node_modules), so there is no build step: the image is src/,
# operator/, package.json and the production node_modules, owned by root and read-only to the
# non-root user that runs them. It also runs with a read-only root filesystem (the chart mounts
# an empty /tmp).
#
#   docker build -t ghcr.io/socks4-fleet/socks4-fleet:0.1.0 .
#   docker run --rm -p 1080:1080 ghcr.io/socks4-fleet/socks4-fleet:0.1.0 \
#     proxy --listen 0.0.0.0:1080 --redis-url redis://redis:6379
#
# Pin NODE_IMAGE by digest in release builds (node:24…@sha256:…) so a rebuild gets the same base.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# --- Production dependencies, exactly as the lockfile says; dev dependencies never enter the image.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency runs code at install time; none of ours needs an install step.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- Runtime.
FROM ${NODE_IMAGE} AS runtime
# npm, npx and corepack are not needed at run time; fewer tools in the image is less to exploit.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn* /usr/local/bin/yarn*
ENV NODE_ENV=production
# The launcher's V8 flags (scripts/socks4-fleet, where the reason is): a smaller young generation,
# so thousands of idle sessions cost less memory.
ENV NODE_OPTIONS=--max-semi-space-size=4
WORKDIR /app
COPY --from=deps --chown=0:0 /app/node_modules ./node_modules
COPY --chown=0:0 package.json ./
COPY --chown=0:0 src ./src
COPY --chown=0:0 operator ./operator
# The `node` user of the base image (uid/gid 1000): the chart's podSecurityContext default.
USER 1000:1000
# SOCKS listener, proxy ops (/healthz /readyz /metrics), operator ops.
EXPOSE 1080 9090 9091
ENTRYPOINT ["node", "/app/src/cli/main.ts"]
CMD ["--help"]
