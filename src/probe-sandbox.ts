import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Builds a trivial sandbox the way the worker builds the agent's (its own PID, IPC and UTS
 * namespaces, a fresh /proc, /dev and /tmp; as root the drop to nobody in a user namespace of its
 * own) and runs `true` in it. `bwrap --version` says bubblewrap is installed; only this says it
 * can work here: under Docker's default seccomp and AppArmor profiles, or a kernel that refuses
 * unprivileged user namespaces, every job would otherwise fail later, one by one.
 * Returns what went wrong, with the fix, or null when the sandbox works.
 */
export function probeSandbox(asRoot = process.getuid?.() === 0): string | null {
  const system = ["--ro-bind", "/usr", "/usr", ...["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"].flatMap((d) => ["--ro-bind-try", d, d])];
  const shape = asRoot ? ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"] : ["--unshare-all"];
  const inner = asRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", "--", "unshare", "--user", "--", "true"] : ["true"];
  const r = spawnSync(
    "bwrap",
    ["--die-with-parent", "--new-session", ...shape, ...system, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", ...inner],
    {
      encoding: "utf8",
      timeout: 15_000,
    },
  );
  if (r.status === 0) return null;
  const said = (r.error?.message ?? r.stderr ?? "").trim().split("\n")[0] || `exit ${r.status ?? r.signal}`;
  const inContainer = existsSync("/.dockerenv") || existsSync("/run/.containerenv");
  const fixes = [
    `${inContainer ? "this looks like a container: " : "in a container, "}run it with \`--security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined\` (Docker's default profiles refuse the namespaces and the /proc mount bubblewrap needs; README.md, "Run with Docker")`,
    "on a host, allow unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1`; Ubuntu 23.10+: `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`)",
    "or run jobs on the ssh, gce or k8s backend, or set LOCAL_SANDBOX=none to run agents unsandboxed (they can then read everything this user can)",
  ];
  return `bubblewrap is installed but cannot build the agent's sandbox here (bwrap said: ${said}). ${fixes.join("; ")}`;
}
