/**
 * The crash matrix: the controller runs as a real process (test/support/crash-controller.ts) and
 * is killed with SIGKILL at one step of a job's life, then started again on the same data folder
 * and the same (fake) GitHub. Whatever the step, the job must still come out right: finished,
 * exactly one pull request, one status comment saying how it ended, one check run per commit,
 * no worker folder or process left, the worker's token revoked (after every mint) and never
 * written anywhere in clear.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { canaryToken, FAKE_AGENT_CONFIG } from "../support/harness.js";
import { DEFAULT_BRANCH, REPO } from "../support/payloads.js";
import { statusMarker } from "../../src/status/status-marker.js";
import type { CrashPoint } from "../support/crash-controller.js";
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

/** In the order a job meets them. */
const STEPS: CrashPoint[] = [
  "admitted", // intake wrote `queued`; the 👀, check run and comment are next
  "check-run-created", // GitHub made the queued check run; its id was never recorded
  "comment-created", // GitHub made the status comment; its id was never recorded
  "worker-created", // the worker exists; the job does not know it yet
  "token-minted", // the token is minted and kept sealed; the worker has not been given it
  "agent-running", // the worker has the token and the agent is at work
  "pushed", // the worker pushed the branch; its result never reached the controller
  "reporting", // `reporting` is written with the result; no PR yet
  "pr-opened", // GitHub opened the PR; its number was never recorded
  "pr-check-created", // GitHub made the check run on the PR head; its id was never recorded
  "final-status-written", // the comment says it is done; the job is not yet written finished
];

const token = canaryToken("classic");
let git: GitServer;
const sites: ControllerSite[] = [];

beforeAll(async () => {
  git = await startGitServer({ acceptToken: token });
});
afterAll(async () => {
  for (const site of sites) removeSite(site);
  await git?.close();
});

describe.concurrent("a controller killed with SIGKILL at a step of a job, then started again", () => {
  it.for(STEPS)("at %s: the job ends with one PR and one final status comment, no worker left, its token revoked and never stored in clear", { timeout: 60_000 }, async (step, { expect }) => {
    // A repository of its own per step (the git server's owner part is free; GitHub's API side is one fake per process).
    const seeded = await git.createRepo(`crash-${step}`, REPO, { "README.md": "# Hello World\n" }, DEFAULT_BRANCH);
    const site = controllerSite({ workerToken: token, cloneUrl: seeded.cloneUrl, baseSha: seeded.headSha, bareRepo: seeded.dir, repoConfigYaml: FAKE_AGENT_CONFIG() });
    sites.push(site);

    const first = await startControllerProcess(site, step);
    expect((await sendLabel(site, first.url, "FAKE_AGENT:edit")).status).toBe(200);
    expect(await exitOf(first, 30_000)).toEqual({ code: null, signal: "SIGKILL" });

    const second = await startControllerProcess(site);
    const [job] = await waitFor(
      "the job to end and its lease to be released",
      () => {
        const jobs = readJobs(site);
        return jobs.length === 1 && ["succeeded", "failed", "cancelled", "timed_out"].includes(jobs[0]!.state) && jobs[0]!.lease_owner === null && jobs;
      },
      40_000,
    );
    second.child.kill("SIGTERM");
    expect(await exitOf(second, 15_000)).toEqual({ code: 0, signal: null });

    // It finished, with the PR.
    expect(job!.state, job!.message ?? "").toBe("succeeded");
    expect(job!.pr_number).toBe(100);
    expect(job!.attempts).toBeLessThanOrEqual(2);
    const github = githubState(site);
    expect(github.pulls.map((p) => p.head.ref)).toEqual([job!.branch]);
    expect(github.pulls[0]!.head.sha).toBe(await git.branchSha(`crash-${step}`, REPO, job!.branch!));

    // One status comment, edited to its end.
    const comments = github.comments.filter(([, body]) => body.includes(statusMarker(job!.id)));
    expect(comments).toHaveLength(1);
    expect(comments[0]![1]).toContain("### agent-work: done");
    expect(comments[0]![1]).toContain(`**Pull request:** https://github.com/`);

    // One check run per commit: the first one handed on to the PR, the PR's one successful.
    const checks = github.checkRuns.filter((c) => c.external_id === job!.id);
    expect(checks.map((c) => [c.head_sha === seeded.headSha ? "base" : "pr", c.status, c.conclusion]).sort()).toEqual([
      ["base", "completed", "neutral"],
      ["pr", "completed", "success"],
    ]);

    // No worker left: no folder, no process.
    expect(readdirSync(path.join(site.dataDir, "workers"))).toEqual([]);
    expect(processesUsing(site.dataDir)).toEqual([]);

    // The token was revoked after its last mint (by whichever controller held it), and is kept nowhere.
    const calls = githubCalls(site);
    const mints = calls.flatMap((c, i) => (c.method === "POST" && c.route.endsWith("/access_tokens") && c.body?.repository_ids ? [i] : []));
    const revokes = calls.flatMap((c, i) => (c.method === "DELETE" && c.authorization === `token ${token}` ? [i] : []));
    expect(mints.length).toBeGreaterThanOrEqual(1);
    expect(revokes.length).toBeGreaterThanOrEqual(mints.length);
    expect(Math.max(...revokes)).toBeGreaterThan(Math.max(...mints));
    expect(job!.worker_token_sealed).toBeNull();
    expect(filesContaining(site.dataDir, token)).toEqual([]);
    expect(readFileSync(site.logFile, "utf8")).not.toContain(token);
  });
});
