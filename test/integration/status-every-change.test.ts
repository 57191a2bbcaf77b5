import { afterEach, describe, expect, it, vi } from "vitest";
import type { Backend, RunResult, Worker } from "../../src/backends/types.js";
import { startHarness, type Harness } from "../support/harness.js";

/**
 * Every change of a job's state or step reaches the check run and the status comment while it is
 * true: the backend below stops at each change and goes on only once the recorded GitHub calls
 * show it on both surfaces. The status interval is 600 s, so nothing here is seen because time
 * passed: a change that waited for the interval would never be shown, and the wait would fail.
 */

let h: Harness | undefined;
afterEach(async () => {
  held?.();
  await h?.close();
  h = undefined;
});
let held: (() => void) | undefined;

/** A `local` backend that stops at its start and at each step's start and end until `next()`. */
function heldBackend() {
  let at: string | undefined;
  const hold = (label: string) =>
    new Promise<void>((resolve) => {
      at = label;
      held = () => {
        held = undefined;
        at = undefined;
        resolve();
      };
    });
  const backend: Backend = {
    name: "local",
    capacity: async () => ({ max: 10, active: 0 }),
    async create(job): Promise<Worker> {
      await hold("worker");
      return { id: `held-${job.jobId}`, backend: "local", jobId: job.jobId, createdAt: Date.now(), meta: {} };
    },
    async run(_worker, input, onEvent): Promise<RunResult> {
      for (const step of ["clone", "agent", "commit", "push"] as const) {
        onEvent({ type: "step", step, status: "started", at: Date.now() });
        await hold(`${step} started`);
        onEvent({ type: "step", step, status: "finished", at: Date.now() });
        await hold(`${step} finished`);
      }
      return {
        outcome: "pushed",
        branch: input.branch,
        headSha: "c".repeat(40),
        baseSha: "a".repeat(40),
        filesChanged: 1,
        agentExitCode: 0,
        message: "pushed",
        computeSeconds: 1,
        aborted: false,
      };
    },
    destroy: async () => undefined,
    list: async () => [],
  };
  return {
    backend,
    at: () => at,
    next() {
      if (!held) throw new Error("the backend is not holding");
      held();
    },
  };
}

/** The last body the app wrote to each surface (the comment's and the check run's, created or edited). */
function surfaces(harness: Harness) {
  const comments = [...harness.github.callsTo("POST", "/issues/:id/comments"), ...harness.github.callsTo("PATCH", "/issues/comments/:id")];
  const checks = [...harness.github.callsTo("POST", "/check-runs"), ...harness.github.callsTo("PATCH", "/check-runs/:id")];
  const last = <T extends { at?: number }>(calls: T[]) => calls.at(-1);
  const comment = last(comments.sort((a, b) => harness.github.calls.indexOf(a) - harness.github.calls.indexOf(b)));
  const check = last(checks.sort((a, b) => harness.github.calls.indexOf(a) - harness.github.calls.indexOf(b)));
  return {
    comment: (comment?.body?.body as string | undefined) ?? "",
    check: { status: check?.body?.status as string | undefined, summary: (check?.body?.output?.summary as string | undefined) ?? "" },
  };
}

/** Waits until both surfaces show `what` (a bound for a loaded machine, not a measure of speed). */
async function shown(harness: Harness, label: string, what: (s: ReturnType<typeof surfaces>) => boolean) {
  await vi.waitFor(
    () => {
      const s = surfaces(harness);
      expect(what(s), `${label}\ncomment:\n${s.comment}\ncheck run (${s.check.status}):\n${s.check.summary}`).toBe(true);
    },
    { timeout: 20_000, interval: 20 },
  );
}

const running = (step: string) => new RegExp(`- \\[ \\] ${step} ⏳`);
const done = (step: string) => new RegExp(`- \\[x\\] ${step}`);

/** Goes through the held run: each step's start and end shown on both surfaces before the next. */
async function throughTheSteps(harness: Harness, held: ReturnType<typeof heldBackend>) {
  await vi.waitFor(() => expect(held.at()).toBe("worker"), { timeout: 20_000 });
  await shown(harness, "starting a worker", (s) => s.comment.includes("### agent-work: starting a worker") && s.check.status === "in_progress");
  held.next();
  for (const step of ["clone", "agent", "commit", "push"] as const) {
    await vi.waitFor(() => expect(held.at()).toBe(`${step} started`), { timeout: 20_000 });
    await shown(harness, `${step} started`, (s) => running(step).test(s.comment) && running(step).test(s.check.summary));
    held.next();
    await vi.waitFor(() => expect(held.at()).toBe(`${step} finished`), { timeout: 20_000 });
    await shown(harness, `${step} finished`, (s) => done(step).test(s.comment) && done(step).test(s.check.summary));
    held.next();
  }
}

describe("every change of state or step reaches GitHub while it is true", () => {
  it("queued → starting a worker → each step started and finished → done, and a requeue after a crash", async () => {
    const held = heldBackend();
    h = await startHarness({ env: { STATUS_UPDATE_INTERVAL_SECONDS: "600", LEASE_SECONDS: "5" }, extraBackends: new Map([["local", held.backend]]) });
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.controller.scheduler.tick();
    await h.controller.scheduler.drain();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("queued");
    await shown(h, "queued", (s) => s.comment.includes("### agent-work: queued") && s.check.status === "queued");

    // The run starts and stops at the worker: what a controller that died there leaves behind is a
    // job in `provisioning` with a lease nobody renews.
    void h.controller.scheduler.tick();
    await vi.waitFor(() => expect(held.at()).toBe("worker"), { timeout: 20_000 });
    await shown(h, "starting a worker", (s) => s.comment.includes("### agent-work: starting a worker") && s.check.status === "in_progress");
    await h.controller.store.db
      .updateTable("jobs")
      .set({ lease_owner: "dead-controller", lease_expires_at: Date.now() - 1 })
      .where("id", "=", job!.id)
      .execute();
    // This process's run of it loses its lease (its writes are refused from now on) and is let go.
    held.next();
    await h.controller.scheduler.drain();

    // A pass finds the expired lease and requeues the job: GitHub shows it queued again, its steps
    // cleared, before it runs again.
    const writesBefore = h.github.calls.length;
    await h.controller.scheduler.tick(true);
    await shown(
      h,
      "requeued",
      (s) =>
        h!.github.calls.length > writesBefore &&
        s.comment.includes("### agent-work: queued") &&
        s.comment.includes("Queued again: the controller stopped during its first start") &&
        s.check.status === "queued" &&
        !done("queued").test(s.check.summary),
    );

    // The second run, change by change (once the recovery phase has let go of the job's lease:
    // it shows the requeue before it returns).
    await h.controller.scheduler.drain();
    void h.controller.scheduler.tick();
    await throughTheSteps(h, held);
    await h.settle();
    const [finished] = await h.controller.store.list();
    expect(finished!.state).toBe("succeeded");
    expect(finished!.attempts).toBe(2);
    await shown(h, "done", (s) => s.comment.includes("### agent-work: done") && s.check.status === "completed");
  });
});
