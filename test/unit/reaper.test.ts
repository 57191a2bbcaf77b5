import { describe, expect, it } from "vitest";
import { IncompleteListError } from "../../src/backends/incomplete-list-error.js";
import type { Backend, Worker } from "../../src/backends/types.js";
import type { JobState } from "../../src/jobs/state.js";
import type { Job, NewJob } from "../../src/jobs/types.js";
import { reap, type ReapDeps } from "../../src/reaper/reap.js";
import { Reaper } from "../../src/reaper/reaper.js";
import { JobStore } from "../../src/store/job-store.js";
import { openStore } from "../../src/store/open-store.js";
import { ReaperMarkStore } from "../../src/store/reaper-marks.js";
import { newJob as aNewJob } from "../support/new-job.js";

let issue = 0;
function newJob(): NewJob {
  issue += 1;
  return aNewJob({ deliveryId: `d-${issue}-${Math.random()}`, number: issue });
}

/** A backend that holds workers in memory and records what was destroyed. */
function fakeBackend(name = "fake") {
  const workers = new Map<string, Worker>();
  const destroyed: string[] = [];
  let listError: Error | null = null;
  const backend: Backend = {
    name,
    capacity: async () => ({ max: 10, active: workers.size }),
    create: async (job) => {
      const w: Worker = { id: `${name}-${job.jobId}`, backend: name, jobId: job.jobId, createdAt: 1, meta: {} };
      workers.set(w.id, w);
      return w;
    },
    run: async () => {
      throw new Error("not used");
    },
    destroy: async (w) => {
      destroyed.push(w.id);
      workers.delete(w.id);
    },
    list: async () => {
      if (listError) throw listError;
      return [...workers.values()];
    },
  };
  return {
    backend,
    destroyed,
    add: (jobId: string) => backend.create({ jobId, repoFullName: "octo/demo", maxSeconds: 60 }, new AbortController().signal),
    failListing: (err: Error | null) => (listError = err),
  };
}

async function setup() {
  let clock = 10_000_000;
  const store = new JobStore(await openStore({ dataDir: ":memory:" }), () => clock);
  const fake = fakeBackend();
  const lines: { msg: string; obj: Record<string, unknown> }[] = [];
  const log = {
    info: (obj: object, msg: string) => lines.push({ msg, obj: obj as Record<string, unknown> }),
    warn: (obj: object, msg: string) => lines.push({ msg, obj: obj as Record<string, unknown> }),
    error: (obj: object, msg: string) => lines.push({ msg, obj: obj as Record<string, unknown> }),
  } as unknown as ReapDeps["log"];
  const ended: Job[] = [];
  const deps: ReapDeps = { store, backends: new Map([["fake", fake.backend]]), now: () => clock, log, onJobEnded: async (j) => void ended.push(j) };
  const marks = new ReaperMarkStore(store.db);
  /** A job moved along the state machine to `state`, with a worker on the fake backend once it has one. */
  async function jobIn(state: JobState, patch: { deadlineAt?: number; withWorker?: boolean } = {}): Promise<Job> {
    let job = (await store.insertReceived(newJob(), { backend: "fake" })).job;
    const path: JobState[] =
      {
        received: [],
        queued: ["queued"],
        provisioning: ["queued", "provisioning"],
        running: ["queued", "provisioning", "running"],
        succeeded: ["queued", "provisioning", "running", "reporting", "succeeded"],
      }[state as "received"] ?? [];
    for (const to of path) {
      const extra = to === "provisioning" ? { deadlineAt: patch.deadlineAt ?? clock + 3_600_000 } : {};
      job = await store.transition(job.id, job.state, to, extra);
      if (to === "provisioning" && patch.withWorker !== false) job = await store.update(job.id, { worker: await fake.add(job.id) });
    }
    return job;
  }
  return { store, fake, deps, marks, lines, ended, jobIn, advance: (ms: number) => (clock += ms), now: () => clock };
}

