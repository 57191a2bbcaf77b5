# syntax=docker/dockerfile:1
# The controller (Node 22 LTS; the app runs on Node 20 too). README.md, "Run with Docker", says how to run it (and why the security options).
# Build stage: compile TypeScript (needs dev dependencies and a compiler for better-sqlite3).
FROM node:22-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Run stage: the compiled app, production dependencies, git and bubblewrap for the local backend,
# and tini as PID 1: it reaps what the agent and git leave behind (node does not reap orphans).
FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git bubblewrap util-linux ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# HOST: the setup page binds only localhost outside a container; here the port is published instead
# (README: `-p 127.0.0.1:3000:3000` while you register the app). No NODE_ENV=production here: with it
# a missing APP_ID is an error instead of the setup page (pass `-e NODE_ENV=production` once .env exists).
ENV DATA_DIR=/data PORT=3000 HOST=0.0.0.0
# As `npm start`: V8 collects sooner instead of growing the heap (bench/footprint.ts: 500 active
# jobs in ~130 MB instead of ~240 MB). Raise the old-space size for much larger fleets.
ENV NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=160"
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json app.yml ./
# The pinned list itself, where `agent-work doctor` reads it to compare what it finds.
COPY agent-clis/package.json ./agent-clis/package.json
COPY worker ./worker
# What they are, for whoever inspects the image (`agent-work doctor` names this label; a test keeps it
# equal to agent-clis/package.json).
LABEL io.agent-work.agent-clis="@anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 opencode-ai@1.18.33"
# The agent CLIs the presets run, from the one list of versions (agent-clis/: package.json + lock),
# under /usr so the local backend's sandbox sees them (it mounts /usr read-only).
COPY agent-clis/package.json agent-clis/package-lock.json /usr/local/lib/agent-clis/
RUN npm install --no-save --prefix /usr/local/lib/agent-clis --omit=dev --no-audit --no-fund \
 && ln -s /usr/local/lib/agent-clis/node_modules/.bin/claude /usr/local/lib/agent-clis/node_modules/.bin/codex /usr/local/lib/agent-clis/node_modules/.bin/opencode /usr/local/bin/
# /config holds .env, which the setup page writes as the node user (the app folder stays root's):
# /app/.env is a link into it, so the controller and the ops CLI read it from their working directory.
RUN mkdir -p /data /config && chown node:node /data /config && ln -s /config/.env /app/.env
USER node
VOLUME ["/data", "/config"]
EXPOSE 3000
# Healthy when /healthz answers below 500: 200 once the controller runs (a store that does not answer
# is a 500), and Probot's 404 while the setup page waits for someone to register the app.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.status<500?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
