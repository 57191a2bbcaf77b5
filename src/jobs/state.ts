/**
 * The job state machine: states, allowed transitions, terminal states. Pure: no I/O.
 * The scheduler writes a transition to the store *before* it starts the effect the new state names.
 *
 *   received ─► queued ─► provisioning ─► running ─► reporting ─► succeeded
 *      │          │            │             │           │
 *      ▼          ▼            ▼             ▼           ▼
 *   rejected   cancelled   failed / cancelled / timed_out
 *
 * `provisioning` and `running` may also go back to `queued` when a controller died holding the
 * lease (the worker is destroyed first, then the job runs again from the start).
 */
export const JOB_STATES = ["received", "queued", "provisioning", "running", "reporting", "succeeded", "failed", "cancelled", "timed_out", "rejected"] as const;

export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: readonly JobState[] = ["succeeded", "failed", "cancelled", "timed_out", "rejected"];

/** States that hold the one-active-job-per-issue slot (a `received` job has not been admitted yet). */
export const ACTIVE_STATES: readonly JobState[] = ["queued", "provisioning", "running", "reporting"];

const TRANSITIONS: Record<JobState, readonly JobState[]> = {
  received: ["queued", "rejected"],
  queued: ["provisioning", "cancelled", "failed"],
  provisioning: ["running", "queued", "failed", "cancelled", "timed_out"],
  running: ["reporting", "queued", "failed", "cancelled", "timed_out"],
  reporting: ["succeeded", "failed", "cancelled", "timed_out"],
  succeeded: [],
  failed: [],
  cancelled: [],
  timed_out: [],
  rejected: [],
};

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state);
}

export function isActive(state: JobState): boolean {
  return ACTIVE_STATES.includes(state);
}

export function canTransition(from: JobState, to: JobState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function allowedTransitions(from: JobState): readonly JobState[] {
  return TRANSITIONS[from];
}

/** Throws when a transition is not in the table: a bug in the caller, never a user error. */
export function assertTransition(from: JobState, to: JobState): void {
  if (!canTransition(from, to)) {
    throw new Error(`job state cannot go from ${from} to ${to}`);
  }
}
