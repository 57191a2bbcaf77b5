import type { Worker } from "./types.js";

/**
 * Thrown by `Backend.list()` when part of what the backend holds could not be seen (an SSH host
 * down, one zone not answering), carrying what *was* seen. The reaper branches on it: it may still
 * reap orphans among `workers`, but must not conclude that a job's worker vanished, since it may
 * sit exactly where the listing could not look.
 */
export class IncompleteListError extends Error {
  constructor(
    readonly workers: Worker[],
    /** Where the listing could not look, with why (e.g. `build-2: connection refused`). */
    readonly unreachable: string[],
  ) {
    super(`could not list every worker: ${unreachable.join("; ")}`);
    this.name = "IncompleteListError";
  }
}
