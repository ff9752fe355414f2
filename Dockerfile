# syntax=docker/dockerfile:1
# Node 24 LTS (package.json engines: ^20.19.0 || ^22.13.0 || >=24, which every dependency accepts).
# Every stage starts from the same image: a native module compiled in "deps" must match the
# runtime's Node ABI and C library (musl).

# Build stage: compile TypeScript with the dev dependencies. No install scripts: "prepare" would
# run tsc before the sources are here, and nothing in this stage loads a native module.
FROM node:24-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
RUN npx tsc -p tsconfig.json

# Production dependencies, native modules compiled (better-sqlite3 for the usage database).
# python3, make and g++ let node-gyp build a module from source when no prebuilt binary fits
# this platform; they stay in this stage. `npm ci --ignore-scripts` skips the package's own
# "prepare" (tsc, a dev dependency); `npm rebuild` then runs the dependencies' install scripts,
# which fetch or compile the native binaries (npm's allowScripts in package.json must allow
# them), and without a native module it has nothing to do.
FROM node:24-alpine AS deps
RUN apk add --no-cache python3 make g++
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm rebuild

# Runtime stage: the compiled output and the dependencies built above; no config baked in, no
# npm install here (it would have no compiler for a native module).
FROM node:24-alpine AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The admin page's files (tsc compiles only TypeScript): served from the installation's folder.
COPY plugins/ui/static ./plugins/ui/static
# config: mounted read-only in the documented commands. data: the usage database
# (data/usage.sqlite in the installation folder), the one folder the proxy writes; a named volume
# mounted there starts as a copy of this folder, owner included.
RUN mkdir -p /app/config /app/data && chown node:node /app/config /app/data
VOLUME ["/app/data"]
USER node
EXPOSE 8080
# Mount your config folder at /app/config (the folder, so live reload sees a replaced file);
# without a config.yaml there and with the folder writable, one with fresh tokens is created
# inside the container (read it with: docker exec <c> cat /app/config/config.yaml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1's command (not npm), so SIGTERM reaches the proxy and it drains.
# No V8 flags: --max-semi-space-size=32 trades memory for fewer GCs (bench/README.md);
# add it with -e NODE_OPTIONS=--max-semi-space-size=32 where CPU, not memory, is short.
CMD ["node", "dist/src/server.js"]
