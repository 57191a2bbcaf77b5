/**
 * The abort reason when a person stops a job (`/agent stop`, the Cancel button, the ops CLI), so
 * the runner can tell a stop from a deadline or a controller shutting down.
 */
export class CancelRequest {
  constructor(readonly by: string) {}
}

export function cancelledBy(signal: AbortSignal): string | undefined {
  return signal.aborted && signal.reason instanceof CancelRequest ? signal.reason.by : undefined;
}
