import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../support/harness.js";
import { slowAgent, type SlowAgent } from "../support/slow-agent.js";
import { OWNER, REPO } from "../support/payloads.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const BRANCH = "agent/1-spelling-error-in-the-readme-file";
const GIT_ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0" };

function git(args: string[], cwd?: string): string {
  return execFileSync("git", args, { cwd, env: GIT_ENV, encoding: "utf8" }).trim();
}

/** The commits of a branch on the real git server, newest first. */
function history(harness: Harness, branch: string): string[] {
  return git(["--git-dir", harness.seeded.dir, "log", "--format=%H %s", `refs/heads/${branch}`]).split("\n");
}

/** A person with write access pushes a commit to `branch` on the git server (straight into the bare repository). */
function pushAsSomeoneElse(harness: Harness, branch: string, edit: (dir: string) => void, message: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "agent-work-someone-"));
  try {
    git(["clone", "--quiet", "--branch", branch, harness.seeded.dir, dir]);
    edit(dir);
    git(["add", "-A"], dir);
    git(["-c", "user.name=someone", "-c", "user.email=someone@example.com", "commit", "--quiet", "-m", message], dir);
    git(["push", "--quiet", "origin", `HEAD:refs/heads/${branch}`], dir);
    return git(["rev-parse", "HEAD"], dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("a second run on an issue whose branch exists", () => {
  it("labelling the issue again continues its branch and updates the same pull request", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    const first = (await h.controller.store.list())[0]!;
    expect(first.state).toBe("succeeded");
    const firstHead = await h.git.branchSha(OWNER, REPO, BRANCH);

    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    const [second] = await h.controller.store.list();
    expect(second!.id).not.toBe(first.id);
    expect(second!.message ?? "").not.toContain("rejected");
    expect(second!.state).toBe("succeeded");
    expect(second!.branch).toBe(BRANCH);

    // One commit on top of the first, not a push over it: the first run's work is still there.
    const commits = history(h, BRANCH);
    expect(commits).toHaveLength(3);
    expect(git(["--git-dir", h.seeded.dir, "rev-parse", `refs/heads/${BRANCH}~1`])).toBe(firstHead);
    expect((await h.git.readFile(OWNER, REPO, BRANCH, "AGENT_WAS_HERE.md"))!.trim().split("\n")).toHaveLength(2);

    // The same pull request: GitHub's 422 for a second PR on the branch is answered by adopting the open one.
    expect(second!.prNumber).toBe(first.prNumber);
    expect(h.github.pulls).toHaveLength(1);
    const lastEdit = h.github
      .callsTo("PATCH", "/issues/comments/:id")
      .filter((c) => c.path.endsWith(`/${second!.commentId}`))
      .at(-1)!.body.body as string;
    expect(lastEdit).toContain(`pull request #${first.prNumber}`);
  });

  it("/agent retry after a job that pushed lands on the same branch and pull request", async () => {
    h = await startHarness();
    // The agent edits and then fails: its partial work is pushed, and the job fails.
    await h.deliverLabel({ body: "FAKE_AGENT:fail" });
    await h.settle();
    const first = (await h.controller.store.list())[0]!;
    expect(first.state).toBe("failed");
    const firstHead = await h.git.branchSha(OWNER, REPO, BRANCH);
    expect(firstHead).toMatch(/^[0-9a-f]{40}$/);

    await h.deliverComment("/agent retry", { sender: "Codertocat" });
    await h.settle();
    const [retried] = await h.controller.store.list();
    expect(retried!.retryOf).toBe(first.id);
    // It fails again (same inputs, same failing agent), but not with a rejected push: it pushed on top.
    expect(retried!.message ?? "").not.toMatch(/rejected|push failed/i);
    expect(git(["--git-dir", h.seeded.dir, "rev-parse", `refs/heads/${BRANCH}~1`])).toBe(firstHead);
  });

  it("a branch moved by someone else while the agent ran: the push is retried once on top of it", async () => {
    const agent = slowAgent();
    h = await startHarness({ env: agent.env });
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    const first = (await h.controller.store.list())[0]!;

    await h.deliverLabel({ body: agent.body });
    const settled = h.settle(40);
    await waitFor(
      async () => (await h!.controller.store.list())[0]!.steps.some((s) => s.name === "agent" && s.status === "running"),
      "the second agent to run",
    );
    const theirs = pushAsSomeoneElse(h, BRANCH, (dir) => writeFileSync(path.join(dir, "NOTES.md"), "a reviewer's note\n"), "a reviewer's fix");
    agent.finish();
    await settled;

    const [second] = await h.controller.store.list();
    expect(second!.state).toBe("succeeded");
    expect(second!.prNumber).toBe(first.prNumber);
    // The agent's commit sits on top of the reviewer's, which is kept.
    expect(git(["--git-dir", h.seeded.dir, "rev-parse", `refs/heads/${BRANCH}~1`])).toBe(theirs);
    expect(await h.git.readFile(OWNER, REPO, BRANCH, "NOTES.md")).toBe("a reviewer's note\n");
    expect((await h.git.readFile(OWNER, REPO, BRANCH, "AGENT_WAS_HERE.md"))!.trim().split("\n")).toHaveLength(2);
    const log = (await h.controller.logs.read(second!.id)).map((l) => l.line).join("\n");
    expect(log).toContain("moved while the agent worked");
  });

  it("a branch moved in a way that conflicts with the agent's change ends the job with that reason", async () => {
    const agent = slowAgent();
    h = await startHarness({ env: agent.env });
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();

    await h.deliverLabel({ body: agent.body });
    const settled = h.settle(40);
    await waitFor(
      async () => (await h!.controller.store.list())[0]!.steps.some((s) => s.name === "agent" && s.status === "running"),
      "the second agent to run",
    );
    const theirs = pushAsSomeoneElse(h, BRANCH, (dir) => appendFileSync(path.join(dir, "AGENT_WAS_HERE.md"), "someone else's line\n"), "a conflicting fix");
    agent.finish();
    await settled;

    const [second] = await h.controller.store.list();
    expect(second!.state).toBe("failed");
    expect(second!.message).toContain(`the branch ${BRANCH} moved while the agent worked`);
    expect(second!.message).toContain("AGENT_WAS_HERE.md");
    // Nothing was pushed over the other person's work.
    expect(await h.git.branchSha(OWNER, REPO, BRANCH)).toBe(theirs);
  });
});

describe("a request while a job is active", () => {
  /** Starts a slow job on issue 1 (its agent runs until `agent.finish()`) and returns once its agent runs. */
  async function busy(harness: Harness, agent: SlowAgent) {
    await harness.deliverLabel({ body: agent.body });
    await harness.controller.scheduler.tick();
    await harness.controller.scheduler.drain();
    void harness.controller.scheduler.tick();
    await waitFor(
      async () => (await harness.controller.store.list())[0]!.steps.some((s) => s.name === "agent" && s.status === "running"),
      "the first agent to run",
    );
    return (await harness.controller.store.list())[0]!;
  }
  const bodies = (harness: Harness) => harness.github.callsTo("POST", "/issues/:id/comments").map((c) => c.body.body as string);

  it("waits for it, the newest request wins the one waiting slot, and runs after it on the same branch", async () => {
    const agent = slowAgent();
    h = await startHarness({ env: agent.env });
    const first = await busy(h, agent);

    await h.deliverComment("/agent run FAKE_AGENT:edit the first follow-up", { sender: "Codertocat" });
    void h.controller.scheduler.tick();
    await waitFor(async () => (await h!.controller.store.list()).some((j) => j.options.waitingFor === first.id), "the follow-up to wait");
    const older = (await h.controller.store.list()).find((j) => j.options.waitingFor)!;
    await h.deliverComment("/agent run FAKE_AGENT:edit the second follow-up", { sender: "Codertocat" });
    void h.controller.scheduler.tick();
    await waitFor(async () => (await h!.controller.store.get(older.id))!.state === "rejected", "the older follow-up to give way");
    agent.finish();
    await h.settle(40);

    const jobs = await h.controller.store.list();
    expect(jobs).toHaveLength(3);
    const newer = jobs.find((j) => j.instructions === "FAKE_AGENT:edit the second follow-up")!;
    expect((await h.controller.store.get(first.id))!.state).toBe("succeeded");
    expect((await h.controller.store.get(older.id))!).toMatchObject({ state: "rejected", message: `superseded by job ${newer.id}, a newer request` });
    expect(newer).toMatchObject({ state: "succeeded", branch: BRANCH, prNumber: 100 });
    expect(newer.options.waitingFor).toBeUndefined();

    // Nobody was told "already running": each follow-up was told it waits, the newer that it took the place.
    const said = bodies(h);
    expect(said.some((b) => b.includes("already running"))).toBe(false);
    expect(said.filter((b) => b.includes("This request waits as job"))).toHaveLength(2);
    expect(said.find((b) => b.includes(`waits as job \`${newer.id}\``))).toContain(`it takes the place of job \`${older.id}\`, which waited before it`);
    expect(said.find((b) => b.includes(`waits as job \`${newer.id}\``))).toContain(`busy on this issue with job \`${first.id}\``);

    // The follow-up ran after the first job, on top of its commit, into the same pull request.
    expect(history(h, BRANCH)).toHaveLength(3);
    expect(h.github.pulls).toHaveLength(1);
    expect(h.github.callsTo("POST", "/access_tokens").filter((c) => c.body && "repository_ids" in c.body)).toHaveLength(2);
  });

  it("/agent retry while the job runs waits for it like any other request, instead of being turned away", async () => {
    const agent = slowAgent();
    h = await startHarness({ env: agent.env });
    const first = await busy(h, agent);
    await h.deliverComment("/agent retry", { sender: "Codertocat" });
    // One pass answers the request (a new job), the next takes that job in.
    await waitFor(async () => {
      void h!.controller.scheduler.tick();
      return (await h!.controller.store.list()).some((j) => j.options.waitingFor === first.id);
    }, "the retry to wait");
    agent.finish();
    await h.settle(40);

    const jobs = await h.controller.store.list();
    expect(jobs).toHaveLength(2);
    const retried = jobs.find((j) => j.id !== first.id)!;
    expect(retried).toMatchObject({ retryOf: first.id, state: "succeeded", branch: BRANCH, prNumber: 100 });
    expect((await h.controller.store.get(first.id))!.state).toBe("succeeded");
    const said = bodies(h);
    expect(said.some((b) => b.includes("already running"))).toBe(false);
    expect(said.find((b) => b.includes(`waits as job \`${retried.id}\``))).toContain(`busy on this issue with job \`${first.id}\``);
    // It ran after the first job, on top of its commit.
    expect(history(h, BRANCH)).toHaveLength(3);
  });

  it("/agent stop stops the running job and the one waiting for it", async () => {
    // Never let finish: the stop must end it.
    const agent = slowAgent();
    h = await startHarness({ env: agent.env });
    const first = await busy(h, agent);
    await h.deliverComment("/agent run FAKE_AGENT:edit later", { sender: "Codertocat" });
    void h.controller.scheduler.tick();
    await waitFor(async () => (await h!.controller.store.list()).some((j) => j.options.waitingFor === first.id), "the follow-up to wait");
    await h.deliverComment("/agent stop", { sender: "Codertocat" });
    await h.settle(40);
    const jobs = await h.controller.store.list();
    expect(jobs.map((j) => j.state).sort()).toEqual(["cancelled", "rejected"]);
    expect(jobs.find((j) => j.state === "rejected")!.message).toBe("stopped by @Codertocat while it waited");
  });
});
