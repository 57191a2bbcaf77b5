/**
 * SIGTERM to a real controller process (test/support/crash-controller.ts, the same signal
 * handling as src/main.ts): it stops claiming, hands a running job back to the queue (worker
 * destroyed, token revoked, lease released), writes out its logs and exits 0; the next start takes
 * the job at once, without waiting for a lease to run out, and finishes it. No assertion here is on
 * how long anything took (this runs on loaded machines): "at once" is shown by effect — the job is
 * handed back with no lease, so nothing waits for the 300 s lease — and the timeouts below only keep
 * a hung process from hanging the suite (the controller's own overrun bound is 30 s).
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { canaryToken, FAKE_AGENT_CONFIG } from "../support/harness.js";
import { DEFAULT_BRANCH, REPO } from "../support/payloads.js";
import { slowAgent } from "../support/slow-agent.js";
import { statusMarker } from "../../src/status/status-marker.js";
import {
  controllerSite,
  exitOf,
  filesContaining,
  githubCalls,
  githubState,
  processesUsing,
  readJobs,
  removeSite,
  sendLabel,
  startControllerProcess,
  waitFor,
  type ControllerSite,
} from "../support/controller-site.js";

const token = canaryToken("jwt");
let git: GitServer;
const sites: ControllerSite[] = [];

beforeAll(async () => {
  git = await startGitServer({ acceptToken: token });
});
afterAll(async () => {
  for (const site of sites) removeSite(site);
  await git?.close();
});

describe("SIGTERM", () => {
  it(
    "hands a running job back to the queue, leaves nothing running, exits 0, and the next start finishes the job without waiting for its lease",
    { timeout: 180_000 },
    async () => {
      const seeded = await git.createRepo("sigterm", REPO, { "README.md": "# Hello World\n" }, DEFAULT_BRANCH);
      // At work until the first controller is gone; the run after it finishes at once.
      const agent = slowAgent();
      // A lease far longer than the test: only a lease handed back lets the next start take the job.
      const site = controllerSite({
        workerToken: token,
        cloneUrl: seeded.cloneUrl,
        baseSha: seeded.headSha,
        bareRepo: seeded.dir,
        repoConfigYaml: FAKE_AGENT_CONFIG(),
        env: { LEASE_SECONDS: "300", ...agent.env },
      });
      sites.push(site);

      const first = await startControllerProcess(site);
      await sendLabel(site, first.url, agent.body);
      const [running] = await waitFor(
        "the agent to be at work",
        () => {
          const jobs = readJobs(site);
          return jobs[0]?.state === "running" && /"name":"agent","status":"running"/.test(jobs[0].steps_json) && jobs;
        },
        60_000,
      );
      expect(readdirSync(path.join(site.dataDir, "workers"))).toEqual([running!.id]);

      const signalled = Date.now();
      first.child.kill("SIGTERM");
      // Not the overrun exit (1, after the grace and 10 s more): a clean stop that did not wait for the agent.
      expect(await exitOf(first, 45_000)).toEqual({ code: 0, signal: null });
      const stopSeconds = (Date.now() - signalled) / 1000;

      // Recoverable and clean: back in the queue with no lease and no attempt spent, no worker, token revoked.
      const [handed] = readJobs(site);
      expect(handed).toMatchObject({ state: "queued", lease_owner: null, attempts: 0, worker_json: null, worker_token_sealed: null });
      expect(readdirSync(path.join(site.dataDir, "workers"))).toEqual([]);
      expect(processesUsing(site.dataDir)).toEqual([]);
      const callsAfterStop = githubCalls(site);
      const lastMint = callsAfterStop.findLastIndex((c) => c.method === "POST" && c.route.endsWith("/access_tokens") && c.body?.repository_ids);
      const lastRevoke = callsAfterStop.findLastIndex((c) => c.method === "DELETE" && c.authorization === `token ${token}`);
      expect(lastRevoke).toBeGreaterThan(lastMint);
      const log = readFileSync(site.logFile, "utf8");
      expect(log).toContain("job handed back to the queue");
      expect(log).toContain('"msg":"stopped"');
      expect(filesContaining(site.dataDir, token)).toEqual([]);
      agent.finish();

      // The next start claims it although the lease it had was 300 s (handed back above: no lease
      // left to wait for), and finishes it.
      const second = await startControllerProcess(site);
      const [claimed] = await waitFor(
        "the job to be claimed again",
        () => {
          const jobs = readJobs(site);
          return jobs[0]?.state !== "queued" && jobs;
        },
        60_000,
      );
      expect(claimed!.state).not.toBe("queued");
      const [done] = await waitFor(
        "the job to finish",
        () => {
          const jobs = readJobs(site);
          return jobs[0]?.state === "succeeded" && jobs[0].lease_owner === null && jobs;
        },
        60_000,
      );
      second.child.kill("SIGTERM");
      expect(await exitOf(second, 45_000)).toEqual({ code: 0, signal: null });

      expect(done!.pr_number).toBe(100);
      const github = githubState(site);
      expect(github.pulls).toHaveLength(1);
      const comments = github.comments.filter(([, body]) => body.includes(statusMarker(done!.id)));
      expect(comments).toHaveLength(1);
      expect(comments[0]![1]).toContain("### agent-work: done");
      expect(readFileSync(site.logFile, "utf8")).not.toContain(token);
      console.log(`SIGTERM with an agent at work: exited 0 after ${stopSeconds.toFixed(1)} s`);
    },
  );

  it("exits 0 when nothing is running, with nothing to hand back", { timeout: 90_000 }, async () => {
    const seeded = await git.createRepo("sigterm-idle", REPO, { "README.md": "# Hello World\n" }, DEFAULT_BRANCH);
    const site = controllerSite({
      workerToken: token,
      cloneUrl: seeded.cloneUrl,
      baseSha: seeded.headSha,
      bareRepo: seeded.dir,
      repoConfigYaml: FAKE_AGENT_CONFIG(),
    });
    sites.push(site);
    const run = await startControllerProcess(site);
    run.child.kill("SIGTERM");
    expect(await exitOf(run, 45_000)).toEqual({ code: 0, signal: null });
    const log = readFileSync(site.logFile, "utf8");
    expect(log).toMatch(/"handedBack":\[\],"unfinished":\[\],"msg":"stopped"/);
    expect(log).not.toContain("job handed back to the queue");
  });
});
