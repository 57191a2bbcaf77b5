/** GCE_POOL and its companions, as the controller's configuration reads them. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadControllerConfig } from "../../src/config/env.js";
import { gceOptionsFromConfig } from "../../src/backends/gce/options-from-config.js";

const dir = mkdtempSync(join(tmpdir(), "agent-work-pool-env-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sshKey = join(dir, "worker_ed25519");
writeFileSync(sshKey, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n");
const base = { GCE_PROJECT: "my-project-123", GCE_SSH_PRIVATE_KEY_PATH: sshKey, GCE_ZONES: "us-central1-a,us-central1-b" };

describe("GCE_POOL", () => {
  it("is off by default: no pool in the backend's options", () => {
    const loaded = loadControllerConfig(base);
    if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
    expect(loaded.config.gce!.pool).toBeUndefined();
    expect(gceOptionsFromConfig(loaded.config.gce!).pool).toBeUndefined();
  });

  it("a number keeps that many of the default machine type in the first zone", () => {
    const loaded = loadControllerConfig({ ...base, GCE_POOL: "3", GCE_POOL_MAX_AGE_HOURS: "6", GCE_POOL_PARK: "stop" });
    if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
    expect(gceOptionsFromConfig(loaded.config.gce!)).toMatchObject({
      pool: [{ machineType: "e2-standard-2", zone: "us-central1-a", size: 3 }],
      poolMaxAgeSeconds: 21_600,
      poolPark: "stop",
    });
  });

  it("takes machine@zone=count pairs, and refuses a zone jobs may not run in or text it does not understand", () => {
    const loaded = loadControllerConfig({ ...base, GCE_POOL: "e2-standard-2@us-central1-a=2,e2-standard-4@us-central1-b=1" });
    if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
    expect(loaded.config.gce!.pool).toEqual([
      { machineType: "e2-standard-2", zone: "us-central1-a", size: 2 },
      { machineType: "e2-standard-4", zone: "us-central1-b", size: 1 },
    ]);
    const outside = loadControllerConfig({ ...base, GCE_POOL: "e2-standard-2@europe-west1-b=1" });
    expect(outside.ok).toBe(false);
    if (!outside.ok) expect(outside.errors.join("\n")).toMatch(/GCE_POOL.*europe-west1-b is not in GCE_ZONES/);
    const garbled = loadControllerConfig({ ...base, GCE_POOL: "lots" });
    expect(garbled.ok).toBe(false);
    if (!garbled.ok) expect(garbled.errors.join("\n")).toMatch(/GCE_POOL.*machine@zone=count/);
  });
});
