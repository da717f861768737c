# syntax=docker/dockerfile:1

# ---- build: install everything, compile TypeScript, then drop the dev dependencies ----
FROM node:20-bookworm-slim AS build
WORKDIR /app

# better-sqlite3 is a native addon: it compiles from source when no prebuilt binary fits.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*

# Manifests first, so the slow `npm ci` layer is reused until the dependencies change.
COPY package.json package-lock.json .nvmrc ./
RUN npm ci --no-audit --no-fund

COPY tsconfig*.json ./
COPY src ./src
COPY migrations ./migrations
RUN npm run build \
  && npm prune --omit=dev

# ---- runtime: the compiled service, its production dependencies and its migrations ----
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
  DATABASE_URL=/data/taskhook.db
WORKDIR /app

# package.json is read at run time (the version in `user-agent: taskhook/<version>`);
# migrations/ is applied at start-up, found relative to dist/.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/migrations ./migrations

# The database, its WAL files and a generated encryption.key live here; a new named volume
# copies this ownership, so the unprivileged user can write it.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data

EXPOSE 8080
# The slim image has no curl; Node 20 has fetch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]

# `npm start` is `npm run build && node dist/main.js`; the image is built already, so this is
# its second half. Node is PID 1 and handles SIGTERM itself (graceful drain, see README).
CMD ["node", "dist/main.js"]
