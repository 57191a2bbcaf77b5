/**
 * The controller's start-up probe (src/probe-sandbox.ts) against a kernel that really refuses what
 * bubblewrap needs, not a stand-in bwrap: `npm start`'s program (src/main.ts) runs as root of a
 * user namespace of its own whose `user.max_user_namespaces` is 0, so the one namespace the agent's
 * sandbox cannot do without — the agent's own user namespace (as root: after the drop to nobody;
 * as a user: bubblewrap's) — is refused by the kernel, as Docker's default seccomp profile or a
 * host without unprivileged user namespaces refuse it. It must stop at start with the fix, not
 * start and fail every job. No Docker engine runs on these machines; this is the same refusal one
 * level down. The same namespace with the limit left alone starts the controller: the refusal is
 * what stops it.
 */
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { compiledArgs } from "../support/compiled-args.js";
import { freePort } from "../support/harness.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = path.join(ROOT, "src", "main.ts");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const { privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/**
 * src/main.ts in a new user namespace that maps this machine's uids 0–65535 to themselves (written
 * from here, as root: the namespace's root then has every capability inside it). Until the map is
 * written its process waits, then execs anew so that it runs as that root. `refuse` sets the
 * namespace's user.max_user_namespaces to 0 first; `asNobody` then drops to uid 65534 before main.
 * Ends when main exits, or once `startedWhen` matches its output (then it is stopped with SIGTERM).
 */
function mainInUserNamespace(options: { refuse: boolean; asNobody?: boolean; startedWhen?: RegExp }): Promise<Run> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-userns-"));
  dirs.push(dir);
  chmodSync(dir, 0o777);
  const steps = [
    options.refuse ? "echo 0 > /proc/sys/user/max_user_namespaces" : "true",
    options.asNobody ? 'exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"' : 'exec "$@"',
  ];
  const inner = steps.join(" && ");
  const outer = 'echo mapped-please; read _; exec sh -c "$0" sh "$@"';
  return freePort().then(
    (port) =>
      new Promise<Run>((resolve, reject) => {
        const child = spawn("unshare", ["--user", "--", "sh", "-c", outer, inner, process.execPath, ...compiledArgs(MAIN)], {
          cwd: dir,
          env: {
            PATH: process.env.PATH!,
            HOME: dir,
            APP_ID: "1234",
            PRIVATE_KEY: privateKey,
            WEBHOOK_SECRET: "x".repeat(32),
            DATA_DIR: path.join(dir, "data"),
            PORT: String(port),
            HOST: "127.0.0.1",
            // The default metrics port is shared by every test file running at once.
            METRICS_PORT: "0",
            SCHEDULER_INTERVAL_MS: "600000",
          },
          stdio: ["pipe", "pipe", "pipe"],
          // A group of its own, so a SIGKILL also reaches whatever the namespace's shell left running.
          detached: true,
        });
        let output = "";
        let mapped = false;
        const killAll = () => {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            // already gone
          }
        };
        const kill = setTimeout(killAll, 90_000);
        const seen = (d: Buffer) => {
          output += d.toString();
          if (!mapped && output.includes("mapped-please\n")) {
            mapped = true;
            try {
              writeFileSync(`/proc/${child.pid}/uid_map`, "0 0 65536\n");
              writeFileSync(`/proc/${child.pid}/gid_map`, "0 0 65536\n");
            } catch (err) {
              killAll();
              return reject(err as Error);
            }
            child.stdin.end("go\n");
          }
          if (options.startedWhen?.test(output)) child.kill("SIGTERM");
        };
        child.stdout.on("data", seen);
        child.stderr.on("data", seen);
        child.on("error", reject);
        child.on("exit", (code, signal) => {
          clearTimeout(kill);
          resolve({ code, signal, output: output.replace("mapped-please\n", "") });
        });
      }),
  );
}

describe("the controller's start-up sandbox probe, against a kernel that refuses user namespaces", () => {
  it("stops the start with the fix when the controller runs as root (the agent's drop to nobody needs a user namespace)", { timeout: 120_000 }, async () => {
    const r = await mainInUserNamespace({ refuse: true });
    expect(r.code, r.output).toBe(2);
    expect(r.output).toMatch(
      /agent-work cannot start:\n {2}- bubblewrap is installed but cannot build the agent's sandbox here \(bwrap said: [^)]*No space left on device\)/,
    );
    expect(r.output).toContain("--security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined");
    expect(r.output).toContain("allow unprivileged user namespaces");
    expect(r.output).toContain("LOCAL_SANDBOX=none");
    expect(r.output).not.toContain("agent-work controller started");
  });

  it("stops the start with the fix when the controller runs as an unprivileged user (bubblewrap's own user namespace)", { timeout: 120_000 }, async () => {
    const r = await mainInUserNamespace({ refuse: true, asNobody: true });
    expect(r.code, r.output).toBe(2);
    expect(r.output).toMatch(
      /agent-work cannot start:\n {2}- bubblewrap is installed but cannot build the agent's sandbox here \(bwrap said: bwrap: [^\n]*(\(ENOSPC\)|No space left on device)\)\. /,
    );
    expect(r.output).toContain("--security-opt seccomp=unconfined");
    expect(r.output).not.toContain("agent-work controller started");
  });

  it("starts in the same namespace when the kernel allows them", { timeout: 120_000 }, async () => {
    const r = await mainInUserNamespace({ refuse: false, startedWhen: /agent-work controller started/ });
    expect(r.output).toContain("agent-work controller started");
    expect(r.output).not.toContain("cannot start");
  });
});
