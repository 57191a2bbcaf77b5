import { afterEach, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../support/harness.js";
import { OWNER, REPO, REPO_ID } from "../support/payloads.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const comments = (harness: Harness) => harness.github.callsTo("POST", "/issues/:id/comments").map((c) => c.body.body as string);

describe("/agent ask <question>", () => {
  it("answers in a comment, pushes nothing, and its token can only read", async () => {
    h = await startHarness({ files: { "README.md": "# Hello from the README\n" } });
    await h.deliverComment("/agent ask what does the README say? FAKE_AGENT:answer", { sender: "Codertocat" });
    await h.settle();

    const [job] = await h.controller.store.list();
    expect(job, job!.message ?? "").toMatchObject({ state: "succeeded", options: { ask: true }, instructions: "what does the README say? FAKE_AGENT:answer" });
    expect(job!.result).toMatchObject({ outcome: "answered" });

    // The token: this repository, contents: read — nothing that could push.
    const mints = h.github.callsTo("POST", "/access_tokens").filter((c) => c.body && "repository_ids" in c.body);
    expect(mints.map((m) => m.body)).toEqual([{ repository_ids: [REPO_ID], permissions: { contents: "read" } }]);
    // Nothing pushed (the agent did edit a file), no branch, no pull request.
    expect(h.git.requests.some((r) => r.path.includes("git-receive-pack"))).toBe(false);
    expect(await h.git.branchSha(OWNER, REPO, job!.branch!)).toBeNull();
    expect(h.github.calls.filter((c) => c.method === "POST" && c.route.endsWith("/pulls"))).toEqual([]);
    expect(job!.steps.find((s) => s.name === "push")).toMatchObject({ status: "skipped" });

    // The answer is its own comment, quoting the question; what the agent wrote is data there:
    // no mention notifies, no image loads, no marker of ours can be forged, no raw HTML.
    const answer = comments(h).find((b) => b.includes("asked (agent-work job"))!;
    expect(answer).toContain(`💬 @Codertocat asked (agent-work job \`${job!.id}\`):\n> what does the README say? FAKE_AGENT:answer`);
    expect(answer).toContain("The README says: # Hello from the README");
    expect(answer).toContain("cc `@everyone` and `@octo-org/admins`");
    expect(answer).not.toContain("evil.example/pixel.png");
    expect(answer).not.toContain("<img");
    expect(answer).not.toContain("agent-work:job=jfake00000000");
    expect(answer).toContain("&lt;script>");
    expect(answer).not.toContain(h.workerToken);

    // The status comment and the check run say it was answered.
    const lastEdit = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
    expect(lastEdit).toContain("The agent answered the question in a comment below; nothing was changed or pushed");
    const completed = h.github.callsTo("PATCH", "/check-runs/:id").filter((c) => c.body.status === "completed");
    expect(completed.at(-1)!.body.conclusion).toBe("success");
  });

  it("an agent that writes no answer fails the job with the reason, and posts no answer", async () => {
    h = await startHarness();
    await h.deliverComment("/agent ask why? FAKE_AGENT:edit", { sender: "Codertocat" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("failed");
    expect(job!.message).toContain("without writing an answer to .agent-work-answer.md");
    expect(comments(h).some((b) => b.includes("asked (agent-work job"))).toBe(false);
    expect(h.git.requests.some((r) => r.path.includes("git-receive-pack"))).toBe(false);
  });

  it("needs a question", async () => {
    h = await startHarness();
    await h.deliverComment("/agent ask", { sender: "Codertocat" });
    await h.settle();
    expect(await h.controller.store.list()).toEqual([]);
    expect(comments(h)[0]).toContain("`/agent ask` needs a question after it");
  });
});