describe("the reaper", () => {
  it("marks a worker no job owns on the first pass and destroys it on the next", async () => {
    const { fake, deps, marks, advance } = await setup();
    const orphan = await fake.add("jnosuchjob00");

    const first = await reap(deps);
    expect(first.actions).toEqual([expect.objectContaining({ kind: "mark-orphan", workerId: orphan.id, reason: "no job has its id" })]);
    expect(fake.destroyed).toEqual([]);
    expect(await marks.list()).toHaveLength(1);

    advance(60_000);
    const second = await reap(deps);
    expect(second.actions).toEqual([expect.objectContaining({ kind: "destroy-orphan", workerId: orphan.id })]);
    expect(fake.destroyed).toEqual([orphan.id]);
    expect(await marks.list()).toEqual([]);
    expect(second.after).toEqual({ workers: { fake: 0 }, marks: 0 });
  });

  it("treats the worker of a finished job as an orphan too (its teardown failed)", async () => {
    const { fake, deps, jobIn, advance } = await setup();
    const done = await jobIn("succeeded");
    await reap(deps);
    advance(1000);
    await reap(deps);
    expect(fake.destroyed).toEqual([done.worker!.id]);
  });

  it("never kills a busy worker, however many passes run", async () => {
    const { fake, deps, jobIn, marks, advance } = await setup();
    const busy = await jobIn("running");
    const waiting = await jobIn("queued");
    await fake.add(waiting.id); // a queued job whose worker survived a requeue: the next run adopts it
    for (let i = 0; i < 3; i++) {
      const report = await reap(deps);
      expect(report.actions).toEqual([]);
      advance(60_000);
    }
    expect(fake.destroyed).toEqual([]);
    expect(await marks.list()).toEqual([]);
    expect((await deps.store.get(busy.id))?.state).toBe("running");
  });

  it("unmarks a worker that became owned between two passes instead of destroying it", async () => {
    const { fake, deps, store, marks, advance } = await setup();
    const job = (await store.insertReceived(newJob(), { backend: "fake" })).job;
    // The worker shows up under an id no job has yet ...
    const worker = await fake.add("jlate0000000");
    await reap(deps);
    expect(await marks.list()).toHaveLength(1);
    // ... and by the next pass a job with that id exists (another replica's write became visible).
    await store.db.deleteFrom("job_events").where("job_id", "=", job.id).execute();
    await store.db.updateTable("jobs").set({ id: "jlate0000000" }).where("id", "=", job.id).execute();
    advance(60_000);
    const second = await reap(deps);
    expect(second.actions).toEqual([expect.objectContaining({ kind: "unmark-orphan", workerId: worker.id, reason: "owned by job jlate0000000 (received)" })]);
    expect(fake.destroyed).toEqual([]);
    expect(await marks.list()).toEqual([]);
  });

  it("fails a running job whose worker vanished, once two passes have missed it, with a message that says so", async () => {
    const { fake, deps, jobIn, ended, advance } = await setup();
    const job = await jobIn("running");
    await fake.backend.destroy(job.worker!); // preempted, deleted by hand, host reinstalled...

    const first = await reap(deps);
    expect(first.actions).toEqual([expect.objectContaining({ kind: "mark-vanished", jobId: job.id })]);
    expect((await deps.store.get(job.id))?.state).toBe("running");

    advance(60_000);
    await reap(deps);
    const failed = await deps.store.get(job.id);
    expect(failed?.state).toBe("failed");
    expect(failed?.message).toBe(
      `its worker (${job.worker!.id} on the fake backend) disappeared while the job was running, so nothing was running it any more`,
    );
    expect(ended.map((j) => j.id)).toEqual([job.id]);
  });

  it("leaves a running job alone while a live controller holds its lease, even if this pass cannot see its worker", async () => {
    const { fake, deps, jobIn, advance } = await setup();
    const job = await jobIn("running");
    // Another replica runs it: its lease is live, and its local worker is on another host.
    await deps.store.claim(["running"], "replica-b", 600_000, 10);
    await fake.backend.destroy(job.worker!);
    await reap(deps);
    advance(60_000);
    const second = await reap(deps);
    expect(second.actions).toEqual([]);
    expect((await deps.store.get(job.id))?.state).toBe("running");
  });

  it("leaves a job alone whose worker comes back, and one still being provisioned without a worker", async () => {
    const { fake, deps, jobIn, marks, advance } = await setup();
    const job = await jobIn("running");
    await jobIn("provisioning", { withWorker: false });
    fake.failListing(new IncompleteListError([], ["host-1: connection refused"]));
    await reap(deps);
    fake.failListing(null);
    await fake.backend.destroy(job.worker!);
    await reap(deps);
    await fake.add(job.id);
    advance(60_000);
    const third = await reap(deps);
    expect(third.actions).toEqual([expect.objectContaining({ kind: "unmark-vanished", jobId: job.id })]);
    expect((await deps.store.get(job.id))?.state).toBe("running");
    expect(await marks.list()).toEqual([]);
  });

  it("never fails a job on a listing that could not see everything, but still reaps the orphans it saw", async () => {
    const { fake, deps, jobIn, advance } = await setup();
    const job = await jobIn("running");
    await fake.backend.destroy(job.worker!);
    fake.destroyed.length = 0;
    const orphan: Worker = { id: "fake-jorphan", backend: "fake", jobId: "jorphan", createdAt: 1, meta: {} };
    fake.failListing(new IncompleteListError([orphan], ["host-2: connection refused"]));
    for (let i = 0; i < 3; i++) {
      const report = await reap(deps);
      expect(report.incomplete).toEqual(["fake: host-2: connection refused"]);
      advance(60_000);
    }
    expect((await deps.store.get(job.id))?.state).toBe("running");
    expect(fake.destroyed).toEqual(["fake-jorphan"]);
  });

  it("does nothing with a backend whose listing failed outright", async () => {
    const { fake, deps, jobIn, advance } = await setup();
    const job = await jobIn("running");
    await fake.backend.destroy(job.worker!);
    fake.failListing(new Error("API down"));
    await reap(deps);
    advance(60_000);
    const report = await reap(deps);
    expect(report).toMatchObject({ actions: [], incomplete: ["fake: API down"] });
    expect((await deps.store.get(job.id))?.state).toBe("running");
  });

  it("times out a job past its deadline plus the grace, then destroys its worker", async () => {
    const { fake, deps, jobIn, ended, now } = await setup();
    const late = await jobIn("running", { deadlineAt: now() - 121_000 });
    const onTime = await jobIn("running", { deadlineAt: now() - 119_000 });

    const report = await reap({ ...deps, deadlineGraceMs: 120_000 });
    expect(report.actions).toEqual([
      expect.objectContaining({ kind: "time-out", jobId: late.id, workerId: late.worker!.id, reason: "running 121s past its deadline" }),
    ]);
    const timedOut = await deps.store.get(late.id);
    expect(timedOut).toMatchObject({ state: "timed_out", message: "the job ran 121s past its deadline and was stopped" });
    expect(fake.destroyed).toEqual([late.worker!.id]);
    expect((await deps.store.get(onTime.id))?.state).toBe("running");
    expect(ended.map((j) => j.state)).toEqual(["timed_out"]);
  });

  it("changes nothing in a dry run, and reports what it would do", async () => {
    const { fake, deps, jobIn, marks, advance, now } = await setup();
    await fake.add("jorphan00001");
    await reap(deps); // marks it
    const vanished = await jobIn("running");
    await fake.backend.destroy(vanished.worker!);
    const late = await jobIn("running", { deadlineAt: now() - 10 * 60_000 });
    await fake.add("jorphan00002");
    advance(60_000);
    const marksBefore = await marks.list();
    const destroyedBefore = [...fake.destroyed];

    const report = await reap({ ...deps, dryRun: true });
    expect(report.dryRun).toBe(true);
    expect(report.actions.map((a) => `${a.kind} ${a.jobId}`).sort()).toEqual(
      [`destroy-orphan jorphan00001`, `mark-orphan jorphan00002`, `mark-vanished ${vanished.id}`, `time-out ${late.id}`].sort(),
    );
    expect(await marks.list()).toEqual(marksBefore);
    expect(fake.destroyed).toEqual(destroyedBefore);
    expect((await deps.store.get(late.id))?.state).toBe("running");
    expect((await deps.store.get(vanished.id))?.state).toBe("running");
    expect(report.after.marks).toBe(report.before.marks);
  });

  it("logs its counts before and after each pass", async () => {
    const { fake, deps, lines, advance } = await setup();
    await fake.add("jorphan00003");
    await reap(deps);
    advance(1000);
    await reap(deps);
    const passes = lines.filter((l) => l.msg.startsWith("reaper pass"));
    expect(passes.map((l) => l.msg)).toEqual(["reaper pass starting", "reaper pass finished", "reaper pass starting", "reaper pass finished"]);
    expect(passes[2]!.obj).toMatchObject({ workers: { fake: 1 }, marks: 1, liveJobs: 0 });
    expect(passes[3]!.obj).toMatchObject({
      before: { workers: { fake: 1 }, marks: 1 },
      after: { workers: { fake: 0 }, marks: 0 },
      actions: { "destroy-orphan": 1 },
    });
  });

  it("keeps a mark when destroying fails, and tries again on the next pass", async () => {
    const { fake, deps, marks, advance } = await setup();
    await fake.add("jorphan00004");
    await reap(deps);
    const destroy = fake.backend.destroy;
    fake.backend.destroy = async () => {
      throw new Error("host unreachable");
    };
    advance(1000);
    const failed = await reap(deps);
    expect(failed.actions).toEqual([expect.objectContaining({ kind: "destroy-orphan", error: "host unreachable" })]);
    expect(await marks.list()).toHaveLength(1);
    fake.backend.destroy = destroy;
    advance(1000);
    await reap(deps);
    expect(fake.destroyed).toEqual(["fake-jorphan00004"]);
  });

  it("runs one pass at a time from tick()", async () => {
    const { fake, deps } = await setup();
    await fake.add("jorphan00005");
    const reaper = new Reaper(deps);
    const [a, b] = await Promise.all([reaper.tick(), reaper.tick()]);
    expect(a).toBe(b);
    await reaper.stop();
  });
});
