/**
 * The loader the SSH start command runs (src/remote/run-worker-over-ssh.ts): it unpacks the worker's
 * files from the head of stdin and imports the entry in the same process, which then reads the
 * WorkerInput from what is left. Run here with this machine's node, in a folder laid out like a job's.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LOADER_SCRIPT, workerFilesPreamble } from "../../src/remote/run-worker-over-ssh.js";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Runs the loader in `<job>/work` with `chunks` written to its stdin one by one, a pause between. */
async function load(chunks: string[]): Promise<{ code: number | null; stdout: string; stderr: string; job: string }> {
  const job = mkdtempSync(path.join(os.tmpdir(), "aw-loader-"));
  dirs.push(job);
  mkdirSync(path.join(job, "work"));
  const child = spawn(process.execPath, ["-e", LOADER_SCRIPT], { cwd: path.join(job, "work"), stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  child.stdin.on("error", () => undefined);
  const done = new Promise<number | null>((resolve) => child.on("close", resolve));
  for (const chunk of chunks) {
    child.stdin.write(chunk);
    await new Promise((r) => setTimeout(r, 50));
  }
  child.stdin.end();
  return { code: await done, stdout, stderr, job };
}

/** An entry that echoes its stdin: what the worker would read as its input. */
const ECHO = `process.stdin.on("data", (d) => process.stdout.write(d));`;

describe("the worker loader", () => {
  it("unpacks the files privately and leaves every byte of the input, however it arrives, to the worker", async () => {
    const files = { "agent-work-worker.mjs": ECHO, "lib/unused.mjs": "export const ünïcode = 'é';\n" };
    const input = `{"jobId":"j1","token":"ghs_secret"}\n`;
    const all = workerFilesPreamble(files) + input;
    // Split inside the header, inside the files and right at the input's start.
    const r = await load([all.slice(0, 5), all.slice(5, 40), all.slice(40, all.length - input.length), input.slice(0, 7), input.slice(7)]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(input);
    expect(readFileSync(path.join(r.job, "worker", "lib", "unused.mjs"), "utf8")).toBe(files["lib/unused.mjs"]);
    expect(statSync(path.join(r.job, "worker", "agent-work-worker.mjs")).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(r.job, "worker", "lib")).mode & 0o777).toBe(0o700);
  });

  it("refuses a file name that could leave the worker's folder, and runs nothing", async () => {
    const r = await load([workerFilesPreamble({ "agent-work-worker.mjs": ECHO, "../escape.mjs": "x" }) + "{}\n"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("refused worker file name");
    expect(r.stdout).toBe("");
    expect(existsSync(path.join(r.job, "escape.mjs"))).toBe(false);
    expect(existsSync(path.join(r.job, "worker"))).toBe(false);
  });

  it("refuses stdin that does not start with the files' length", async () => {
    const r = await load([`{"jobId":"j1"}\n`]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
  });
});
