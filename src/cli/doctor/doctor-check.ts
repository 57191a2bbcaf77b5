/** One result of `agent-work doctor`: what was checked, what was found, and what to do about it. */
export type DoctorStatus = "ok" | "warn" | "fail" | "skip";

export interface DoctorCheck {
  /** What was checked, e.g. `zone us-central1-a`. */
  name: string;
  status: DoctorStatus;
  /** What was found. */
  detail: string;
  /** What to do about it, when something is missing. */
  fix?: string;
}

export interface DoctorReport {
  /** No check failed (warnings allowed). */
  ok: boolean;
  checks: DoctorCheck[];
}
