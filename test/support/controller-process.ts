/**
 * RECONSTRUCTED: this file (untracked work of the PostgreSQL helper) was overwritten by mistake by
 * the crash-safety helper, and rebuilt from tsx's transform cache (code and line positions are the
 * original's; the comments and type annotations are not). Please check it against your copy.
 *
 * A controller process for test/integration/two-controllers-postgres.test.ts: the configuration
 * from the environment (DATABASE_URL required), GitHub faked in-process, and a fake `local`
 * backend that records each run in the `fake_runs` table, tagged with AW_RUNNER, so the test can
 * tell which replica ran which job. Prints `READY <url>` when it serves webhooks; SIGTERM closes it.
 *
 *
 */
import pg from "pg";
import nock from "nock";
import { loadControllerConfig } from "../../src/config/env.js";
import { startController } from "../../src/controller.js";
import type { Backend, Worker } from "../../src/backends/types.js";
import { fakeGitHub } from "./fake-github.js";
import { INSTALLATION_ID, OWNER, REPO } from "./payloads.js";
import { FAKE_AGENT_CONFIG, canaryToken } from "./harness.js";

const runner = process.env.AW_RUNNER ?? `pid-${process.pid}`;
const loaded = loadControllerConfig(process.env);
if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
if (!loaded.config.databaseUrl) throw new Error("controller-process needs DATABASE_URL: the fake backend records its runs there");

nock.disableNetConnect();
nock.enableNetConnect(/127\.0\.0\.1|localhost/);
fakeGitHub({
  owner: OWNER,
  repo: REPO,
  installationId: INSTALLATION_ID,
  workerToken: canaryToken("classic"),
  repoConfigYaml: FAKE_AGENT_CONFIG(),
  baseSha: "a".repeat(40),
});

const runs = new pg.Pool({ connectionString: loaded.config.databaseUrl, max: 2 });
const workers = new Map<string, Worker>();
const fake: Backend = {
  name: "local",
  capacity: async () => ({ max: 1000, active: workers.size }),
  create: async (job) => {
    const worker = workers.get(job.jobId) ?? { id: `fake-${job.jobId}`, backend: "local", jobId: job.jobId, createdAt: Date.now(), meta: { runner } };
    workers.set(job.jobId, worker);
    return worker;
  },
  run: async (worker) => {
    await runs.query("insert into fake_runs (job_id, runner, at) values ($1, $2, $3)", [worker.jobId, runner, Date.now()]);
    return { outcome: "no_changes", message: "nothing to change", computeSeconds: 0.01, aborted: false };
  },
  destroy: async (worker) => void workers.delete(worker.jobId),
  list: async () => [...workers.values()],
};

const controller = await startController({
  config: loaded.config,
  logDestination: process.stderr,
  extraBackends: new Map([["local", fake]]),
  // (reconstructed: a comment stood here)
  octokitDefaults: { retry: { enabled: false }, throttle: { enabled: false } },
});
process.stdout.write(`READY ${controller.url}\n`);

process.once("SIGTERM", () => {
  void controller
    .close()
    .then(() => runs.end())
    .then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`close failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
});
