import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Sqlite from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { startWalCheckpointer } from "../../src/store/wal-checkpointer.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function database() {
  const dir = mkdtempSync(path.join(tmpdir(), "agent-work-wal-"));
  dirs.push(dir);
  const file = path.join(dir, "store.sqlite");
  const sqlite = new Sqlite(file);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.exec("create table t (id integer primary key, v text)");
  return { sqlite, file };
}

const insert = (sqlite: Sqlite.Database, rows: number) => {
  const stmt = sqlite.prepare("insert into t (v) values (?)");
  for (let i = 0; i < rows; i++) stmt.run("x".repeat(2000));
};

describe("WAL checkpoints on a thread of their own (src/store/wal-checkpointer.ts)", () => {
  it("the writer's connection never checkpoints; the thread copies the log back into the database file", async () => {
    const control = database();
    control.sqlite.pragma("wal_autocheckpoint = 0");
    const { sqlite, file } = database();
    const checkpointer = startWalCheckpointer(sqlite, file, { intervalMs: 20 });
    expect(sqlite.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    // ~6 MB in 3,000 commits: past SQLite's own 1,000-page mark, where a commit would have checkpointed.
    insert(control.sqlite, 3000);
    insert(sqlite, 3000);
    // Nobody checkpoints the control: its database file still holds only the empty table.
    expect(statSync(control.file).size).toBeLessThan(64 * 1024);
    // Here the thread does, while the writer goes on.
    await vi.waitFor(() => expect(statSync(file).size).toBeGreaterThan(4 * 1024 * 1024), { timeout: 10_000, interval: 50 });
    await checkpointer.stop();
    expect(sqlite.prepare("select count(*) as n from t").get()).toEqual({ n: 3000 });
    sqlite.close();
    control.sqlite.close();
  });

  it("stop() ends the thread, which never holds the process open", async () => {
    const { sqlite, file } = database();
    const checkpointer = startWalCheckpointer(sqlite, file, { intervalMs: 20 });
    await checkpointer.stop();
    await checkpointer.stop();
    sqlite.close();
  });

  it("a thread that fails gives the checkpoints back to the writer's connection and says so", async () => {
    const { sqlite } = database();
    const onError = vi.fn();
    // A file the thread cannot open (fileMustExist): its start fails.
    const checkpointer = startWalCheckpointer(sqlite, "/nonexistent/agent-work.sqlite", { intervalMs: 20, onError });
    await vi.waitFor(() => expect(onError).toHaveBeenCalled(), { timeout: 10_000 });
    expect(sqlite.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
    await checkpointer.stop();
    sqlite.close();
  });
});
