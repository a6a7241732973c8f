# syntax=docker/dockerfile:1
# relay: build with the dev toolchain, run on a small Node 20 image as a non-root user.
# Configuration comes from environment variables only (every option has one; see .env.example).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Only the compiler is needed here: no install scripts, no optional (test-only) binaries.
RUN npm ci --ignore-scripts --omit=optional
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY sql ./sql
USER node
EXPOSE 9464
ENTRYPOINT ["node", "bin/relay.js"]
CMD ["cdc-relay"]
