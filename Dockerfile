# syntax=docker/dockerfile:1
# threadwarden: build stage compiles the native modules (node-pty, better-sqlite3) from source and the TypeScript;
# the runtime stage carries only what the bot needs, runs as a non-root user under tini.

FROM node:20-bookworm AS build
WORKDIR /app
# node-gyp needs python3, make and g++ (all in the full bookworm image); .npmrc says build-from-source.
COPY package.json package-lock.json .npmrc ./
COPY packages/discord-emulator/package.json ./packages/discord-emulator/
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY packages/discord-emulator/tsconfig.json packages/discord-emulator/tsconfig.build.json ./packages/discord-emulator/
COPY packages/discord-emulator/src ./packages/discord-emulator/src
COPY migrations ./migrations
COPY test/fixtures/fake-kiro ./test/fixtures/fake-kiro
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
# tini is PID 1: it reaps zombies (orphaned agent processes reparent to PID 1) and forwards signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates python3 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    DATABASE_PATH=/data/threadwarden.db \
    WORKSPACE_ROOT=/data/workspaces \
    HTTP_PORT=8082 \
    # Inside the container the health endpoint must be reachable from the published port; docker-compose.yml
    # publishes it on the host's loopback only (127.0.0.1:8082), so it is still not exposed beyond the host.
    HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/packages/discord-emulator/package.json ./packages/discord-emulator/
COPY --from=build /app/packages/discord-emulator/dist ./packages/discord-emulator/dist
COPY --from=build /app/migrations ./migrations
COPY --from=build /app/test/fixtures/fake-kiro ./test/fixtures/fake-kiro
RUN useradd --create-home --uid 10001 threadwarden \
 && mkdir -p /data/workspaces \
 && chown -R threadwarden:threadwarden /data
USER threadwarden
VOLUME ["/data"]
EXPOSE 8082
# kiro-cli is not in this image (its vendor ships it outside any package registry). Either mount the host's
# binary and its login state read-only (see docker-compose.yml), or extend this image:
#   FROM threadwarden
#   COPY kiro-cli /usr/local/bin/kiro-cli
# then log in once as the threadwarden user (`docker compose run --rm threadwarden kiro-cli login`) with the
# directory kiro-cli login writes to on a volume.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "dist/src/cli.js", "status"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/cli.js", "start"]
