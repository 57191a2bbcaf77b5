import { afterEach, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../support/harness.js";
import type { Backend, Worker } from "../../src/backends/types.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A stand-in backend with a fixed capacity that records what it ran; its agent changes nothing. */
function stub(name: string, capacity: { max: number; active: number }) {
  const ran: string[] = [];
  const backend: Backend = {
    name,
    capacity: async () => capacity,
    create: async (job): Promise<Worker> => ({ id: `${name}-${job.jobId}`, backend: name, jobId: job.jobId, createdAt: Date.now(), meta: {} }),
    run: async (worker) => {
      ran.push(worker.jobId);
      return { outcome: "no_changes", message: "nothing to do", computeSeconds: 0.01, aborted: false };
    },
    destroy: async () => undefined,
    list: async () => [],
  };
  return { backend, ran };
}

describe("routing between backends", () => {
  it("runs a job on the next backend in BACKEND_ORDER when its own is full, and says where and why", async () => {
    const local = stub("local", { max: 1, active: 1 });
    const ssh = stub("ssh", { max: 4, active: 0 });
    h = await startHarness({ env: { BACKEND_ORDER: "local,ssh" }, extraBackends: new Map([["local", local.backend], ["ssh", ssh.backend]]) });
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job).toMatchObject({ state: "succeeded", backend: "ssh" });
    expect(local.ran).toEqual([]);
    expect(ssh.ran).toEqual([job!.id]);
    const final = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
    expect(final).toContain("This job runs on `ssh`: `local` was full (1/1).");
    expect(final).toContain("backend `ssh`");
  });

  it("keeps a job waiting, not failing, when every backend it may use is full", async () => {
    const local = stub("local", { max: 1, active: 1 });
    h = await startHarness({ extraBackends: new Map([["local", local.backend]]) });
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    await h.settle(3);
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("queued");
    expect(local.ran).toEqual([]);
  });
});
