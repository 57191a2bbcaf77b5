#!/usr/bin/env python3
"""Prints the GCE image labels for the agent CLIs the worker role installs (agent-clis/package.json):
agent-cli-<preset>=<major>_<minor>_<patch>, comma-separated, for `gcloud compute images create
--labels`. Label values allow no dots. `agent-work doctor` reads them back (src/agents/agent-cli-versions.ts)."""
import json
import re
import sys

PRESETS = {"@anthropic-ai/claude-code": "claude-code", "@openai/codex": "codex", "opencode-ai": "opencode"}

deps = json.load(open(sys.argv[1]))["dependencies"]
labels = []
for pkg, preset in PRESETS.items():
    version = deps.get(pkg, "")
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        sys.exit(f"{pkg}: {version!r} in {sys.argv[1]} is not an exact version")
    labels.append(f"agent-cli-{preset}={version.replace('.', '_')}")
print(",".join(labels))
