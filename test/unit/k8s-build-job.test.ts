import { describe, expect, it } from "vitest";
import { buildInputSecret, buildWorkerJob, workerCommand, type WorkerPodSettings } from "../../src/backends/k8s/build-job.js";
import { inputSecretName, jobName, labelValue } from "../../src/backends/k8s/k8s-names.js";
import { resourcesForMachine } from "../../src/backends/k8s/pod-resources.js";
import type { RunSpec } from "../../src/backends/types.js";

const settings: WorkerPodSettings = {
  namespace: "agent-work",
  image: "ghcr.io/acme/agent-work-worker:1.0",
  resources: { cpu: "2", memory: "8Gi" },
  ephemeralStorage: "10Gi",
  ttlSecondsAfterFinished: 600,
  runAsUser: 1000,
  nodePath: "node",
  workerScript: "/app/worker/agent-work-worker.mjs",
  terminationGracePeriodSeconds: 10,
};

const labels = {
  "app.kubernetes.io/managed-by": "agent-work",
  "app.kubernetes.io/name": "agent-work-worker",
  "agent-work-job": "jabc123def456",
  "agent-work-repo": "octo_demo",
};

describe("the worker Job", () => {
  it("is exactly this: suspended, one try, the job's limit as deadline, a TTL, a locked-down non-root pod, no service account token, the input from a Secret file", () => {
    const job = buildWorkerJob(
      { jobId: "jabc123def456", repoFullName: "octo/demo", maxSeconds: 1800, machineType: "e2-standard-2" },
      1_700_000_000_123,
      settings,
    );
    expect(job).toEqual({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: {
        name: "agent-work-jabc123def456",
        namespace: "agent-work",
        labels,
        annotations: { "agent-work/repo": "octo/demo", "agent-work/created-at": "1700000000123", "agent-work/max-seconds": "1800" },
      },
      spec: {
        suspend: true,
        backoffLimit: 0,
        activeDeadlineSeconds: 1800,
        ttlSecondsAfterFinished: 600,
        template: {
          metadata: { labels },
          spec: {
            restartPolicy: "Never",
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 10,
            securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: "RuntimeDefault" } },
            containers: [
              {
                name: "worker",
                image: "ghcr.io/acme/agent-work-worker:1.0",
                command: ["/bin/sh", "-c", "exec node /app/worker/agent-work-worker.mjs < /run/agent-work/input.json"],
                workingDir: "/work",
                env: [
                  { name: "HOME", value: "/work" },
                  { name: "TMPDIR", value: "/tmp" },
                ],
                resources: {
                  requests: { cpu: "2", memory: "8Gi", "ephemeral-storage": "10Gi" },
                  limits: { cpu: "2", memory: "8Gi", "ephemeral-storage": "10Gi" },
                },
                securityContext: {
                  runAsNonRoot: true,
                  allowPrivilegeEscalation: false,
                  privileged: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ["ALL"] },
                },
                volumeMounts: [
                  { name: "input", mountPath: "/run/agent-work", readOnly: true },
                  { name: "work", mountPath: "/work" },
                  { name: "tmp", mountPath: "/tmp" },
                ],
              },
            ],
            volumes: [
              { name: "input", secret: { secretName: "agent-work-jabc123def456-input", defaultMode: 0o440, optional: false } },
              { name: "work", emptyDir: { sizeLimit: "10Gi" } },
              { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } },
            ],
          },
        },
      },
    });
  });

  it("rounds a fractional limit up and never asks for a deadline of zero", () => {
    expect(buildWorkerJob({ jobId: "j1", repoFullName: "o/r", maxSeconds: 90.2 }, 0, settings).spec?.activeDeadlineSeconds).toBe(91);
    expect(buildWorkerJob({ jobId: "j1", repoFullName: "o/r", maxSeconds: 0 }, 0, settings).spec?.activeDeadlineSeconds).toBe(1);
  });

  it("puts the image pull policy on the container only when one is set", () => {
    const job = buildWorkerJob({ jobId: "j1", repoFullName: "o/r", maxSeconds: 60 }, 0, { ...settings, imagePullPolicy: "Always" });
    expect(job.spec?.template.spec?.containers[0]?.imagePullPolicy).toBe("Always");
  });

  it("refuses paths that would need quoting in the container's shell command", () => {
    expect(workerCommand("/usr/local/bin/node", "/opt/agent-work/worker.mjs")).toEqual([
      "/bin/sh",
      "-c",
      "exec /usr/local/bin/node /opt/agent-work/worker.mjs < /run/agent-work/input.json",
    ]);
    expect(() => workerCommand("node", "/opt/agent work/worker.mjs")).toThrow(/cannot be used/);
    expect(() => workerCommand("node; rm -rf /", "/app/w.mjs")).toThrow(/cannot be used/);
  });
});

