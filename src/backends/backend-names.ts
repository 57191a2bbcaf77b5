/**
 * The names of the backends this build knows. A name only: what each one is, when it is on and how
 * it is loaded is in `registry.ts`, which lists exactly these (a unit test holds the two together).
 * Kept apart so configuration can validate a name without importing any backend.
 */
export const BACKEND_NAMES = ["local", "ssh", "gce", "k8s", "cloudrun"] as const;

export type BackendName = (typeof BACKEND_NAMES)[number];
