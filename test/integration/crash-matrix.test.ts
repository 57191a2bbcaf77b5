/**
 * The crash matrix: the controller runs as a real process (test/support/crash-controller.ts) and
 * is killed with SIGKILL at one step of a job's life, then started again on the same data folder
 * and the same (fake) GitHub. Whatever the step, the job must still come out right: finished,
 * exactly one pull request, one status comment saying how it ended, one check run per commit,
 * no worker folder or process left, the worker's token revoked (after every mint) and never
 * written anywhere in clear. The second block covers effects outside a job's run (a refusal, a
 * command's reply, a job ended by the ops CLI or the reaper while no controller runs): each
 * appears on GitHub exactly once, counted on the recorded calls.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, it, type ExpectStatic } from "vitest";
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
  readEvents,
  readJobs,
  readLedger,
  readOutbox,
  readRequests,
  removeSite,
  runCliProcess,
  sendComment,
  sendLabel,
  writeSite,
  startControllerProcess,
  waitFor,
  type ControllerSite,
  type LedgerView,
} from "../support/controller-site.js";

/** In the order a job meets them. */
const STEPS: CrashPoint[] = [
  "admitted", // intake wrote `queued` with its 👀 in the outbox; nothing is on GitHub yet
  "eyes-added", // GitHub added the 👀; the outbox row was never marked delivered
  "check-run-created", // GitHub made the queued check run; its id was never recorded
  "comment-created", // GitHub made the status comment; its id was never recorded
  "worker-created", // the worker exists; the job does not know it yet
  "token-mint-answered", // GitHub minted the token; its answer never reached the controller (nobody saw it)
  "token-minted", // the token is minted and kept sealed; the worker has not been given it
  "agent-running", // the worker has the token and the agent is at work
  "pushed", // the worker pushed the branch; its result never reached the controller
  "reporting", // `reporting` is written with the result; no PR yet
  "pr-opened", // GitHub opened the PR; its number was never recorded
  "pr-check-created", // GitHub made the check run on the PR head; its id was never recorded
  "final-status-written", // the comment says it is done; the job is not yet written finished
];

/**
 * The steps at which a worker was running when its controller died: the restarted controller
 * destroys it and runs the job again on a second worker, and both are billed (the first through
 * the time its controller was down). At every other step the job has one worker.
 */
const SECOND_WORKER: ReadonlySet<CrashPoint> = new Set<CrashPoint>(["worker-created", "token-mint-answered", "token-minted", "agent-running", "pushed"]);

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

