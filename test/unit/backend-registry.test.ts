import { describe, expect, it } from "vitest";
import { BACKEND_NAMES } from "../../src/backends/backend-names.js";
import { BACKENDS, loadBackendModule } from "../../src/backends/registry.js";
import { AVAILABLE_BACKENDS } from "../../src/config/repo-config.js";

describe("the backend registry", () => {
  it("lists exactly the names configuration accepts, in the same order", () => {
    expect(BACKENDS.map((b) => b.name)).toEqual([...BACKEND_NAMES]);
    expect([...AVAILABLE_BACKENDS]).toEqual([...BACKEND_NAMES]);
  });

  it("loads each backend's module by name, and the module carries that name", async () => {
    for (const name of BACKEND_NAMES) expect((await loadBackendModule(name))?.name).toBe(name);
    expect(await loadBackendModule("nope")).toBeUndefined();
  });

  it("turns on only local with an empty configuration, and each other backend from its own setting", () => {
    const on = (config: object) => BACKENDS.filter((b) => b.enabled(config as never)).map((b) => b.name);
    expect(on({})).toEqual(["local"]);
    expect(on({ localBackend: false })).toEqual([]);
    expect(on({ localBackend: false, sshHostsFile: "/h.yml", gce: {}, k8s: {}, cloudrun: {} })).toEqual(["ssh", "gce", "k8s", "cloudrun"]);
  });
});
