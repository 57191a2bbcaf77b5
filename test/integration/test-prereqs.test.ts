/**
 * `npm test` on a machine that lacks a system tool the tests need (scripts/check-test-prereqs.mjs):
 * it installs it with apt-get when it may (root, or sudo without a password) and says what it
 * installs; otherwise it prints the one line to run and stops. apt-get and sudo are stand-ins on a
 * PATH of their own here (this test must not install anything); the script itself is the real one,
 * run as root and, through setpriv, as nobody.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";

const SCRIPT = fileURLToPath(new URL("../../scripts/check-test-prereqs.mjs", import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A PATH with every tool the tests need except ansible-playbook, and an apt-get that "installs" it. */
function machineWithoutAnsible(options: { sudo?: "passwordless" | "asks" } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-prereqs-"));
  dirs.push(dir);
  chmodSync(dir, 0o777);
  const bin = path.join(dir, "bin");
  mkdirSync(bin);
  chmodSync(bin, 0o777);
  for (const tool of ["git", "bwrap", "chromium", "strace"]) symlinkSync(`/usr/bin/${tool}`, path.join(bin, tool));
  const log = path.join(dir, "apt.log");
  const script = (name: string, body: string) => writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  // kubectl is checked, never installed (Debian's is too old): this machine has a recent one.
  script("kubectl", "echo 'Client Version: v1.32.4'\necho 'Kustomize Version: v5.5.0'");
  script(
    "apt-get",
    `[ "$1" = --version ] && exit 0\necho "$(/usr/bin/id -u) $*" >> ${log}\n` +
      `case "$*" in *install*ansible-core*) printf '#!/bin/sh\\necho ansible-playbook 2.14\\n' > ${bin}/ansible-playbook; /bin/chmod 755 ${bin}/ansible-playbook;; esac`,
  );
  // The agent CLIs (agent-clis/, 1.2 GB) are installed with npm after the system packages: not here,
  // whether or not this checkout has them yet.
  script("npm", "exit 0");
  if (options.sudo === "passwordless") script("sudo", '[ "$1" = "-n" ] && shift\nPATH="$PATH:/usr/bin:/bin" exec "$@"');
  if (options.sudo === "asks") script("sudo", "echo 'sudo: a password is required' >&2\nexit 1");
  return {
    bin,
    aptCalls: () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []),
    run: (asNobody = false) =>
      execa(
        asNobody ? "/usr/bin/setpriv" : process.execPath,
        [...(asNobody ? ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath] : []), SCRIPT],
        {
          env: { PATH: bin, HOME: dir },
          extendEnv: false,
          reject: false,
        },
      ),
  };
}

describe("npm test's system prerequisites", () => {
  it("as root, installs what is missing with apt-get and says what it installs", async () => {
    const m = machineWithoutAnsible();
    const r = await m.run();
    expect(r.stderr).toContain("installing ansible-core with apt-get install -y -qq --no-install-recommends");
    expect(r.stderr).toContain("ansible-playbook (the worker provisioning playbook)");
    expect(m.aptCalls()).toEqual(["0 update -qq", "0 install -y -qq --no-install-recommends ansible-core"]);
    expect(r.exitCode).toBe(0);
    // The next run finds everything and installs nothing.
    const again = await m.run();
    expect(again.exitCode).toBe(0);
    expect(m.aptCalls()).toHaveLength(2);
  });

  it("as a user with sudo that needs no password, installs through sudo", async () => {
    const m = machineWithoutAnsible({ sudo: "passwordless" });
    const r = await m.run(true);
    expect(r.stderr).toContain("installing ansible-core with sudo -n apt-get install");
    expect(m.aptCalls()).toEqual(["65534 update -qq", "65534 install -y -qq --no-install-recommends ansible-core"]);
    expect(r.exitCode).toBe(0);
  });

  it("as a user who cannot install, prints the one line to run, installs nothing, and stops", async () => {
    const m = machineWithoutAnsible({ sudo: "asks" });
    const r = await m.run(true);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("\n  sudo apt-get update && sudo apt-get install -y --no-install-recommends ansible-core\n");
    expect(m.aptCalls()).toEqual([]);
  });
});
