/**
 * ansible/: the playbook parses, and runs in --check mode over SSH against a real sshd on
 * 127.0.0.1 (as its unprivileged user, so without become, and without the package tasks, which
 * need root and the network), rendering every template without changing the host. Then it really
 * runs, twice, as root over SSH into a bubblewrap sandbox whose /etc, /home, /root and
 * /usr/local/sbin are throwaway copies (so the host is untouched): the second run changes nothing.
 * Ansible is slow on a loaded machine: these tests get minutes, and assert no durations.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { NodeSSH } from "node-ssh";
import { afterAll, beforeAll, describe, it } from "vitest";
import { startSshd, type TestSshd } from "../support/sshd.js";

const ANSIBLE = path.resolve(import.meta.dirname, "../../ansible");
const CONTROLLER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK6tEstKeyForTheControllerOnly0123456789ab agent-work-controller";
let sshd: TestSshd;
let dir: string;

async function hostKeyLine(s: TestSshd): Promise<string> {
  const ssh = new NodeSSH();
  let line = "";
  await ssh
    .connect({
      host: s.host,
      port: s.port,
      username: "probe",
      password: "x",
      readyTimeout: 5000,
      hostVerifier: (key: Buffer) => ((line = `ssh-ed25519 ${key.toString("base64")}`), false),
    })
    .catch(() => undefined);
  ssh.dispose();
  return `[${s.host}]:${s.port} ${line}\n`;
}

const PLAYBOOK_TIMEOUT = 600_000;

function playbook(args: string[], extraVars: Record<string, string | string[]> = {}) {
  const vars = {
    ansible_port: String(sshd.port),
    ansible_user: sshd.username,
    ansible_ssh_private_key_file: path.join(dir, "key"),
    agent_work_become: "false",
    ...extraVars,
  };
  return execa("ansible-playbook", [...args, "-i", `${sshd.host},`, "-e", JSON.stringify(vars), path.join(ANSIBLE, "provision.yml")], {
    reject: false,
    env: {
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_LOCAL_TEMP: dir,
      ANSIBLE_SSH_CONTROL_PATH_DIR: dir,
      ANSIBLE_SSH_TRANSFER_METHOD: "piped",
      ANSIBLE_RETRY_FILES_ENABLED: "0",
      // One ssh session a task instead of three or four (put, run, clean up): the role runs in a
      // fraction of the time. Safe here: no sudo requiretty (root, or become without a tty).
      ANSIBLE_PIPELINING: "1",
      // The host key is pinned, as on a real bake: a known_hosts file with the sshd's key.
      ANSIBLE_SSH_ARGS: `-o UserKnownHostsFile=${path.join(dir, "known_hosts")} -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=30s`,
    },
  });
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

/**
 * A root sshd inside bubblewrap: the host's filesystem, except /etc (a copy), /home, /root,
 * /usr/local/sbin, /var/log and /var/mail (empty), so the role can really run as root and the
 * host keeps none of it. Its own pid namespace: killing bwrap ends sshd and every session.
 */
