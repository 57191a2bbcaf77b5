import { AVAILABLE_BACKENDS } from "./repo-config.js";

/**
 * A backend's own limits (BACKEND_CAPS), on top of its capacity and the controller's budgets:
 * how many jobs may hold it at once, and what its jobs may spend in one clock hour (UTC).
 */
export interface BackendCap {
  jobs?: number;
  usdPerHour?: number;
}

export type ParseBackendCapsResult = { ok: true; caps: Record<string, BackendCap> } | { ok: false; errors: string[] };

const USD = /^\d{1,7}(\.\d{1,6})?$/;

/**
 * `gce=5:2.50,ssh=3,local=:1.00`: per backend, jobs at once, then after a colon US dollars an hour;
 * either may be left out. Every problem is reported.
 */
export function parseBackendCaps(text: string): ParseBackendCapsResult {
  const caps: Record<string, BackendCap> = {};
  const errors: string[] = [];
  const seen = new Set<string>();
  for (const entry of text
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf("=");
    const name = (eq < 0 ? entry : entry.slice(0, eq)).trim();
    const value = eq < 0 ? "" : entry.slice(eq + 1).trim();
    if (!(AVAILABLE_BACKENDS as readonly string[]).includes(name)) {
      errors.push(`${JSON.stringify(entry)}: unknown backend ${JSON.stringify(name)}; expected one of ${AVAILABLE_BACKENDS.join(", ")}`);
      continue;
    }
    if (seen.has(name)) {
      errors.push(`${JSON.stringify(entry)}: ${name} is capped twice`);
      continue;
    }
    seen.add(name);
    const [jobsText = "", usdText, ...rest] = value.split(":").map((p) => p.trim());
    const cap: BackendCap = {};
    const problems: string[] = [];
    if (rest.length > 0 || (jobsText === "" && (usdText ?? "") === ""))
      problems.push("expected <jobs at once>[:<US dollars an hour>], such as gce=5:2.50, ssh=3 or local=:1.00");
    else {
      if (jobsText !== "") {
        const jobs = /^\d{1,6}$/.test(jobsText) ? Number(jobsText) : Number.NaN;
        if (!(jobs >= 1)) problems.push(`jobs at once ${JSON.stringify(jobsText)} is not a whole number of at least 1`);
        else cap.jobs = jobs;
      }
      if (usdText !== undefined && usdText !== "") {
        if (!USD.test(usdText)) problems.push(`${JSON.stringify(usdText)} is not an amount of US dollars such as 2.50`);
        else cap.usdPerHour = Number(usdText);
      }
    }
    if (problems.length > 0) errors.push(...problems.map((p) => `${JSON.stringify(entry)}: ${p}`));
    else caps[name] = cap;
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, caps };
}

/** `5 jobs at once, $2.50/hour`, for the start-up log. */
export function describeBackendCap(cap: BackendCap): string {
  return [
    cap.jobs !== undefined ? `${cap.jobs} job${cap.jobs === 1 ? "" : "s"} at once` : null,
    cap.usdPerHour !== undefined ? `$${cap.usdPerHour.toFixed(2)}/hour` : null,
  ]
    .filter(Boolean)
    .join(", ");
}
