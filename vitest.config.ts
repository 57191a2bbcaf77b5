import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Generous: these tests start real processes (git, bwrap, sshd, agents) and must pass on a loaded machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests start real processes (git, bwrap, sshd later); two cores here, so keep forks modest.
    pool: "forks",
    maxWorkers: 2,
  },
});
