import { describe, expect, it } from "vitest";
import { missingHostTools } from "../../src/check-host-tools.js";

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
      expect(missingHostTools({ localSandbox: "bwrap" }, true, false)).toContainEqual(expect.stringMatching(/^the controller runs as root without CAP_SYS_ADMIN/));
      expect(missingHostTools({ localSandbox: "bwrap" }, false, false).join()).not.toMatch(/CAP_SYS_ADMIN/);
      // The explicit opt-out needs git alone.
      expect(missingHostTools({ localSandbox: "none" })).toHaveLength(1);
    } finally {
      process.env.PATH = path;
    }
  });
});
