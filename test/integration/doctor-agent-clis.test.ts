/**
 * `agent-work doctor` reports the agent CLIs' versions each backend has, against the pinned list
 * (agent-clis/package.json): on this machine and on an ssh host (a real sshd) by running the real
 * CLIs' `--version` where the worker looks for them; on a GCE image from the labels
 * ansible/bake-image.sh writes (the fake Compute API serves them); for k8s it says what it cannot see.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageLabelKey, PINNED_AGENT_CLIS, readPinnedVersions, versionFromImageLabel } from "../../src/agents/agent-cli-versions.js";
import { checkGce } from "../../src/cli/doctor/check-gce.js";
import type { DoctorCheck } from "../../src/cli/doctor/doctor-check.js";
import { formatDoctorLine, runDoctor } from "../../src/cli/doctor/run-doctor.js";
import { loadControllerConfig } from "../../src/config/env.js";
import { agentCliBin, PINNED_CLI_VERSIONS } from "../support/agent-clis.js";
import { startFakeGcp, type FakeGcp } from "../support/fake-gcp.js";
import { startSshd, type TestSshd } from "../support/sshd.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const pinned = readPinnedVersions();
let dir: string;
let sshd: TestSshd;

/** A folder the worker would search: the real claude, a codex one release behind, an opencode that answers nonsense. */
function agentFolder(): string {
  const bin = path.join(dir, "agents");
  mkdirSync(bin, { mode: 0o755 });
  symlinkSync(path.join(agentCliBin("@anthropic-ai/claude-code", "claude"), "claude"), path.join(bin, "claude"));
  writeFileSync(path.join(bin, "codex"), "#!/bin/sh\necho 'codex-cli 0.170.0'\n", { mode: 0o755 });
  // A hostile or broken CLI: escape sequences and a long line, no version.
  writeFileSync(path.join(bin, "opencode"), `#!/bin/sh\nprintf '\\033[31m%s\\n' '${"A".repeat(1000)}'\n`, { mode: 0o755 });
  return bin;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "doctor-agent-clis-"));
  chmodSync(dir, 0o755);
  sshd = await startSshd();
}, 120_000);
afterAll(async () => {
  await sshd?.close();
  rmSync(dir, { recursive: true, force: true });
});

const lines = (checks: DoctorCheck[], where: string) => checks.filter((c) => c.name.startsWith(`${where}: `));

