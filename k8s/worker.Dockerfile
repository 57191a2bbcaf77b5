# An example worker image for the k8s backend (K8S_IMAGE). Build it from the repository root:
#   docker build -f k8s/worker.Dockerfile -t ghcr.io/acme/agent-work-worker:1.0 .
# What the backend needs in it: node 20+ on PATH (22 LTS here), git, CA certificates, the worker script's folder
# at /app/worker (agent-work-worker.mjs and lib/) readable by K8S_RUN_AS_USER (1000 here, the image's `node`
# user), bubblewrap for K8S_AGENT_SANDBOX=bwrap, util-linux (prlimit), and your agent's CLI.
FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates bubblewrap util-linux \
 && rm -rf /var/lib/apt/lists/*
# What they are, for whoever inspects the image (`agent-work doctor` names this label; a test keeps it
# equal to agent-clis/package.json).
LABEL io.agent-work.agent-clis="@anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 opencode-ai@1.18.33"
# The agent CLIs the presets run, from the one list of versions (agent-clis/: package.json + lock).
COPY agent-clis/package.json agent-clis/package-lock.json /usr/local/lib/agent-clis/
RUN npm install --no-save --prefix /usr/local/lib/agent-clis --omit=dev --no-audit --no-fund \
 && ln -s /usr/local/lib/agent-clis/node_modules/.bin/claude /usr/local/lib/agent-clis/node_modules/.bin/codex /usr/local/lib/agent-clis/node_modules/.bin/opencode /usr/local/bin/
COPY worker/ /app/worker/
USER 1000:1000
WORKDIR /work
