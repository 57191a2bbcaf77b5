import { describe, expect, it } from "vitest";
import { JobLog, type LogLine } from "../../src/logs/job-log.js";
import { STORE_KINDS, useTestStores } from "../support/postgres.js";

describe.each(STORE_KINDS)("job log on %s", (kind) => {
  const stores = useTestStores(kind);

  it("keeps every line of every job in order, and tells live subscribers the ids it stored", async () => {
    let now = 1_790_000_000_000;
    const log = new JobLog(await stores.fresh(), () => now++);
    const heard: LogLine[] = [];
    const unsubscribe = log.subscribe("ja", (line) => heard.push(line));
    // More lines than one insert takes, two jobs interleaved.
    for (let i = 0; i < 1200; i++) {
      log.append("ja", "stdout", `a line ${i}`);
      if (i % 3 === 0) log.append("jb", "stderr", `b line ${i}`);
    }
    await log.flush();
    unsubscribe();
    const stored = await log.read("ja");
    expect(stored.map((l) => l.line)).toEqual(Array.from({ length: 1200 }, (_, i) => `a line ${i}`));
    expect(heard).toEqual(stored);
    expect(stored.every((l, i) => i === 0 || l.id > stored[i - 1]!.id)).toBe(true);
    expect(typeof stored[0]!.at).toBe("number");
    expect((await log.read("jb")).map((l) => l.stream)).toEqual(Array.from({ length: 400 }, () => "stderr"));
  });

  it("reads on from the last id a page saw, for a stream that reconnects", async () => {
    const log = new JobLog(await stores.fresh());
    for (let i = 0; i < 5; i++) log.append("ja", "stdout", `line ${i}`);
    await log.flush();
    const [, second] = await log.read("ja");
    expect((await log.read("ja", second!.id)).map((l) => l.line)).toEqual(["line 2", "line 3", "line 4"]);
    expect(await log.read("ja", 0, 2)).toHaveLength(2);
  });

  it("deletes lines past retention and says how many went", async () => {
    let now = 1_000;
    const log = new JobLog(await stores.fresh(), () => now);
    log.append("ja", "stdout", "old");
    log.append("ja", "stdout", "old too");
    now = 50_000;
    log.append("ja", "stdout", "new");
    await log.flush();
    expect(await log.prune(10_000)).toBe(2);
    expect((await log.read("ja")).map((l) => l.line)).toEqual(["new"]);
  });
});
