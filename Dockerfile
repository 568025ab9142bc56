# One image for every role; docker-compose.yml picks the role with the command: node dist/<role>/main.js.
# Node is pinned to the exact version the tests run on (docs/deploying.md, "Versions").
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# Build: every dependency, TypeScript compiled to dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies only (no TypeScript, no tsx, no embedded Postgres), the compiled code
# and the migrations, run as the unprivileged node user.
FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY migrations ./migrations
COPY --from=build /app/dist ./dist
USER node
# GET /health on the role's ops port; OPS_PORT must name it (9100 gateway, 9101 relay, 9102 projector,
# 9103 fan-out, 9104 notifier: docker-compose.yml sets it per service).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["node", "dist/healthcheck/main.js"]
CMD ["node", "dist/gateway/main.js"]