describe("the input Secret", () => {
  const input: RunSpec = {
    jobId: "jabc123def456",
    cloneUrl: "https://github.com/octo/demo.git",
    baseBranch: "main",
    branch: "agent-work/jabc123def456",
    token: "ghs_0123456789abcdefghijklmnopqrstuvwxyz",
    agentArgv: ["claude", "-p", "{prompt}"],
    prompt: "Fix it",
    commitMessage: "agent-work: fix",
    author: { name: "agent-work[bot]", email: "bot@example.com" },
    agentTimeoutSeconds: 1500,
    agentEnv: { ANTHROPIC_API_KEY: "sk-ant-canary" },
    sandbox: { kind: "bwrap", roBinds: [], shareNet: true },
  };

  it("is owned by the Job's uid, immutable, labelled as the job's input, and holds the WorkerInput as one JSON line", () => {
    const secret = buildInputSecret({ jobId: "jabc123def456", repoFullName: "octo/demo", jobUid: "2f6a0c1e-uid", namespace: "agent-work" }, input);
    expect({ ...secret, data: undefined }).toEqual({
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "agent-work-jabc123def456-input",
        namespace: "agent-work",
        labels: { ...labels, "app.kubernetes.io/name": "agent-work-input" },
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: "agent-work-jabc123def456", uid: "2f6a0c1e-uid" }],
      },
      type: "Opaque",
      immutable: true,
      data: undefined,
    });
    expect(Object.keys(secret.data ?? {})).toEqual(["input.json"]);
    expect(Buffer.from(secret.data!["input.json"]!, "base64").toString("utf8")).toBe(JSON.stringify(input) + "\n");
  });
});

describe("names and labels", () => {
  it("names the Job and its Secret from the job id, and refuses ids Kubernetes would not take", () => {
    expect(jobName("jabc123def456")).toBe("agent-work-jabc123def456");
    expect(inputSecretName("jabc123def456")).toBe("agent-work-jabc123def456-input");
    for (const bad of ["", "UPPER", "under_score", "-lead", "trail-", "a".repeat(53), "../x"])
      expect(() => jobName(bad), bad).toThrow(/cannot name a Kubernetes Job/);
    expect(jobName("a".repeat(52))).toHaveLength(63);
  });

  it("folds any repository name into a valid label value", () => {
    expect(labelValue("octo/demo")).toBe("octo_demo");
    expect(labelValue("Octo-Org/My.Repo")).toBe("Octo-Org_My.Repo");
    expect(labelValue("-x/y-")).toBe("x_y");
    expect(labelValue("a".repeat(100))).toHaveLength(63);
    expect(labelValue("///")).toBe("unknown");
  });
});

describe("pod resources from the machine type", () => {
  const defaults = { cpu: "1", memory: "2Gi", ephemeralStorage: "10Gi" };

  it("uses the defaults when the job names no machine type", () => {
    expect(resourcesForMachine(undefined, defaults)).toEqual({ cpu: "1", memory: "2Gi" });
  });

  it("reads GCE shapes as what they mean", () => {
    expect(resourcesForMachine("e2-standard-4", defaults)).toEqual({ cpu: "4", memory: "16Gi" });
    expect(resourcesForMachine("n2-highmem-2", defaults)).toEqual({ cpu: "2", memory: "16Gi" });
    expect(resourcesForMachine("c3-highcpu-8", defaults)).toEqual({ cpu: "8", memory: "8Gi" });
    expect(resourcesForMachine("e2-small", defaults)).toEqual({ cpu: "500m", memory: "2Gi" });
  });

  it("prefers the operator's own table, and refuses a name it cannot read rather than guess", () => {
    expect(resourcesForMachine("gpu-box", defaults, { "gpu-box": { cpu: "16", memory: "64Gi" } })).toEqual({ cpu: "16", memory: "64Gi" });
    expect(() => resourcesForMachine("n2-custom-4-8192", defaults)).toThrow(/means nothing to the k8s backend/);
  });
});
