import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Generous: these tests start real processes (git, bwrap, sshd, agents) and must pass on a loaded machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests start real processes (git, bwrap, sshd, ansible, agents) and spend much of their time
    // waiting on them: on two cores, two files at a time left a core idle for long stretches (the
    // suite used ~1.5 cores on average). Three keeps both busy without piling up timeouts.
    pool: "forks",
    maxWorkers: 3,
  },
});