async function startSandboxedRootSshd(base: string): Promise<{ port: number; root: string; known: string; key: string; close: () => void }> {
  const root = path.join(base, "sandbox");
  const binds: Array<[string, string]> = [
    ["etc", "/etc"],
    ["home", "/home"],
    ["root", "/root"],
    ["usr-local-sbin", "/usr/local/sbin"],
    ["var-log", "/var/log"],
    ["var-mail", "/var/mail"],
  ];
  for (const [name, target] of binds) if (name !== "etc" && existsSync(target)) await mkdir(path.join(root, name), { recursive: true, mode: 0o755 });
  await execa("cp", ["-a", "/etc", path.join(root, "etc")]);
  // The role validates sshd's config, which needs host keys: a real VM has them, a bare copy may not.
  await mkdir(path.join(root, "etc/ssh"), { recursive: true });
  await execa("ssh-keygen", ["-A", "-f", root]);
  const hostKey = path.join(base, "sandbox_host_key");
  const key = path.join(base, "sandbox_client_key");
  await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
  await writeFile(path.join(base, "sandbox_authorized_keys"), await readFile(`${key}.pub`, "utf8"), { mode: 0o644 });
  let lastError = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = path.join(base, "sandbox_sshd_config");
    await writeFile(
      config,
      [
        "ListenAddress 127.0.0.1",
        `Port ${port}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(base, "sandbox_sshd.pid")}`,
        `AuthorizedKeysFile ${path.join(base, "sandbox_authorized_keys")}`,
        "AllowUsers root",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    const bindArgs = binds.filter(([name]) => existsSync(path.join(root, name))).flatMap(([name, target]) => ["--bind", path.join(root, name), target]);
    const child: ChildProcess = spawn(
      "bwrap",
      ["--dev-bind", "/", "/", ...bindArgs, "--proc", "/proc", "--unshare-pid", "--die-with-parent", "/usr/sbin/sshd", "-D", "-e", "-f", config],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let log = "";
    const listening = await new Promise<boolean>((resolve) => {
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (chunk: string) => {
        log += chunk;
        if (log.includes("Server listening")) resolve(true);
      });
      child.once("exit", () => resolve(false));
    });
    if (listening) {
      const hostLine = (await readFile(`${hostKey}.pub`, "utf8")).split(" ").slice(0, 2).join(" ");
      return { port, root, key, known: `[127.0.0.1]:${port} ${hostLine}\n`, close: () => void child.kill("SIGKILL") };
    }
    lastError = log;
    if (!/Address already in use/.test(log)) break;
  }
  throw new Error(`the sandboxed sshd did not start: ${lastError}`);
}

beforeAll(async () => {
  sshd = await startSshd();
  dir = await mkdtemp(path.join(os.tmpdir(), "agent-work-ansible-"));
  await writeFile(path.join(dir, "key"), sshd.privateKey, { mode: 0o600 });
  await writeFile(path.join(dir, "known_hosts"), await hostKeyLine(sshd));
}, 120_000);
afterAll(async () => {
  await sshd?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Concurrent: each case is one or two ansible-playbook runs (minutes each on a loaded machine) that
// share nothing they change: the --check runs only read the login sshd's host, and the real run
// has a sandboxed sshd of its own. One after another, the file took the sum of them.
describe.concurrent("ansible/", () => {
  it("provision.yml passes ansible-playbook --syntax-check", async ({ expect }) => {
    const r = await execa("ansible-playbook", ["--syntax-check", "-i", "localhost,", path.join(ANSIBLE, "provision.yml")], {
      reject: false,
      env: { ANSIBLE_LOCAL_TEMP: os.tmpdir() },
    });
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it(
    "runs in --check mode against a real sshd: the hardened sshd, the key-only login, /dev/shm as tmpfs, no changes",
    { timeout: PLAYBOOK_TIMEOUT },
    async ({ expect }) => {
      const r = await playbook(["--check", "--diff", "--skip-tags", "packages"], { controller_ssh_public_key: CONTROLLER_KEY });
      expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/127\.0\.0\.1\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0/);
      expect(r.stdout).toContain(`+restrict ${CONTROLLER_KEY}`);
      for (const line of ["+PermitRootLogin no", "+PasswordAuthentication no", "+AllowTcpForwarding no", "+AllowUsers agent-work"])
        expect(r.stdout).toContain(line);
      expect(r.stdout).toContain("+tmpfs /dev/shm tmpfs rw,nosuid,nodev");
      // --check changed nothing on the host.
      expect(existsSync("/etc/ssh/sshd_config.d/50-agent-work.conf")).toBe(false);
      expect(existsSync("/home/agent-work")).toBe(false);
      // Swap is set up for boot whatever this machine's memory: the script and its unit are rendered.
      expect(r.stdout).toContain("agent-work: swap when memory is below 2048 MB");
      expect(r.stdout).toMatch(/TASK \[worker : Swap unit runs at every boot \(systemd\)\]/);
      // The worker user's egress firewall, required by sshd (so a VM without it never takes a job).
      expect(r.stdout).toContain("+ExecStart=/usr/local/sbin/agent-work-egress-firewall apply agent-work\n");
      expect(r.stdout).toContain("+RequiredBy=ssh.service");
      expect(r.stdout).toMatch(/TASK \[worker : Egress firewall before sshd at every boot \(systemd\)\]/);
    },
  );

  it("really runs as root in a sandbox, then a second --check run reports no change", { timeout: PLAYBOOK_TIMEOUT * 2 }, async ({ expect }) => {
    const box = await startSandboxedRootSshd(dir);
    try {
      await writeFile(path.join(dir, "sandbox_known_hosts"), box.known);
      const run = (args: string[]) =>
        execa(
          "ansible-playbook",
          [
            ...args,
            "--skip-tags",
            "packages",
            "-i",
            "127.0.0.1,",
            "-e",
            JSON.stringify({
              ansible_port: String(box.port),
              ansible_user: "root",
              ansible_ssh_private_key_file: box.key,
              agent_work_become: "false",
              controller_ssh_public_key: CONTROLLER_KEY,
            }),
            path.join(ANSIBLE, "provision.yml"),
          ],
          {
            reject: false,
            env: {
              ANSIBLE_NOCOLOR: "1",
              ANSIBLE_LOCAL_TEMP: dir,
              ANSIBLE_SSH_CONTROL_PATH_DIR: dir,
              ANSIBLE_SSH_TRANSFER_METHOD: "piped",
              ANSIBLE_RETRY_FILES_ENABLED: "0",
              ANSIBLE_PIPELINING: "1",
              // One SSH connection for the run's tasks, as for the --check runs: a handshake a task
              // made the run take 36 s instead of 13 s alone. The sandboxed sshd reads its own config
              // (not the /etc/ssh the role writes), and killing it ends the master connection too.
              ANSIBLE_SSH_ARGS: `-o UserKnownHostsFile=${path.join(dir, "sandbox_known_hosts")} -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=30s`,
            },
          },
        );
      const first = await run([]);
      expect(first.exitCode, `${first.stdout}\n${first.stderr}`).toBe(0);
      expect(first.stdout).toMatch(/127\.0\.0\.1\s+: ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0/);
      // What the run made, inside the sandbox only.
      const etc = path.join(box.root, "etc");
      expect(await readFile(path.join(etc, "ssh/sshd_config.d/50-agent-work.conf"), "utf8")).toContain("AllowUsers agent-work");
      expect(readlinkSync(path.join(etc, "systemd/system/multi-user.target.wants/agent-work-swap.service"))).toBe(
        "/etc/systemd/system/agent-work-swap.service",
      );
      expect(await readFile(path.join(etc, "systemd/system/agent-work-swap.service"), "utf8")).toContain("ExecStart=/usr/local/sbin/agent-work-swap");
      const swapScript = path.join(box.root, "usr-local-sbin/agent-work-swap");
      expect(lstatSync(swapScript).mode & 0o777).toBe(0o755);
      expect((await execa("sh", ["-n", swapScript], { reject: false })).exitCode).toBe(0);
      expect(await readFile(path.join(etc, "passwd"), "utf8")).toMatch(/^agent-work:/m);
      expect(await readFile(path.join(box.root, "home/agent-work/.ssh/authorized_keys"), "utf8")).toBe(`restrict ${CONTROLLER_KEY}\n`);
      expect(await readFile(path.join(etc, "fstab"), "utf8")).toContain("tmpfs /dev/shm tmpfs rw,nosuid,nodev");
      // The egress firewall: the very script test/integration/vm-egress-firewall.test.ts applies,
      // and its unit, required by sshd.
      const firewall = path.join(box.root, "usr-local-sbin/agent-work-egress-firewall");
      expect(lstatSync(firewall).mode & 0o777).toBe(0o755);
      expect(await readFile(firewall, "utf8")).toBe(await readFile(path.join(ANSIBLE, "roles/worker/files/agent-work-egress-firewall"), "utf8"));
      expect(readlinkSync(path.join(etc, "systemd/system/ssh.service.requires/agent-work-egress-firewall.service"))).toBe(
        "/etc/systemd/system/agent-work-egress-firewall.service",
      );
      expect(await readFile(path.join(etc, "systemd/system/agent-work-egress-firewall.service"), "utf8")).toContain(
        "ExecStart=/usr/local/sbin/agent-work-egress-firewall apply agent-work\n",
      );
      // The host kept none of it.
      expect(existsSync("/etc/ssh/sshd_config.d/50-agent-work.conf")).toBe(false);
      expect(existsSync("/etc/systemd/system/agent-work-swap.service")).toBe(false);
      expect((await execa("id", ["agent-work"], { reject: false })).exitCode).not.toBe(0);

      const second = await run(["--check", "--diff"]);
      expect(second.exitCode, `${second.stdout}\n${second.stderr}`).toBe(0);
      expect(second.stdout, second.stdout).toMatch(/127\.0\.0\.1\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0/);
    } finally {
      box.close();
    }
  });

  it("refuses an option of the wrong type before changing anything (meta/argument_specs.yml)", { timeout: PLAYBOOK_TIMEOUT }, async ({ expect }) => {
    const r = await playbook(["--check", "--skip-tags", "packages"], { controller_ssh_public_key: CONTROLLER_KEY, swap_size_mb: "lots" });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toMatch(/argument spec|argument_spec/i);
    expect(r.stdout).toContain("swap_size_mb");
  });

  it(
    "refuses a private range for the egress firewall that is not an IPv4 CIDR, before it reaches a shell",
    { timeout: PLAYBOOK_TIMEOUT },
    async ({ expect }) => {
      const r = await playbook(["--check", "--skip-tags", "packages"], {
        controller_ssh_public_key: CONTROLLER_KEY,
        worker_egress_allow_cidrs: ["10.20.0.0/16", "10.0.0.0/8;reboot"],
      });
      expect(r.exitCode).not.toBe(0);
      expect(r.stdout).toContain("worker_egress_allow_cidrs takes IPv4 ranges such as 10.20.0.0/16");
      expect(r.stdout).toContain("10.0.0.0/8;reboot");
    },
  );

  it("refuses to provision a worker nobody can log in to", { timeout: PLAYBOOK_TIMEOUT }, async ({ expect }) => {
    const r = await playbook(["--check", "--skip-tags", "packages"]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toContain("set controller_ssh_public_key to the public half of GCE_SSH_PRIVATE_KEY_PATH");
  });

  it("ships a per-boot fallback that refuses a branch: it runs a pinned tag or commit", async ({ expect }) => {
    const script = await readFile(path.join(ANSIBLE, "per-boot-startup.sh"), "utf8");
    expect(script).not.toMatch(/^REF=main$/m);
    const ref = /^REF=(.*)$/m.exec(script)![1]!;
    // The same check the script makes, run by bash on the values an operator might write.
    const check = /^\[\[ "\$REF" =~ .*$/m.exec(script)![0];
    for (const [value, ok] of [
      ["main", false],
      [ref, false],
      ["v1.2.3", true],
      ["0123456789abcdef0123456789abcdef01234567", true],
      ["v1.2", false],
    ] as const) {
      const r = await execa("bash", ["-c", `REF='${value}'; ${check}; echo pinned`], { reject: false });
      expect(r.stdout.includes("pinned"), value).toBe(ok);
    }
  });

  it("ships a bake script and a per-boot fallback that parse, and the bake script explains itself", async ({ expect }) => {
    for (const script of ["bake-image.sh", "per-boot-startup.sh"])
      expect((await execa("bash", ["-n", path.join(ANSIBLE, script)], { reject: false })).exitCode, script).toBe(0);
    const help = await execa(path.join(ANSIBLE, "bake-image.sh"), ["--help"], { reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("ansible/bake-image.sh PROJECT ZONE CONTROLLER_PUBLIC_KEY_FILE [FAMILY]");
    const usage = await execa(path.join(ANSIBLE, "bake-image.sh"), [], { reject: false });
    expect(usage.exitCode).toBe(2);
  });
});
