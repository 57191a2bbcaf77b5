import type { Logger } from "pino";
import type { Job, StepRecord } from "../jobs/types.js";
import type { ProgressEvent } from "../worker/protocol.js";
import type { AgentUsageMeter } from "../cost/agent-usage-meter.js";
import type { PipelineDeps } from "./deps.js";
import type { StatusPublisher } from "./status-publisher.js";

/**
 * The worker's progress events as they stream in: log lines (redacted, metered against the job
 * budget, to the status surfaces and the job's log) and steps, written in the order they came.
 */
export function followProgress(run: {
  deps: PipelineDeps;
  log: Logger;
  publisher: StatusPublisher;
  meter: AgentUsageMeter;
  checkBudget: () => void;
  step: (name: string, status: StepRecord["status"], detail?: string) => Promise<void>;
  /** The job as it is now (each step writes it anew). */
  job: () => Job;
}): { onEvent: (e: ProgressEvent) => void; settled: () => Promise<void> } {
  const { deps, log, publisher, meter, checkBudget, step } = run;
  const jobId = run.job().id;
  let pending = Promise.resolve();
  const onProgress = (e: ProgressEvent): Promise<void> => {
    if (e.type === "log") {
      const line = deps.redactor.redact(e.line);
      // Only the agent's own output tells its model use; setup's is the repository's commands'.
      if ((e.stream === "stdout" || e.stream === "stderr") && meter.read(line)) checkBudget();
      publisher.log(line);
      deps.logs.append(jobId, e.stream, line);
      publisher.poke();
      return Promise.resolve();
    }
    if (e.type === "step") {
      deps.logs.append(jobId, "worker", `step ${e.step} ${e.status}${e.detail ? `: ${deps.redactor.redact(e.detail)}` : ""}`);
      const status = e.status === "started" ? "running" : e.status === "finished" ? "done" : e.status === "failed" ? "failed" : "skipped";
      // Serialise step writes so a fast worker's events land in order.
      pending = pending.then(() => step(e.step, status, e.detail));
      if (e.step === "agent" && status === "running") pending = pending.then(() => deps.onStep?.("agent-running", run.job()));
      if (e.step === "push" && status === "done") pending = pending.then(() => deps.onStep?.("pushed", run.job()));
      return pending;
    }
    return Promise.resolve();
  };
  return {
    onEvent: (e) => void onProgress(e).catch((err) => log.warn({ err }, "could not record progress")),
    settled: () => pending,
  };
}
