import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { missingHostTools } from "../../src/check-host-tools.js";
import { probeSandbox } from "../../src/probe-sandbox.js";

describe("host tools the local backend needs", () => {
  it("finds git, bubblewrap and util-linux on a machine set up as the README says", () => {
    expect(missingHostTools({ localSandbox: "bwrap" }, true)).toEqual([]);
    expect(missingHostTools({ localSandbox: "bwrap" }, false)).toEqual([]);
  });

  it("names a missing tool with the command that installs it", () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const missing = missingHostTools({ localSandbox: "bwrap" }, true);
      expect(missing).toHaveLength(3);
      expect(missing[1]).toContain("apt-get install -y bubblewrap");
      expect(missing[2]).toMatch(/^prlimit, setpriv, unshare not found \(apt-get install -y util-linux\)/);
      expect(missingHostTools({ localSandbox: "bwrap" }, false)[2]).toMatch(/^prlimit not found/);
      // Root without CAP_SYS_ADMIN (a container) cannot drop the agent to nobody.
      expect(missingHostTools({ localSandbox: "bwrap" }, true, false)).toContainEqual(
        expect.stringMatching(/^the controller runs as root without CAP_SYS_ADMIN/),
      );
      expect(missingHostTools({ localSandbox: "bwrap" }, false, false).join()).not.toMatch(/CAP_SYS_ADMIN/);
      // The explicit opt-out needs git alone.
      expect(missingHostTools({ localSandbox: "none" })).toHaveLength(1);
      // With no local backend (a controller pod driving k8s workers) nothing runs here: nothing is needed.
      expect(missingHostTools({ localSandbox: "bwrap", localBackend: false }, true, false, () => "bwrap cannot work here")).toEqual([]);
    } finally {
      process.env.PATH = path;
    }
  });

  it("builds a real sandbox, as root (dropping to nobody) and as a user, where bubblewrap works", () => {
    expect(probeSandbox(true)).toBeNull();
    expect(probeSandbox(false)).toBeNull();
  });

  it("refuses to start when bubblewrap is installed but cannot make namespaces (Docker's default seccomp profile), and says how to fix it", () => {
    // What bwrap answers under Docker's default profiles: its version, then no sandbox at all.
    const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-fake-bwrap-"));
    writeFileSync(
      path.join(dir, "bwrap"),
      '#!/bin/sh\n[ "$1" = --version ] && { echo "bubblewrap 0.8.0"; exit 0; }\necho "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces." >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const saved = process.env.PATH;
    process.env.PATH = `${dir}:${saved}`;
    try {
      for (const asRoot of [true, false]) {
        const missing = missingHostTools({ localSandbox: "bwrap" }, asRoot, true);
        expect(missing).toHaveLength(1);
        expect(missing[0]).toMatch(
          /^bubblewrap is installed but cannot build the agent's sandbox here \(bwrap said: bwrap: No permissions to creating new namespace/,
        );
        expect(missing[0]).toContain("--security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined");
        expect(missing[0]).toContain("LOCAL_SANDBOX=none");
      }
      // The explicit opt-out does not need a sandbox, so it does not try one.
      expect(missingHostTools({ localSandbox: "none" }, true, true)).toEqual([]);
    } finally {
      process.env.PATH = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
