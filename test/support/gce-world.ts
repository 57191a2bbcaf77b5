/**
 * A gce "world" for tests: the fake Compute/Secret Manager on 127.0.0.1 through the real clients,
 * and a real sshd on 127.0.0.1 standing in for every VM, whose host key the fake publishes as the
 * VM's guest attributes. A VM the fake deletes (or preempts) takes its processes with it, as a real
 * one would.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { NodeSSH } from "node-ssh";
import { gce, type GceBackend, type GceBackendOptions } from "../../src/backends/gce/gce-backend.js";
import { startFakeGcp, type FakeGcp, type FakeGcpOptions, type FakeInstance } from "./fake-gcp.js";
import { startSshd, type TestSshd } from "./sshd.js";
import { processesUnder } from "../contract/live-processes.js";

/** The sshd's host key blob (base64), as a VM's guest agent would publish it. */
export async function hostKeyBlob(sshd: TestSshd): Promise<string> {
  const ssh = new NodeSSH();
  let blob = "";
  await ssh
    .connect({
      host: sshd.host,
      port: sshd.port,
      username: "probe",
      password: "x",
      readyTimeout: 5000,
      hostVerifier: (key: Buffer) => ((blob = key.toString("base64")), false),
    })
    .catch(() => undefined);
  ssh.dispose();
  if (!blob) throw new Error("the test sshd showed no host key");
  return blob;
}

export interface World {
  /** A VM the fake deletes kills the processes under its job's folder (default true). */
  vmsTakeTheirProcesses: boolean;
  sshd: TestSshd;
  fake: FakeGcp;
  root: string;
  options: GceBackendOptions;
  backend: GceBackend;
  jobDir(jobId: string): string;
  close(): Promise<void>;
}

export function backendOptions(sshd: TestSshd, fake: FakeGcp, workRoot: string, envLabel: string): GceBackendOptions {
  return {
    project: "test-project",
    zones: ["us-central1-a", "us-central1-b"],
    machineType: "e2-standard-2",
    image: "projects/test-project/global/images/family/agent-work-worker",
    serviceAccount: "agent-work-worker@test-project.iam.gserviceaccount.com",
    network: "default",
    externalIp: false,
    networkTags: ["agent-work-worker"],
    diskGb: 20,
    diskType: "pd-balanced",
    envLabel,
    spot: true,
    onDemandFallback: true,
    maxVms: 8,
    ssh: { username: sshd.username, privateKey: sshd.privateKey, port: sshd.port },
    bootTimeoutSeconds: 60,
    remoteWorkRoot: workRoot,
    killGraceMs: 1000,
    clientOptions: fake.clientOptions(),
  };
}

export async function world(
  over: Partial<GceBackendOptions> | ((fake: FakeGcp) => Partial<GceBackendOptions>) = {},
  fakeOptions: FakeGcpOptions = {},
): Promise<World> {
  const sshd = await startSshd();
  const workRoot = `agent-work-gce-test-${randomBytes(4).toString("hex")}`;
  const root = path.join(sshd.home, workRoot);
  const jobDir = (jobId: string) => path.join(root, jobId);
  const state = { vmsTakeTheirProcesses: true };
  const fake = await startFakeGcp({
    ...fakeOptions,
    hostKeys: { "ssh-ed25519": await hostKeyBlob(sshd) },
    // Deleting a VM ends everything on it.
    onInstanceGone: (i: FakeInstance) => {
      fakeOptions.onInstanceGone?.(i);
      if (!state.vmsTakeTheirProcesses) return;
      const jobId = i.labels["agent-work-job"];
      if (!jobId) return;
      void processesUnder(jobDir(jobId)).then((ps) =>
        ps.forEach((p) => {
          try {
            process.kill(p.pid, "SIGKILL");
          } catch {
            // gone already
          }
        }),
      );
    },
  });
  const options = backendOptions(sshd, fake, workRoot, `contract-${randomBytes(3).toString("hex")}`);
  const backend = gce.create({ ...options, ...(typeof over === "function" ? over(fake) : over) });
  return {
    get vmsTakeTheirProcesses() {
      return state.vmsTakeTheirProcesses;
    },
    set vmsTakeTheirProcesses(v: boolean) {
      state.vmsTakeTheirProcesses = v;
    },
    sshd,
    fake,
    root,
    options,
    backend,
    jobDir,
    async close() {
      await backend.close();
      await Promise.all([sshd.close(), fake.close()]);
      await rm(root, { recursive: true, force: true });
    },
  };
}
