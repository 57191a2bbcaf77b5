/**
 * The worker's git credential helper on its own (worker/lib/git.mjs): the token goes to this job's
 * remote — scheme, host with its port, and path exactly — and to nothing else git may ask about,
 * whatever a config or a redirect led git to. The hostile corpus shows no request reaches another
 * server; this shows the helper would not answer one if it did.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
// @ts-expect-error the worker is plain JavaScript with no declarations
import { armCredentials, disarmCredentials } from "../../worker/lib/git.mjs";

const TOKEN = "ghs_0123456789abcdefghijklmnopqrstuvwxyzAB";
const dirs: string[] = [];

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function armed(remoteUrl: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-credential-"));
  dirs.push(dir);
  armCredentials(dir, TOKEN, remoteUrl);
  return dir;
}

/** What the helper prints when git asks it `action` with these fields, as git writes them on stdin. */
function ask(dir: string, fields: Record<string, string>, action = "get"): string {
  const input =
    Object.entries(fields)
      .map(([k, v]) => `${k}=${v}\n`)
      .join("") + "\n";
  return execFileSync(process.execPath, [path.join(dir, "credential.mjs"), action], { input, encoding: "utf8", timeout: 10_000 });
}

const ANSWER = `username=x-access-token\npassword=${TOKEN}\n`;

describe("the worker's credential helper", () => {
  it("answers git with the token for the job's own remote", () => {
    const dir = armed("https://github.com/octo/demo.git");
    expect(ask(dir, { protocol: "https", host: "github.com", path: "octo/demo.git" })).toBe(ANSWER);
  });

  it.each([
    ["another host", { protocol: "https", host: "evil.example", path: "octo/demo.git" }],
    ["the host on another port", { protocol: "https", host: "github.com:8443", path: "octo/demo.git" }],
    ["a host that only starts like it", { protocol: "https", host: "github.com.evil.example", path: "octo/demo.git" }],
    ["plain http to the same host", { protocol: "http", host: "github.com", path: "octo/demo.git" }],
    ["another repository of the same owner", { protocol: "https", host: "github.com", path: "octo/other.git" }],
    ["a path below the repository", { protocol: "https", host: "github.com", path: "octo/demo.git/../other.git" }],
    ["the path without .git", { protocol: "https", host: "github.com", path: "octo/demo" }],
    ["no path at all (a helper asked without useHttpPath)", { protocol: "https", host: "github.com" }],
  ])("gives nothing for %s", (_what, fields) => {
    const dir = armed("https://github.com/octo/demo.git");
    expect(ask(dir, fields)).toBe("");
  });

  it("binds the port of a remote that names one", () => {
    const dir = armed("http://127.0.0.1:41234/octo/demo.git");
    expect(ask(dir, { protocol: "http", host: "127.0.0.1:41234", path: "octo/demo.git" })).toBe(ANSWER);
    expect(ask(dir, { protocol: "http", host: "127.0.0.1:41235", path: "octo/demo.git" })).toBe("");
    expect(ask(dir, { protocol: "http", host: "127.0.0.1", path: "octo/demo.git" })).toBe("");
  });

  it("answers only `get`: a `store` or `erase` git sends with the token prints nothing", () => {
    const dir = armed("https://github.com/octo/demo.git");
    const fields = { protocol: "https", host: "github.com", path: "octo/demo.git", username: "x-access-token", password: TOKEN };
    expect(ask(dir, fields, "store")).toBe("");
    expect(ask(dir, fields, "erase")).toBe("");
  });

  it("has nothing to give once disarmed, even for the job's own remote", () => {
    const dir = armed("https://github.com/octo/demo.git");
    disarmCredentials(dir);
    expect(ask(dir, { protocol: "https", host: "github.com", path: "octo/demo.git" })).toBe("");
  });

  it("takes a field git sends twice at its last value, never answering for a host it did not end on", () => {
    const dir = armed("https://github.com/octo/demo.git");
    const input = "protocol=https\nhost=github.com\nhost=evil.example\npath=octo/demo.git\n\n";
    expect(execFileSync(process.execPath, [path.join(dir, "credential.mjs"), "get"], { input, encoding: "utf8" })).toBe("");
  });
});
