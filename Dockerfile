# syntax=docker/dockerfile:1
# Two images from one build: `--target virtbmc` (the BMC agent) and `--target virtbmc-controller`.

# ---- build: compile TypeScript ----
FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY generated ./generated
RUN npx tsc -p tsconfig.build.json

# ---- production node_modules only ----
FROM node:20-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- common runtime ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist ./dist
# the web page (src/redfish/ui.ts serves it; xterm.js comes from node_modules)
COPY ui ./ui
# numeric uid so runAsNonRoot can verify it
USER 65532:65532

FROM runtime AS virtbmc
EXPOSE 6230/udp 8000/tcp 8443/tcp
ENTRYPOINT ["node", "/app/dist/src/cmd/virtbmc.js"]

FROM runtime AS virtbmc-controller
EXPOSE 8080/tcp 8081/tcp
ENTRYPOINT ["node", "/app/dist/src/cmd/virtbmc-controller.js"]
