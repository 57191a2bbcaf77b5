/**
 * The gce worker VM's egress firewall (ansible/roles/worker/files/agent-work-egress-firewall, the
 * script the role installs and a boot unit runs before sshd), applied for real: in a network
 * namespace of its own (`unshare --net`, so the host's rules are untouched) with a loopback, a
 * private, the metadata and a "public" address and servers on them, the rules are made for the user
 * `nobody` and every connection is tried as nobody and as root. There is no VM here; the rules and
 * the kernel that enforces them are the real ones (iptables-nft).
 */
import { execa } from "execa";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const CHECKOUT = fileURLToPath(new URL("../../", import.meta.url));
const SCRIPT = path.join(CHECKOUT, "ansible/roles/worker/files/agent-work-egress-firewall");
const WORLD = path.join(CHECKOUT, "test/fixtures/firewall-world.mjs");

type Probes = Record<string, string>;
interface World {
  applied: { status: number; stderr: string };
  again: number;
  rules: string;
  rulesAfterBad: string;
  rules6: string;
  withCidr: { status: number; nobody: Probes };
  withMetadata: { status: number; nobody: Probes };
  nobody: Probes;
  root: Probes;
  removed: number;
  afterRemove: { rules: string; nobody: Probes };
  bad: { status: number; stderr: string }[];
}

let world: World;

beforeAll(async () => {
  const missing = (
    await Promise.all(
      ["iptables", "ip6tables", "unshare", "setpriv", "ip"].map(async (t) =>
        (await execa("sh", ["-c", `command -v ${t}`], { reject: false })).exitCode === 0 ? null : t,
      ),
    )
  ).filter(Boolean);
  if (missing.length > 0)
    throw new Error(`${missing.join(", ")} not found: apt-get install -y iptables iproute2 util-linux (see scripts/check-test-prereqs.mjs)`);
  const r = await execa("unshare", ["--net", "--", process.execPath, WORLD, SCRIPT], { reject: false, timeout: 120_000 });
  if (r.exitCode !== 0) throw new Error(`the firewall world failed (${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  world = JSON.parse(r.stdout) as World;
}, 150_000);

describe("the worker VM's egress firewall", () => {
  it("applies cleanly, twice, with one jump from OUTPUT for the user's packets", () => {
    expect(world.applied).toEqual({ status: 0, stderr: "" });
    expect(world.again).toBe(0);
    expect(world.rules.match(/^-A OUTPUT .*$/gm)).toEqual(["-A OUTPUT -m owner --uid-owner 65534 -j AGENT_WORK_EGRESS"]);
    expect(world.rules6.match(/^-A OUTPUT .*$/gm)).toEqual(["-A OUTPUT -m owner --uid-owner 65534 -j AGENT_WORK_EGRESS"]);
  });

  it("lets the user reach DNS at the resolver and TCP 80 and 443 of a public address, and nothing else", () => {
    expect(world.nobody).toEqual({
      "tcp 127.0.0.1:8080": "ECONNREFUSED",
      "tcp [::1]:8080": "ECONNREFUSED",
      "tcp private:443": "ECONNREFUSED",
      "tcp private:8080": "ECONNREFUSED",
      "tcp metadata:80": "ECONNREFUSED",
      "tcp metadata:53": "ok",
      "udp metadata:53": "ok",
      "tcp public:443": "ok",
      "tcp public:80": "ok",
      "tcp public:22": "ECONNREFUSED",
      "tcp public:8080": "ECONNREFUSED",
      "udp public:9999": "EPERM",
    });
  });

  it("holds only that user: root reaches every server in the same world", () => {
    for (const [name, result] of Object.entries(world.root)) expect(result, name).toBe("ok");
  });

  it("opens a named private range on 80 and 443 only (a GitHub Enterprise in the VPC), and never the metadata server", () => {
    expect(world.withCidr.status).toBe(0);
    expect(world.withCidr.nobody).toEqual({ "tcp private:443": "ok", "tcp private:8080": "ECONNREFUSED", "tcp metadata:80": "ECONNREFUSED" });
  });

  it("opens the metadata server's HTTP only when asked (GCE_TOKEN_DELIVERY=secret-manager needs it), and nothing else with it", () => {
    expect(world.withMetadata.status).toBe(0);
    expect(world.withMetadata.nobody).toEqual({ "tcp metadata:80": "ok", "tcp private:443": "ECONNREFUSED", "tcp 127.0.0.1:8080": "ECONNREFUSED" });
  });

  it("is taken away whole by remove", () => {
    expect(world.removed).toBe(0);
    expect(world.afterRemove.rules).not.toContain("AGENT_WORK_EGRESS");
    for (const [name, result] of Object.entries(world.afterRemove.nobody)) expect(result, name).toBe("ok");
  });

  it("refuses an unknown user, a range that is not a CIDR, and an unknown action, changing nothing", () => {
    expect(world.bad.map((b) => b.status)).toEqual([2, 2, 2]);
    expect(world.bad[0]!.stderr).toMatch(/no user no-such-user-here$/);
    expect(world.bad[1]!.stderr).toMatch(/10\.0\.0\.0\/8;reboot is not an IPv4 CIDR$/);
    expect(world.bad[2]!.stderr).toMatch(/^usage: /);
    expect(world.rulesAfterBad).toBe(world.rules);
  });
});