// One concurrent suite around both blocks, so the second's cases wait on their leases alongside
// the first's instead of after them: most of each case is waiting, not working.
describe.concurrent("the crash matrix", () => {
  describe.concurrent("a controller killed with SIGKILL at a step of a job, then started again", () => {
    it.for(STEPS)(
      "at %s: the job ends with one PR and one final status comment, no worker left, its token revoked and never stored in clear",
      { timeout: 180_000 },
      async (step, { expect }) => {
        // A repository of its own per step (the git server's owner part is free; GitHub's API side is one fake per process).
        const seeded = await git.createRepo(`crash-${step}`, REPO, { "README.md": "# Hello World\n" }, DEFAULT_BRANCH);
        const site = controllerSite({
          workerToken: token,
          cloneUrl: seeded.cloneUrl,
          baseSha: seeded.headSha,
          bareRepo: seeded.dir,
          repoConfigYaml: FAKE_AGENT_CONFIG(),
        });
        sites.push(site);

        const first = await startControllerProcess(site, step);
        expect((await sendLabel(site, first.url, "FAKE_AGENT:edit")).status).toBe(200);
        expect(await exitOf(first, 60_000)).toEqual({ code: null, signal: "SIGKILL" });
        const killedAt = Date.now();

        const second = await startControllerProcess(site);
        const [job] = await waitFor(
          "the job to end and its lease to be released",
          () => {
            const jobs = readJobs(site);
            return jobs.length === 1 && ["succeeded", "failed", "cancelled", "timed_out"].includes(jobs[0]!.state) && jobs[0]!.lease_owner === null && jobs;
          },
          90_000,
        );
        second.child.kill("SIGTERM");
        expect(await exitOf(second, 15_000)).toEqual({ code: 0, signal: null });

        // It finished, with the PR.
        expect(job!.state, job!.message ?? "").toBe("succeeded");
        expect(job!.pr_number).toBe(100);
        const github = githubState(site);
        expect(github.pulls.map((p) => p.head.ref)).toEqual([job!.branch]);
        expect(github.pulls[0]!.head.sha).toBe(await git.branchSha(`crash-${step}`, REPO, job!.branch!));

        // One status comment, edited to its end.
        const comments = github.comments.filter(([, body]) => body.includes(statusMarker(job!.id)));
        expect(comments).toHaveLength(1);
        expect(comments[0]![1]).toContain("### agent-work: done");
        expect(comments[0]![1]).toContain(`**Pull request:** https://github.com/`);

        // One 👀 on the issue (GitHub keeps one per person and content; the fake does the same).
        expect(github.reactions).toEqual([[`issue:1:eyes`, expect.any(Number)]]);
        expect(readOutbox(site).filter((r) => r.state !== "done")).toEqual([]);

        // Every worker the job had is billed, create to delete: one bill per start, the job's figure
        // their sum, and a worker that outlived its controller billed until the recovery destroyed it.
        const ledger = readLedger(site, job!.id);
        expectEveryWorkerBilled(expect, ledger, killedAt);
        expect(job!.attempts).toBeLessThanOrEqual(2);
        if (SECOND_WORKER.has(step)) expect(ledger.starts, "workers the job had").toBe(2);
        if (SECOND_WORKER.has(step))
          expect(ledger.bills[0]!.ended_at, "the first worker billed through its controller's downtime").toBeGreaterThanOrEqual(killedAt);

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
        const allMints = calls.flatMap((c, i) => (c.method === "POST" && c.route.endsWith("/access_tokens") && c.body?.repository_ids ? [i] : []));
        // A mint whose answer died with the process is a token nobody saw: it cannot be revoked (GitHub
        // revokes only a token shown to it), so it is recorded as lost, never handed to a worker.
        const mints = step === "token-mint-answered" ? allMints.slice(1) : allMints;
        const revokes = calls.flatMap((c, i) => (c.method === "DELETE" && c.authorization === `token ${token}` ? [i] : []));
        expect(mints.length).toBeGreaterThanOrEqual(1);
        expect(revokes.length).toBeGreaterThanOrEqual(mints.length);
        expect(Math.max(...revokes)).toBeGreaterThan(Math.max(...mints));
        const lost = readEvents(site, job!.id).filter((e) => e.kind === "worker-token-lost");
        expect(lost.map((e) => e.data.handedToWorker)).toEqual(step === "token-mint-answered" ? [false] : []);
        expect(job!.worker_token_sealed).toBeNull();
        expect(filesContaining(site.dataDir, token)).toEqual([]);
        expect(readFileSync(site.logFile, "utf8")).not.toContain(token);
      },
    );
  });

  function expectEveryWorkerBilled(expect: ExpectStatic, ledger: LedgerView, killedAt: number) {
    expect(ledger.entry?.state).toBe("final");
    expect(ledger.starts).toBeGreaterThanOrEqual(1);
    expect(ledger.bills).toHaveLength(ledger.starts);
    for (const b of ledger.bills) {
      expect(b.ended_at).toBeGreaterThanOrEqual(b.started_at);
      expect(b.billed_seconds).toBeCloseTo((b.ended_at - b.started_at) / 1000, 3);
    }
    expect(ledger.entry!.billed_seconds).toBeCloseTo(
      ledger.bills.reduce((sum, b) => sum + b.billed_seconds, 0),
      3,
    );
    // A first worker the dead controller left running was billed through the time it was down.
    if (ledger.bills.length > 1) expect(ledger.bills[0]!.ended_at).toBeGreaterThanOrEqual(killedAt);
  }

  /** Calls that created a comment whose body matches. */
  const commentPosts = (site: ControllerSite, pattern: RegExp) =>
    githubCalls(site).filter((c) => c.method === "POST" && c.route.endsWith("/issues/:id/comments") && pattern.test(c.body?.body ?? ""));
  const allDelivered = (site: ControllerSite) => {
    const rows = readOutbox(site);
    return rows.length > 0 && rows.every((r) => r.state === "done") && rows;
  };

  async function newSite(name: string, env: Record<string, string> = {}): Promise<ControllerSite> {
    const seeded = await git.createRepo(`crash-${name}`, REPO, { "README.md": "# Hello World\n" }, DEFAULT_BRANCH);
    const site = controllerSite({
      workerToken: token,
      cloneUrl: seeded.cloneUrl,
      baseSha: seeded.headSha,
      bareRepo: seeded.dir,
      repoConfigYaml: FAKE_AGENT_CONFIG(),
      env,
    });
    sites.push(site);
    return site;
  }

  async function stop(run: ControllerSite["runs"][number]) {
    run.child.kill("SIGTERM");
    return exitOf(run, 15_000);
  }

  describe.concurrent("effects outside a job's run, after a SIGKILL (or with no controller at all), appear exactly once", () => {
    it.for(["refused", "refusal-posted"] as CrashPoint[])("at %s: the refusal is posted once", { timeout: 180_000 }, async (point, { expect }) => {
      const site = await newSite(point, { AGENT_WORK_TEST_PERMISSION: "read" });
      const first = await startControllerProcess(site, point);
      expect((await sendLabel(site, first.url, "FAKE_AGENT:edit")).status).toBe(200);
      expect(await exitOf(first, 60_000)).toEqual({ code: null, signal: "SIGKILL" });
      const second = await startControllerProcess(site);
      await waitFor("the refusal to be delivered", () => allDelivered(site), 60_000);
      expect(await stop(second)).toEqual({ code: 0, signal: null });

      expect(readJobs(site).map((j) => j.state)).toEqual(["rejected"]);
      const posts = commentPosts(site, /did not start: @Codertocat has `read` access/);
      expect(posts).toHaveLength(1);
      expect(githubState(site).comments.filter(([, body]) => body.includes("did not start"))).toHaveLength(1);
      expect(githubCalls(site).filter((c) => c.route.endsWith("/access_tokens") && c.body?.repository_ids)).toEqual([]);
    });

    it.for(["answered", "reply-posted"] as CrashPoint[])("at %s: a command's reply is posted once", { timeout: 180_000 }, async (point, { expect }) => {
      const site = await newSite(point);
      const first = await startControllerProcess(site, point);
      expect((await sendComment(site, first.url, "/agent help")).status).toBe(200);
      expect(await exitOf(first, 60_000)).toEqual({ code: null, signal: "SIGKILL" });
      const second = await startControllerProcess(site);
      await waitFor("the reply to be delivered", () => readRequests(site).every((r) => r.state === "done") && allDelivered(site), 60_000);
      expect(await stop(second)).toEqual({ code: 0, signal: null });

      expect(readRequests(site).map((r) => r.outcome)).toEqual(["help"]);
      expect(commentPosts(site, /agent-work commands/)).toHaveLength(1);
      expect(githubState(site).comments.filter(([, body]) => body.includes("agent-work commands"))).toHaveLength(1);
      // The 👀 on the command: GitHub keeps one, however often it was asked for.
      expect(githubState(site).reactions).toHaveLength(1);
    });

    it.for([
      ["agent-work cancel", "cancelled", "cancelled"],
      ["agent-work reap", "timed_out", "timed out"],
    ] as const)(
      "a job ended by `%s` while its controller is dead gets its final status, its token revoked, once the controller is back",
      { timeout: 180_000 },
      async ([command, state, words], { expect }) => {
        const site = await newSite(command.replace(/\W+/g, "-"));
        const first = await startControllerProcess(site, "agent-running");
        expect((await sendLabel(site, first.url, "FAKE_AGENT:edit")).status).toBe(200);
        expect(await exitOf(first, 60_000)).toEqual({ code: null, signal: "SIGKILL" });
        const killedAt = Date.now();
        const [running] = readJobs(site);
        if (command === "agent-work reap") {
          // Past its deadline and the reaper's grace, as if the controller had stayed down for long.
          writeSite(site, "update jobs set deadline_at = ? where id = ?", Date.now() - 600_000, running!.id);
        }
        const cli = await runCliProcess(site, command === "agent-work cancel" ? ["cancel", running!.id] : ["reap"]);
        expect(cli.code, cli.stderr).toBe(0);
        // The CLI made no GitHub call: nothing about the end is on GitHub yet.
        expect(githubState(site).comments.filter(([, body]) => body.includes(`### agent-work: ${words}`))).toEqual([]);

        const second = await startControllerProcess(site);
        await waitFor("the end to be published", () => allDelivered(site) && readOutbox(site).some((r) => r.key === `final-status:${running!.id}`), 60_000);
        expect(await stop(second)).toEqual({ code: 0, signal: null });

        const [job] = readJobs(site);
        expect(job!.state).toBe(state);
        const github = githubState(site);
        const status = github.comments.filter(([, body]) => body.includes(statusMarker(job!.id)));
        expect(status).toHaveLength(1);
        expect(status[0]![1]).toContain(`### agent-work: ${words}`);
        expect(github.checkRuns.filter((c) => c.external_id === job!.id).map((c) => [c.status, c.conclusion])).toEqual([["completed", state]]);
        expect(github.pulls).toEqual([]);
        // Its one worker is billed until the CLI ended the job, through the time its controller was down.
        const ledger = readLedger(site, job!.id);
        expectEveryWorkerBilled(expect, ledger, killedAt);
        expect(ledger.bills[0]!.ended_at).toBeGreaterThanOrEqual(killedAt);
        expect(status[0]![1]).toMatch(/\*\*Cost:\*\* \$0 \(local\) — \d+ s of compute/);
        // The worker is gone and the token it held revoked by the controller that came back.
        expect(readdirSync(path.join(site.dataDir, "workers"))).toEqual([]);
        expect(processesUsing(site.dataDir)).toEqual([]);
        const calls = githubCalls(site);
        const mint = calls.findIndex((c) => c.method === "POST" && c.route.endsWith("/access_tokens") && c.body?.repository_ids);
        const revokes = calls.flatMap((c, i) => (c.method === "DELETE" && c.authorization === `token ${token}` ? [i] : []));
        expect(revokes).toHaveLength(1);
        expect(revokes[0]).toBeGreaterThan(mint);
        expect(job!.worker_token_sealed).toBeNull();
      },
    );
  });
});