describe("agent-work doctor, the agent CLIs", () => {
  it("on this machine and on an ssh host: the pinned version is ok, another one or none readable is named beside the pin", { timeout: 180_000 }, async () => {
    const agents = agentFolder();
    const key = path.join(dir, "host.key");
    writeFileSync(key, sshd.privateKey, { mode: 0o600 });
    const hosts = path.join(dir, "hosts.yml");
    writeFileSync(
      hosts,
      `hosts:\n  - name: build-1\n    address: ${sshd.host}\n    port: ${sshd.port}\n    user: ${sshd.username}\n    privateKeyPath: ${key}\n    hostKeySha256: ${sshd.hostKeySha256}\n    slots: 1\n`,
    );
    // The worker's PATH after the agents' folder: the real claude is a node program.
    const report = await runDoctor(
      { DATA_DIR: path.join(dir, "data"), SSH_HOSTS_FILE: hosts, HOME: dir },
      { agentPath: `${agents}:/usr/local/bin:/usr/bin:/bin` },
    );
    for (const where of ["local", "ssh host build-1"]) {
      const found = lines(report.checks, where);
      expect(
        found.map((c) => [c.name, c.status]),
        where,
      ).toEqual([
        [`${where}: claude (claude-code)`, "ok"],
        [`${where}: codex (codex)`, "warn"],
        [`${where}: opencode (opencode)`, "warn"],
      ]);
      expect(found[0]!.detail).toBe(`${PINNED_CLI_VERSIONS["@anthropic-ai/claude-code"]}, the pinned version`);
      expect(found[1]!.detail).toBe(
        `0.170.0, but agent-clis/package.json pins ${pinned["@openai/codex"]}: that version is not the one the presets are tested with`,
      );
      expect(found[2]!.detail).toMatch(/^no version in its answer \((\[31m)?A+\), but agent-clis\/package\.json pins /);
      // What a CLI says is data: no escape sequence reaches the terminal, and it is cut short.
      expect(found[2]!.detail).not.toMatch(/\x1b/);
      expect(found[2]!.detail.length).toBeLessThan(300);
    }
    expect(lines(report.checks, "ssh host build-1")[1]!.fix).toBe(
      "on the host: npm install -g @openai/codex@" + pinned["@openai/codex"] + " (or run ansible/provision.yml, which installs agent-clis/ as pinned)",
    );
  });

  it("fails where the default agent's CLI is missing, with the command that installs it, and only notes the others", { timeout: 120_000 }, async () => {
    const empty = path.join(dir, "empty");
    mkdirSync(empty, { recursive: true });
    const report = await runDoctor({ DATA_DIR: path.join(dir, "data2"), HOME: dir }, { agentPath: empty });
    const found = lines(report.checks, "local");
    expect(found.map((c) => c.status)).toEqual(["fail", "skip", "skip"]);
    expect(formatDoctorLine(found[0]!)).toBe(
      "FAIL  local: claude (claude-code): not installed where the worker looks (PATH /usr/local/bin:/usr/bin:/bin); DEFAULT_AGENT is claude-code, so jobs fail there\n" +
        `      → npm install -g @anthropic-ai/claude-code@${pinned["@anthropic-ai/claude-code"]} (it must land in /usr/local/bin or /usr/bin, where the worker looks)`,
    );
    expect(found[1]!.detail).toMatch(/only repositories that choose codex need it$/);
    expect(report.ok).toBe(false);
    // With another default agent nothing fails for want of claude.
    const other = await runDoctor({ DATA_DIR: path.join(dir, "data2"), HOME: dir, DEFAULT_AGENT: "codex" }, { agentPath: empty });
    expect(lines(other.checks, "local").map((c) => c.status)).toEqual(["skip", "fail", "skip"]);
  });
});

describe("agent-work doctor, the agent CLIs of a baked GCE image", () => {
  let fake: FakeGcp;
  const keyPath = () => path.join(dir, "gce.key");
  const family = "projects/test-project/global/images/family/agent-work-worker";
  const plain = "projects/test-project/global/images/family/unlabelled";

  beforeAll(async () => {
    writeFileSync(keyPath(), "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n");
    // The labels bake-image.sh writes, from the very script it runs.
    const written = execFileSync("python3", [path.join(ROOT, "ansible/agent-cli-labels.py"), path.join(ROOT, "agent-clis/package.json")], {
      encoding: "utf8",
    }).trim();
    const labels = Object.fromEntries(written.split(",").map((kv) => kv.split("=") as [string, string]));
    labels["agent-cli-codex"] = "0_170_0";
    fake = await startFakeGcp({
      images: [family, plain],
      imageLabels: { [family]: { "agent-work-image": "20261204", ...labels } },
      machineTypes: ["e2-standard-2"],
    });
  });
  afterAll(async () => {
    await fake?.close();
  });

  async function gceChecks(image: string): Promise<DoctorCheck[]> {
    const loaded = loadControllerConfig({ GCE_PROJECT: "test-project", GCE_ZONES: "us-central1-a", GCE_SSH_PRIVATE_KEY_PATH: keyPath(), GCE_IMAGE: image });
    if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
    const checks: DoctorCheck[] = [];
    await checkGce(
      { ...loaded.config, gce: loaded.config.gce! },
      { clientOptions: fake.clientOptions(), credentials: async () => ({ principal: "c@p.iam.gserviceaccount.com" }) },
      (c) => checks.push(c),
    );
    return checks;
  }

  it("bake-image.sh's labels say the pinned versions, and read back to them", () => {
    const written = execFileSync("python3", [path.join(ROOT, "ansible/agent-cli-labels.py"), path.join(ROOT, "agent-clis/package.json")], {
      encoding: "utf8",
    }).trim();
    const labels = Object.fromEntries(written.split(",").map((kv) => kv.split("=") as [string, string]));
    for (const cli of PINNED_AGENT_CLIS) {
      expect(labels[imageLabelKey(cli)], cli.pkg).toMatch(/^[a-z0-9_-]{1,63}$/);
      expect(versionFromImageLabel(labels[imageLabelKey(cli)]), cli.pkg).toBe(pinned[cli.pkg]);
    }
  });

  it("reads the image's labels: the pinned one ok, another version named, a missing one noted", async () => {
    const found = (await gceChecks(family)).filter((c) => c.name.startsWith("gce image agent-work-worker: "));
    expect(found.map((c) => [c.name, c.status])).toEqual([
      ["gce image agent-work-worker: claude (claude-code)", "ok"],
      ["gce image agent-work-worker: codex (codex)", "warn"],
      ["gce image agent-work-worker: opencode (opencode)", "ok"],
    ]);
    expect(found[1]!.detail).toMatch(/^0\.170\.0, but agent-clis\/package\.json pins /);
    expect(found[1]!.fix).toBe("bake the image again from this checkout: ansible/bake-image.sh test-project us-central1-a <controller key>.pub");
  });

  it("says plainly when an image carries no such labels", async () => {
    const found = (await gceChecks(plain)).filter((c) => c.name.startsWith("gce image unlabelled"));
    expect(found).toEqual([
      expect.objectContaining({
        name: "gce image unlabelled: agent CLIs",
        status: "skip",
        detail: expect.stringMatching(/no agent-cli-\* labels .* doctor cannot see which CLI versions it holds/),
      }),
    ]);
  });
});

describe("the images declare the pinned list", () => {
  it("k8s/worker.Dockerfile and the controller's Dockerfile label the image with exactly agent-clis/package.json", async () => {
    const { agentClisLabelValue, AGENT_CLIS_IMAGE_LABEL } = await import("../../src/agents/agent-cli-versions.js");
    const { readFileSync } = await import("node:fs");
    for (const file of ["k8s/worker.Dockerfile", "Dockerfile"]) {
      const label = new RegExp(`^LABEL ${AGENT_CLIS_IMAGE_LABEL.replaceAll(".", "\\.")}="([^"]*)"$`, "m").exec(
        readFileSync(path.join(ROOT, file), "utf8"),
      )?.[1];
      expect(label, file).toBe(agentClisLabelValue(pinned));
    }
  });
});
