import { DEFAULT_SHUTDOWN_GRACE_MS, type Controller } from "./controller.js";

/**
 * SIGTERM or SIGINT: shut the controller down (no new claims, running jobs handed back to the
 * queue with their leases released, short phases let finish within `graceMs`), write out the logs,
 * exit 0. A second signal, or a shutdown that overruns its bound, exits 1 at once: leases then
 * expire on their own and the next start recovers the jobs.
 */
export function stopOnSignals(controller: Controller, options: { graceMs?: number; exit?: (code: number) => void } = {}): void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const graceMs = options.graceMs;
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      controller.log.warn({ signal }, "second signal while stopping: exiting now");
      exit(1);
      return;
    }
    stopping = true;
    controller.log.info({ signal }, "stopping: no new jobs are claimed; running jobs go back to the queue");
    const overrun = setTimeout(
      () => {
        controller.log.error("shutdown overran its bound: exiting now");
        exit(1);
      },
      (graceMs ?? DEFAULT_SHUTDOWN_GRACE_MS) + 10_000,
    );
    overrun.unref();
    controller.shutdown(graceMs === undefined ? {} : { graceMs }).then(
      ({ handedBack, unfinished }) => {
        controller.log.info({ handedBack, unfinished }, "stopped");
        // Lines still buffered on a pipe go out before the process does.
        process.stdout.write("", () => exit(0));
      },
      (err) => {
        controller.log.error({ err }, "error while stopping");
        exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
