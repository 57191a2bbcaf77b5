/**
 * The abort reason when this controller is shutting down (SIGTERM): the run stops at its next safe
 * point, its worker is destroyed and its token revoked, and the job goes back to the queue with
 * its lease released, so another replica or the next start takes it at once. Not a failure, and
 * not counted as one of the job's attempts.
 */
export class HandBack {
  readonly message = "the controller is shutting down; the job goes back to the queue";
}

export function handedBack(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof HandBack;
}
