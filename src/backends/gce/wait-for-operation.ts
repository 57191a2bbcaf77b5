import { GceOperationError } from "./classify-gce-error.js";
import { backoffDelay, retryTransient, type Clock } from "./backoff.js";
import type { ComputeApi, GceOperation } from "./compute-api.js";

const POLL = { initialMs: 1000, maxMs: 10_000, multiplier: 1.5 };

/**
 * Waits for a zone operation to finish and reads its `error`: an insert that GCE accepted can
 * still fail there (a stock-out, a quota), and only the operation says so. Throws
 * {@link GceOperationError} for a failed operation, and a plain error at the deadline.
 */
export async function waitForOperation(
  compute: ComputeApi,
  zone: string,
  operation: string,
  options: { clock: Clock; deadline: number; signal?: AbortSignal },
): Promise<GceOperation> {
  const { clock, deadline, signal } = options;
  for (let polls = 0; ; polls++) {
    signal?.throwIfAborted();
    const op = await retryTransient(() => compute.waitOperation(zone, operation), { clock, ...(signal ? { signal } : {}) });
    if (String(op.status) === "DONE") {
      const errors = (op.error?.errors ?? []).map((e) => ({ code: e.code ?? "UNKNOWN", message: e.message ?? "" }));
      if (errors.length > 0) throw new GceOperationError(operation, errors, op.httpErrorStatusCode ?? undefined);
      return op;
    }
    if (clock.now() >= deadline) {
      throw new Error(
        `zone operation ${operation} in ${zone} is still ${op.status ?? "running"} at its deadline; it may yet finish (the worker is found again by its labels)`,
      );
    }
    // operations.wait already holds the call open for up to two minutes; this only spaces out
    // the calls when it comes back early.
    await clock.sleep(Math.min(backoffDelay(polls, POLL, clock.random), Math.max(0, deadline - clock.now())), signal);
  }
}
