# syntax=docker/dockerfile:1
# threadwarden. Targets:
#   (default)    the bot alone: runs as a non-root user under tini; no emulator, no test fake, no compilers.
#   demo         adds the Discord emulator and the fake kiro-cli:  docker build --target demo -t threadwarden-demo .
#                                                                  docker run --rm threadwarden-demo demo
# Behind a TLS-inspecting proxy, give its CA (a PEM file, several certificates allowed) as a build secret:
#   docker build --secret id=extra_ca,src=corp-ca.pem -t threadwarden .
# The build stage trusts it for npm ci; the image trusts it too (the bot's HTTPS to Discord goes through the proxy).

FROM node:20-bookworm AS build
COPY scripts/container/add-extra-ca.sh /usr/local/sbin/add-extra-ca
RUN --mount=type=secret,id=extra_ca add-extra-ca
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
WORKDIR /app
# node-gyp needs python3, make and g++ (all in the full bookworm image); .npmrc says build-from-source.
COPY package.json package-lock.json .npmrc ./
COPY packages/discord-emulator/package.json ./packages/discord-emulator/
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY packages/discord-emulator/tsconfig.json packages/discord-emulator/tsconfig.build.json ./packages/discord-emulator/
COPY packages/discord-emulator/src ./packages/discord-emulator/src
COPY src ./src
COPY migrations ./migrations
# The workspace link is re-made by the demo target only: the bot's node_modules do not reach the emulator.
RUN npm run build && npm prune --omit=dev && rm -rf node_modules/@threadwarden

FROM node:20-bookworm-slim AS bot
# tini is PID 1: it reaps zombies (orphaned agent processes reparent to PID 1) and forwards signals.
# bubblewrap: the agent sandbox (it needs user namespaces in the container; see docs/operations.md).
COPY scripts/container/add-extra-ca.sh /usr/local/sbin/add-extra-ca
RUN --mount=type=secret,id=extra_ca apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && add-extra-ca
ENV NODE_ENV=production \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    DATABASE_PATH=/data/threadwarden.db \
    WORKSPACE_ROOT=/data/workspaces \
    HTTP_PORT=8082 \
    # Inside the container the health endpoint must be reachable from the published port; docker-compose.yml
    # publishes it on the host's loopback only (127.0.0.1:8082), so it is still not exposed beyond the host.
    HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/migrations ./migrations
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
# then log in once as the threadwarden user (`docker compose run --rm --entrypoint kiro-cli threadwarden login`)
# with the directory kiro-cli login writes to on a volume.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "dist/src/cli.js", "status"]
# The CLI is the entry point: `docker run threadwarden` starts the bot, `docker run threadwarden history` (or
# status, reap, demo in the demo target) runs that command.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/cli.js"]
CMD ["start"]

FROM bot AS demo
USER root
COPY --from=build /app/packages/discord-emulator/package.json ./packages/discord-emulator/
COPY --from=build /app/packages/discord-emulator/dist ./packages/discord-emulator/dist
COPY test/fixtures/fake-kiro ./test/fixtures/fake-kiro
RUN mkdir -p node_modules/@threadwarden \
 && ln -s ../../packages/discord-emulator node_modules/@threadwarden/discord-emulator
USER threadwarden
CMD ["demo"]

# The last stage is what a plain `docker build .` produces: the bot alone.
FROM bot AS runtime
