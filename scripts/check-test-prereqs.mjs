// Runs before `npm test`: names every system tool the tests need that this machine lacks, with the
// command that installs it, instead of letting tests fail deep inside a spawn with ENOENT.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const needs = [
  { bin: "git", args: ["--version"], pkg: "git" },
  { bin: "git", args: ["http-backend", "--help"], pkg: "git", okStatus: [0, 1, 129], what: "git http-backend" },
  { bin: "bwrap", args: ["--version"], pkg: "bubblewrap" },
  { bin: "/usr/sbin/sshd", args: ["-V"], pkg: "openssh-server", what: "sshd" },
  { bin: "ansible-playbook", args: ["--version"], pkg: "ansible-core" },
  { bin: "chromium", args: ["--version"], pkg: "chromium" },
];
const missing = [];
for (const n of needs) {
  const r = spawnSync(n.bin, n.args, { stdio: "ignore" });
  if (r.error) missing.push(n);
}
if (missing.length > 0) {
  const pkgs = [...new Set(missing.map((m) => m.pkg))].join(" ");
  console.error(
    `The tests need ${missing.map((m) => m.what ?? m.bin).join(", ")}, which this machine lacks.\n` +
      `Install with: apt-get update && apt-get install -y --no-install-recommends ${pkgs}   (.ci/run does this on CI)`,
  );
  process.exit(1);
}

// The real agent CLIs the preset tests run (test/integration/real-agents.test.ts), at the versions
// pinned in agent-clis/ — installed here, not by the app's `npm ci`: they are about 1.2 GB of
// native binaries that only these tests and the worker images need. AGENT_CLIS_DIR points the tests
// at an install elsewhere.

const clis = fileURLToPath(new URL("../agent-clis/", import.meta.url));
const pinned = JSON.parse(readFileSync(path.join(clis, "package.json"), "utf8")).dependencies;
const modules = process.env.AGENT_CLIS_DIR ?? path.join(clis, "node_modules");
const stale = Object.entries(pinned).filter(([pkg, version]) => {
  const file = path.join(modules, pkg, "package.json");
  return !existsSync(file) || JSON.parse(readFileSync(file, "utf8")).version !== version;
});
if (stale.length > 0) {
  if (process.env.AGENT_CLIS_DIR) {
    console.error(`AGENT_CLIS_DIR=${modules} lacks ${stale.map(([p, v]) => `${p}@${v}`).join(", ")}; unset it or install them there`);
    process.exit(1);
  }
  console.error(`Installing the agent CLIs the tests run (${stale.map(([p, v]) => `${p}@${v}`).join(", ")}): npm ci --prefix agent-clis`);
  const r = spawnSync("npm", ["ci", "--prefix", clis, "--no-audit", "--no-fund"], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
