import { describe, expect, it } from "vitest";
import { missingHostTools } from "../../src/check-host-tools.js";

describe("host tools the local backend needs", () => {
  it("finds git and bubblewrap on a machine set up as the README says", () => {
    expect(missingHostTools({ localSandbox: "bwrap" })).toEqual([]);
  });

  it("names a missing tool with the command that installs it", () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const missing = missingHostTools({ localSandbox: "bwrap" });
      expect(missing).toHaveLength(2);
      expect(missing[1]).toContain("apt-get install -y bubblewrap");
      expect(missingHostTools({ localSandbox: "none" })).toHaveLength(1);
    } finally {
      process.env.PATH = path;
    }
  });
});
