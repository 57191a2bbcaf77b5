import { gce } from "./gce/gce-backend.js";
import { k8s } from "./k8s/k8s-backend.js";
import { local } from "./local/local-backend.js";
import { ssh } from "./ssh/ssh-backend.js";
import type { BackendModule } from "./types.js";

/** Every backend plugin this build knows, by name. Each folder adds itself here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each module has its own options type
export const backendModules = [local, ssh, gce, k8s] as const satisfies readonly BackendModule<any>[];

export type BackendName = (typeof backendModules)[number]["name"];

export function findBackendModule(name: string): (typeof backendModules)[number] | undefined {
  return backendModules.find((m) => m.name === name);
}
