/**
 * ansible/: the playbook parses, and runs in --check mode over SSH against a real sshd on
 * 127.0.0.1 (as its unprivileged user, so without become, and without the package tasks, which
 * need root and the network), rendering every template without changing the host.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { NodeSSH } from "node-ssh";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSshd, type TestSshd } from "../support/sshd.js";

const ANSIBLE = path.resolve(import.meta.dirname, "../../ansible");
const CONTROLLER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK6tEstKeyForTheControllerOnly0123456789ab agent-work-controller";
let sshd: TestSshd;
let dir: string;

async function hostKeyLine(s: TestSshd): Promise<string> {
  const ssh = new NodeSSH();
  let line = "";
  await ssh
    .connect({ host: s.host, port: s.port, username: "probe", password: "x", readyTimeout: 5000, hostVerifier: (key: Buffer) => ((line = `ssh-ed25519 ${key.toString("base64")}`), false) })
    .catch(() => undefined);
  ssh.dispose();
  return `[${s.host}]:${s.port} ${line}\n`;
}

function playbook(args: string[], extraVars: Record<string, string> = {}) {
  const vars = { ansible_port: String(sshd.port), ansible_user: sshd.username, ansible_ssh_private_key_file: path.join(dir, "key"), agent_work_become: "false", ...extraVars };
  return execa("ansible-playbook", [...args, "-i", `${sshd.host},`, "-e", JSON.stringify(vars), path.join(ANSIBLE, "provision.yml")], {
    reject: false,
    env: {
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_LOCAL_TEMP: dir,
      ANSIBLE_SSH_CONTROL_PATH_DIR: dir,
      ANSIBLE_SSH_TRANSFER_METHOD: "piped",
      ANSIBLE_RETRY_FILES_ENABLED: "0",
      // The host key is pinned, as on a real bake: a known_hosts file with the sshd's key.
      ANSIBLE_SSH_ARGS: `-o UserKnownHostsFile=${path.join(dir, "known_hosts")} -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=30s`,
    },
  });
}

beforeAll(async () => {
  sshd = await startSshd();
  dir = await mkdtemp(path.join(os.tmpdir(), "agent-work-ansible-"));
  await writeFile(path.join(dir, "key"), sshd.privateKey, { mode: 0o600 });
  await writeFile(path.join(dir, "known_hosts"), await hostKeyLine(sshd));
}, 30_000);
afterAll(async () => {
  await sshd?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("ansible/", () => {
  it("provision.yml passes ansible-playbook --syntax-check", async () => {
    const r = await execa("ansible-playbook", ["--syntax-check", "-i", "localhost,", path.join(ANSIBLE, "provision.yml")], { reject: false, env: { ANSIBLE_LOCAL_TEMP: os.tmpdir() } });
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it("runs in --check mode against a real sshd: the hardened sshd, the key-only login, /dev/shm as tmpfs, no changes", async () => {
    const r = await playbook(["--check", "--diff", "--skip-tags", "packages"], { controller_ssh_public_key: CONTROLLER_KEY });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/127\.0\.0\.1\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0/);
    expect(r.stdout).toContain(`+restrict ${CONTROLLER_KEY}`);
    for (const line of ["+PermitRootLogin no", "+PasswordAuthentication no", "+AllowTcpForwarding no", "+AllowUsers agent-work"]) expect(r.stdout).toContain(line);
    expect(r.stdout).toContain("+tmpfs /dev/shm tmpfs rw,nosuid,nodev");
    // --check changed nothing on the host.
    expect(existsSync("/etc/ssh/sshd_config.d/50-agent-work.conf")).toBe(false);
    expect(existsSync("/home/agent-work")).toBe(false);
  });

  it("refuses to provision a worker nobody can log in to", async () => {
    const r = await playbook(["--check", "--skip-tags", "packages"]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toContain("set controller_ssh_public_key to the public half of GCE_SSH_PRIVATE_KEY_PATH");
  });

  it("ships a bake script and a per-boot fallback that parse, and the bake script explains itself", async () => {
    for (const script of ["bake-image.sh", "per-boot-startup.sh"]) expect((await execa("bash", ["-n", path.join(ANSIBLE, script)], { reject: false })).exitCode, script).toBe(0);
    const help = await execa(path.join(ANSIBLE, "bake-image.sh"), ["--help"], { reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("ansible/bake-image.sh PROJECT ZONE CONTROLLER_PUBLIC_KEY_FILE [FAMILY]");
    const usage = await execa(path.join(ANSIBLE, "bake-image.sh"), [], { reject: false });
    expect(usage.exitCode).toBe(2);
  });
});
