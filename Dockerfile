# syntax=docker/dockerfile:1
# Node 24 LTS (package.json engines: ^20.19.0 || ^22.13.0 || >=24, which every dependency accepts).
# Build stage: compile TypeScript with the dev dependencies.
FROM node:24-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
RUN npx tsc -p tsconfig.json

# Runtime stage: production dependencies and the compiled output only; no config baked in.
FROM node:24-alpine AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
RUN mkdir -p /app/config && chown node:node /app/config
USER node
EXPOSE 8080
# Mount your config folder at /app/config (the folder, so live reload sees a replaced file);
# without a config.yaml there, one with fresh tokens is created inside the container (read it
# with: docker exec <c> cat /app/config/config.yaml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1's command (not npm), so SIGTERM reaches the proxy and it drains.
# No V8 flags: --max-semi-space-size=32 trades ~25 MiB of RSS for fewer GCs (bench/README.md);
# add it with -e NODE_OPTIONS=--max-semi-space-size=32 where CPU, not memory, is short.
CMD ["node", "dist/src/server.js"]
