// Runs before `npm test`: names every system tool the tests need that this machine lacks, with the
// command that installs it, instead of letting tests fail deep inside a spawn with ENOENT.
import { spawnSync } from "node:child_process";

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
