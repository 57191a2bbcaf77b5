import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real processes (git, bwrap, sshd later); two cores here, so keep forks modest.
    pool: "forks",
    maxWorkers: 2,
  },
});
