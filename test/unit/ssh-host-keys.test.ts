import { describe, expect, it } from "vitest";
import { SshHostKeyStore } from "../../src/store/ssh-host-keys.js";
import { STORE_KINDS, useTestStores } from "../support/postgres.js";

const A = "SHA256:uoQv3EiNR1mAkO4JEqC76Sl0TZI1OV91JZGwonfFEh8";
const B = "SHA256:Zm9vYmFyYmF6cXV4MDEyMzQ1Njc4OWFiY2RlZmdoaWo";

describe.each(STORE_KINDS)("remembered ssh host keys on %s", (kind) => {
  const stores = useTestStores(kind);

  it("keep the first key remembered for a host: a second process that saw another key gets the first back", async () => {
    const one = new SshHostKeyStore(await stores.fresh(), () => 1_790_000_000_000);
    const two = new SshHostKeyStore(await stores.another(), () => 1_790_000_060_000);
    expect(await one.recall("10.0.0.5:22")).toBeUndefined();
    expect(await one.remember("10.0.0.5:22", A)).toEqual({ fingerprint: A, since: 1_790_000_000_000 });
    expect(await two.remember("10.0.0.5:22", B)).toEqual({ fingerprint: A, since: 1_790_000_000_000 });
    expect(await two.recall("10.0.0.5:22")).toEqual({ fingerprint: A, since: 1_790_000_000_000 });
    // Per address and port: another port is another host.
    expect(await two.remember("10.0.0.5:2222", B)).toEqual({ fingerprint: B, since: 1_790_000_060_000 });
  });

  it("let a pin replace what was remembered, and leave an unchanged one as it was", async () => {
    let now = 1_790_000_000_000;
    const keys = new SshHostKeyStore(await stores.fresh(), () => now);
    await keys.remember("h:22", A);
    now += 1000;
    await keys.pin("h:22", A);
    expect(await keys.recall("h:22")).toEqual({ fingerprint: A, since: 1_790_000_000_000 });
    now += 1000;
    await keys.pin("h:22", B);
    await keys.pin("new:22", A);
    expect(await keys.list()).toEqual([
      { host: "h:22", fingerprint: B, since: 1_790_000_002_000 },
      { host: "new:22", fingerprint: A, since: 1_790_000_002_000 },
    ]);
  });
});
