/**
 * A real OpenSSH server on 127.0.0.1 for tests: its own temp folder with a generated host key, an
 * sshd_config that allows only public-key login for one unprivileged user, a fresh client key pair,
 * and `sshd -D -e` as a child process whose log lines are kept for assertions.
 *
 * Needs root (sshd must switch to the login user) and openssh-server (`/usr/sbin/sshd`). The login
 * user is created once with `useradd -m` and its password field set to `*`: with `UsePAM no`, sshd
 * refuses a locked account (`!` in /etc/shadow) even for key logins.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";

export interface TestSshd {
  host: string;
  port: number;
  username: string;
  /** The client's private key (OpenSSH format), authorised for `username`. */
  privateKey: string;
  /** The server's host key fingerprint as `ssh-keygen -l` prints it: `SHA256:<base64, no padding>`. */
  hostKeySha256: string;
  /** The login user's home folder. */
  home: string;
  /** Every line sshd has logged so far (stderr, at `logLevel`). */
  logs(): string[];
  /** Stops sshd and every session it started, and removes its folder. */
  close(): Promise<void>;
}

export interface TestSshdOptions {
  /** Login user; created if missing. Default `awtest`. */
  username?: string;
  /** sshd's LogLevel; DEBUG3 logs every command a session runs. Default VERBOSE. */
  logLevel?: "INFO" | "VERBOSE" | "DEBUG" | "DEBUG1" | "DEBUG2" | "DEBUG3";
}

export const SSHD_PATH = "/usr/sbin/sshd";

/** Fingerprint of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`), as `ssh-keygen -l -E sha256` prints it. */
export function fingerprintOfPublicKey(line: string): string {
  const blob = line.trim().split(/\s+/)[1];
  if (!blob) throw new Error("not an OpenSSH public key line");
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Creates the login user once; two test files racing to create it both end up with it. */
async function ensureUser(username: string): Promise<string> {
  const exists = async () => (await execa("id", ["-u", username], { reject: false })).exitCode === 0;
  if (!(await exists())) {
    const made = await execa("useradd", ["-m", "-s", "/bin/sh", username], { reject: false });
    if (made.exitCode !== 0 && !(await exists())) throw new Error(`cannot create the test user ${username}: ${made.stderr}`);
  }
  // Not locked (`!`), not usable for a password either: key logins only.
  await execa("usermod", ["-p", "*", username]);
  const home = (await execa("getent", ["passwd", username])).stdout.split(":")[5];
  if (!home) throw new Error(`no home folder for ${username}`);
  return home;
}

/** Pids of every live descendant of `pid` (sshd's per-connection children start sessions of their own). */
async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const child of parents.get(p) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

function waitForListening(child: ChildProcess, lines: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`sshd did not start listening within ${timeoutMs} ms:\n${lines.join("\n")}`)), timeoutMs);
    const onLine = () => {
      if (lines.some((l) => /Server listening on 127\.0\.0\.1 port/.test(l))) done();
    };
    const onExit = (code: number | null) => done(new Error(`sshd exited (${code}) before listening:\n${lines.join("\n")}`));
    function done(err?: Error) {
      clearTimeout(timer);
      child.stderr?.off("data", onLine);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve();
    }
    child.stderr?.on("data", onLine);
    child.once("exit", onExit);
    onLine();
  });
}

export async function startSshd(options: TestSshdOptions = {}): Promise<TestSshd> {
  const username = options.username ?? "awtest";
  const home = await ensureUser(username);
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });

  const dir = await mkdtemp(path.join(os.tmpdir(), "agent-work-sshd-"));
  // sshd reads AuthorizedKeysFile as the login user: the folder and file must be readable by it.
  await chmod(dir, 0o755);
  const hostKey = path.join(dir, "ssh_host_ed25519_key");
  const clientKey = path.join(dir, "client_ed25519");
  await Promise.all([
    execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "agent-work-test-host", "-f", hostKey]),
    execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "agent-work-test-client", "-f", clientKey]),
  ]);
  const authorizedKeys = path.join(dir, "authorized_keys");
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`, "utf8"), { mode: 0o644 });
  await chmod(authorizedKeys, 0o644);
  const hostKeySha256 = fingerprintOfPublicKey(await readFile(`${hostKey}.pub`, "utf8"));
  const privateKey = await readFile(clientKey, "utf8");

  let lastError: Error | undefined;
  // A free port can be taken between the probe and sshd's bind: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = path.join(dir, "sshd_config");
    await writeFile(
      config,
      [
        `ListenAddress 127.0.0.1`,
        `Port ${port}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        `AllowUsers ${username}`,
        `UsePAM no`,
        `PasswordAuthentication no`,
        `KbdInteractiveAuthentication no`,
        `PubkeyAuthentication yes`,
        `PermitRootLogin no`,
        `StrictModes no`,
        `PermitUserEnvironment no`,
        `AllowTcpForwarding no`,
        `X11Forwarding no`,
        // The backends open several channels on one pooled connection at once.
        `MaxSessions 64`,
        `MaxStartups 64`,
        `LogLevel ${options.logLevel ?? "VERBOSE"}`,
        "",
      ].join("\n"),
    );
    const child = spawn(SSHD_PATH, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    const lines: string[] = [];
    let partial = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      partial += chunk;
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts.map((l) => l.replace(/\r$/, "")).filter((l) => l.trim() !== ""));
    });
    try {
      await waitForListening(child, lines, 10_000);
    } catch (err) {
      child.kill("SIGKILL");
      lastError = err as Error;
      if (/Address already in use/.test(lastError.message)) continue;
      break;
    }
    let closed: Promise<void> | undefined;
    return {
      host: "127.0.0.1",
      port,
      username,
      privateKey,
      hostKeySha256,
      home,
      logs: () => [...lines, ...(partial.trim() ? [partial.replace(/\r$/, "")] : [])],
      close() {
        closed ??= (async () => {
          const sessions = child.pid === undefined ? [] : await descendants(child.pid);
          const exited = new Promise<void>((resolve) =>
            child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve()),
          );
          child.kill("SIGTERM");
          for (const pid of sessions) {
            try {
              process.kill(pid, "SIGKILL");
            } catch {
              // gone already
            }
          }
          await exited;
          await rm(dir, { recursive: true, force: true });
        })();
        return closed;
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError ?? new Error("sshd did not start");
}
