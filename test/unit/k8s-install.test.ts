/**
 * The controller's own Kubernetes manifests and the kustomize install (k8s/ as the base,
 * k8s-install/ as the operator's values), built with the real `kubectl kustomize` and every object
 * checked against the Kubernetes OpenAPI schema offline (test/support/k8s-openapi.ts), then read
 * for the promises README "Run on Kubernetes" makes.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseEnv } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { buildInputSecret, buildWorkerJob } from "../../src/backends/k8s/build-job.js";
import { k8sBackendFromConfig } from "../../src/backends/k8s/k8s-backend.js";
import { createKubeApi } from "../../src/backends/k8s/kube-api.js";
import { loadControllerConfig } from "../../src/config/env.js";
import { startFakeK8s } from "../support/fake-k8s.js";
import { schemaVersion, validateK8sObject } from "../support/k8s-openapi.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
type Doc = Record<string, any>;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of k8s/ and k8s-install/ with the .env files an operator writes from the examples. */
function installCopy(edit?: (dir: string) => void): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "k8s-install-"));
  dirs.push(dir);
  cpSync(path.join(ROOT, "k8s"), path.join(dir, "k8s"), { recursive: true });
  cpSync(path.join(ROOT, "k8s-install"), path.join(dir, "k8s-install"), { recursive: true });
  for (const name of ["controller", "database"]) {
    cpSync(path.join(dir, "k8s-install", `${name}.env.example`), path.join(dir, "k8s-install", `${name}.env`));
  }
  edit?.(dir);
  return dir;
}

function kustomize(dir: string): Doc[] {
  const out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", timeout: 60_000 });
  return parseAllDocuments(out).map((d) => d.toJS() as Doc);
}

const find = (docs: Doc[], kind: string, prefix = "agent-work-controller") => docs.find((d) => d.kind === kind && d.metadata.name.startsWith(prefix))!;

describe("the offline schema check", () => {
  it("knows the Kubernetes version its schema comes from", () => {
    expect(schemaVersion()).toMatch(/^v1\.\d+\.\d+$/);
  });

  it("finds a misspelt field, a wrong type, a missing required field and a wrong apiVersion", () => {
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "x" },
      spec: {
        replicas: "2",
        selector: { matchLabels: { a: "b" } },
        template: {
          spec: { containers: [{ name: "c", image: "i", ports: [{ containerPort: 3000, protocl: "TCP" }], livenessProbe: { httpGet: { path: "/healthz" } } }] },
        },
      },
    };
    const errors = validateK8sObject(deployment);
    expect(errors).toContainEqual(expect.stringMatching(/^Deployment\/x\.spec\.replicas: expected a number/));
    expect(errors).toContainEqual(expect.stringMatching(/ports\[0\]\.protocl: no such field in V1ContainerPort/));
    expect(errors).toContainEqual(expect.stringMatching(/httpGet\.port: required in V1HTTPGetAction, missing/));
    expect(errors).toHaveLength(3);
    expect(validateK8sObject({ ...deployment, apiVersion: "extensions/v1beta1" })).toEqual([expect.stringMatching(/served as apps\/v1/)]);
    expect(validateK8sObject({ apiVersion: "v1", kind: "Namespace", metadata: { name: "n", labels: { a: 1 } } })).toEqual([
      expect.stringMatching(/labels\.a: expected a string/),
    ]);
  });
});

describe("the base alone (k8s/)", () => {
  it("builds with kubectl kustomize, and every object passes the Kubernetes OpenAPI schema", () => {
    const docs = kustomize(path.join(ROOT, "k8s"));
    expect(docs.length).toBeGreaterThan(10);
    for (const d of docs) expect(validateK8sObject(d), `${d.kind}/${d.metadata.name}`).toEqual([]);
  });
});

describe("the kustomize install (k8s/ + k8s-install/)", () => {
  let docs: Doc[];
  beforeAll(() => {
    docs = kustomize(path.join(installCopy(), "k8s-install"));
  }, 120_000);

  it("builds with kubectl kustomize, and every object passes the Kubernetes OpenAPI schema", () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(
      [
        "ConfigMap",
        "Deployment",
        "Ingress",
        "Namespace",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "ResourceQuota",
        "Role",
        "RoleBinding",
        "Secret",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
      ].sort(),
    );
    for (const d of docs) expect(validateK8sObject(d), `${d.kind}/${d.metadata.name}`).toEqual([]);
    for (const d of docs) expect(d.kind === "Namespace" ? d.metadata.name : d.metadata.namespace, `${d.kind}/${d.metadata.name}`).toBe("agent-work");
  });

  it("pins the controller's and the workers' images by digest", () => {
    const container = find(docs, "Deployment").spec.template.spec.containers[0];
    expect(container.image).toMatch(/^ghcr\.io\/acme\/agent-work@sha256:[0-9a-f]{64}$/);
    expect(find(docs, "ConfigMap").data.K8S_IMAGE).toMatch(/@sha256:[0-9a-f]{64}$/);
  });

  it("gives the controller its settings, its secrets and DATABASE_URL from a Secret, under the names kustomize generated", () => {
    const pod = find(docs, "Deployment").spec.template.spec;
    const container = pod.containers[0];
    const names = new Set(docs.map((d) => `${d.kind}/${d.metadata.name}`));
    for (const from of container.envFrom) {
      const ref = from.configMapRef ? `ConfigMap/${from.configMapRef.name}` : `Secret/${from.secretRef.name}`;
      expect(names, ref).toContain(ref);
    }
    const databaseUrl = container.env.find((e: Doc) => e.name === "DATABASE_URL").valueFrom.secretKeyRef;
    const database = docs.find((d) => d.kind === "Secret" && d.metadata.name === databaseUrl.name)!;
    expect(Buffer.from(database.data[databaseUrl.key], "base64").toString()).toMatch(/^postgres:\/\//);
    expect(pod.serviceAccountName).toBe("agent-work-controller");
    expect(pod.automountServiceAccountToken).toBe(true);
  });

  it("starts a controller whose configuration is valid: production, no local backend, the k8s backend on, metrics behind a token", () => {
    const settings = find(docs, "ConfigMap").data as Record<string, string>;
    const secret = find(docs, "Secret").data as Record<string, string>;
    const env: Record<string, string> = { ...settings };
    for (const [k, v] of Object.entries(secret)) env[k] = Buffer.from(v, "base64").toString();
    env.DATABASE_URL = "postgres://agent_work@127.0.0.1:5432/agent_work";
    const loaded = loadControllerConfig(env);
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
    if (!loaded.ok) return;
    expect(loaded.config).toMatchObject({ production: true, localBackend: false, k8s: { namespace: "agent-work" }, metrics: { host: "0.0.0.0", port: 9464 } });
    expect(loaded.config.metrics?.token).toBeTruthy();
    // The ports the pod declares are the ones the controller listens on.
    const ports = Object.fromEntries(find(docs, "Deployment").spec.template.spec.containers[0].ports.map((p: Doc) => [p.name, p.containerPort]));
    expect(ports).toEqual({ http: loaded.config.port, metrics: loaded.config.metrics?.port });
  });

  it("probes /healthz on the webhook port, and meets Pod Security 'restricted' like the workers", () => {
    const pod = find(docs, "Deployment").spec.template.spec;
    const c = pod.containers[0];
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) expect(c[probe].httpGet, probe).toEqual({ path: "/healthz", port: "http" });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true });
    for (const v of pod.volumes)
      expect(
        Object.keys(v).filter((k) => k !== "name"),
        v.name,
      ).toEqual(["emptyDir"]);
    expect(c.resources.requests.memory).toBe(c.resources.limits.memory);
  });

  it("runs two replicas that a drain never takes both of, behind a Service and an HTTPS Ingress for PUBLIC_URL's host", () => {
    const deployment = find(docs, "Deployment");
    const labels = deployment.spec.template.metadata.labels;
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    const pdb = find(docs, "PodDisruptionBudget");
    expect(selects(pdb.spec.selector.matchLabels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
    const service = find(docs, "Service");
    expect(selects(service.spec.selector)).toBe(true);
    expect(service.spec.ports.map((p: Doc) => p.targetPort).sort()).toEqual(["http", "metrics"]);
    const ingress = find(docs, "Ingress");
    const host = new URL(find(docs, "ConfigMap").data.PUBLIC_URL).host;
    expect(ingress.spec.rules[0].host).toBe(host);
    expect(ingress.spec.tls[0].hosts).toEqual([host]);
    expect(ingress.spec.rules[0].http.paths[0].backend.service).toEqual({ name: service.metadata.name, port: { name: "http" } });
  });

  it("lets the controller pod take only its two ports and reach only DNS, HTTPS/the API server and PostgreSQL", () => {
    const policy = docs.find((d) => d.kind === "NetworkPolicy" && d.metadata.name === "agent-work-controller")!;
    expect(policy.spec.podSelector.matchLabels).toEqual({ "app.kubernetes.io/name": "agent-work-controller" });
    expect(policy.spec.ingress.flatMap((r: Doc) => r.ports.map((p: Doc) => p.port)).sort()).toEqual([3000, 9464]);
    expect(policy.spec.egress.flatMap((r: Doc) => r.ports.map((p: Doc) => `${p.protocol}/${p.port}`)).sort()).toEqual([
      "TCP/443",
      "TCP/53",
      "TCP/5432",
      "TCP/6443",
      "UDP/53",
    ]);
    // The workers' policy does not select the controller, nor the controller's the workers.
    const workers = docs.find((d) => d.kind === "NetworkPolicy" && d.metadata.name !== "agent-work-controller")!;
    expect(workers.spec.podSelector.matchLabels["app.kubernetes.io/name"]).not.toBe("agent-work-controller");
  });

  it("a new PUBLIC_URL in k8s-install/ moves the Ingress with it", () => {
    const dir = installCopy((d) => {
      const file = path.join(d, "k8s-install", "kustomization.yaml");
      writeFileSync(file, readFileSync(file, "utf8").replace("PUBLIC_URL=https://agent-work.example.com", "PUBLIC_URL=https://agents.acme.test"));
    });
    const ingress = find(kustomize(path.join(dir, "k8s-install")), "Ingress");
    expect(ingress.spec.rules[0].host).toBe("agents.acme.test");
    expect(ingress.spec.tls[0].hosts).toEqual(["agents.acme.test"]);
  }, 120_000);

  it("keeps the operator's secret files out of git and the image's build context, and ships their examples", () => {
    const ignored = execFileSync("git", ["check-ignore", "--no-index", "k8s-install/controller.env", "k8s-install/database.env"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(ignored.trim().split("\n")).toEqual(["k8s-install/controller.env", "k8s-install/database.env"]);
    const example = parseEnv(readFileSync(path.join(ROOT, "k8s-install/controller.env.example"), "utf8"));
    expect(Object.keys(example)).toEqual(expect.arrayContaining(["PRIVATE_KEY", "WEBHOOK_SECRET", "METRICS_TOKEN"]));
  });
});

describe("the worker Job the k8s backend makes", () => {
  it("passes the Kubernetes OpenAPI schema, and so does its input Secret", () => {
    const job = buildWorkerJob({ jobId: "j1", repoFullName: "o/r", maxSeconds: 600 }, 0, {
      namespace: "agent-work",
      image: "ghcr.io/acme/agent-work-worker@sha256:" + "1".repeat(64),
      resources: { cpu: "1", memory: "2Gi" },
      ephemeralStorage: "10Gi",
      ttlSecondsAfterFinished: 600,
      runAsUser: 1000,
      nodePath: "node",
      workerScript: "/app/worker/agent-work-worker.mjs",
      terminationGracePeriodSeconds: 10,
    });
    expect(validateK8sObject(job as Doc)).toEqual([]);
    const secret = buildInputSecret({ jobId: "j1", repoFullName: "o/r", jobUid: "uid-1", namespace: "agent-work" }, { token: "x" } as never);
    expect(validateK8sObject(secret as Doc)).toEqual([]);
  });
});

describe("the workers' sandbox on Kubernetes (k8s/worker-sandbox/)", () => {
  /** The worker Job the backend creates through the (fake) API, from the controller's settings. */
  async function createdJob(env: Record<string, string>): Promise<Doc> {
    const fake = await startFakeK8s();
    try {
      const loaded = loadControllerConfig({ K8S_NAMESPACE: "agent-work", K8S_IMAGE: `ghcr.io/acme/agent-work-worker@sha256:${"1".repeat(64)}`, ...env });
      if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
      const backend = k8sBackendFromConfig(loaded.config.k8s!, { api: createKubeApi(fake.kubeConfig()), pollIntervalMs: 50 });
      await backend.create({ jobId: "sandbox-1", repoFullName: "o/r", maxSeconds: 600 }, new AbortController().signal);
      const body = fake.requests.find((r) => r.method === "POST" && r.path.endsWith("/jobs"))!.body as Doc;
      return body;
    } finally {
      await fake.close();
    }
  }

  it("asks for a user namespace, an unmasked /proc, the node's seccomp and AppArmor profiles and a RuntimeClass when configured, and the Job passes the schema", async () => {
    const job = await createdJob({
      K8S_USER_NAMESPACE: "true",
      K8S_SECCOMP_PROFILE: "localhost/agent-work-bwrap.json",
      K8S_APPARMOR_PROFILE: "localhost/agent-work-bwrap",
      K8S_RUNTIME_CLASS: "gvisor",
    });
    const pod = job.spec.template.spec;
    expect(pod.hostUsers).toBe(false);
    expect(pod.runtimeClassName).toBe("gvisor");
    expect(pod.securityContext.seccompProfile).toEqual({ type: "Localhost", localhostProfile: "agent-work-bwrap.json" });
    expect(pod.securityContext.appArmorProfile).toEqual({ type: "Localhost", localhostProfile: "agent-work-bwrap" });
    expect(pod.containers[0].securityContext).toMatchObject({
      procMount: "Unmasked",
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      runAsNonRoot: true,
    });
    expect(validateK8sObject(job)).toEqual([]);
  });

  it("leaves all of that out by default (RuntimeDefault seccomp, the node's users, masked /proc)", async () => {
    const pod = (await createdJob({})).spec.template.spec;
    expect(pod.securityContext.seccompProfile).toEqual({ type: "RuntimeDefault" });
    for (const field of ["hostUsers", "runtimeClassName"]) expect(pod, field).not.toHaveProperty(field);
    expect(pod.securityContext).not.toHaveProperty("appArmorProfile");
    expect(pod.containers[0].securityContext).not.toHaveProperty("procMount");
  });

  const profile = JSON.parse(readFileSync(path.join(ROOT, "k8s/worker-sandbox/agent-work-bwrap.json"), "utf8")) as {
    defaultAction: string;
    architectures: string[];
    syscalls: { names: string[]; action: string; errnoRet?: number }[];
  };
  const refused = new Set(profile.syscalls.filter((r) => r.action === "SCMP_ACT_ERRNO").flatMap((r) => r.names));

  it("has a seccomp profile that refuses what an agent has no use for, on every architecture of the node", () => {
    expect(profile.syscalls.every((r) => r.action === "SCMP_ACT_ERRNO" && r.errnoRet === 1)).toBe(true);
    // Without the compat architectures a 32-bit call would go around the list.
    expect(profile.architectures).toEqual(expect.arrayContaining(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]));
    for (const name of [
      "init_module",
      "finit_module",
      "delete_module",
      "kexec_load",
      "kexec_file_load",
      "bpf",
      "perf_event_open",
      "ptrace",
      "process_vm_readv",
      "process_vm_writev",
      "keyctl",
      "add_key",
      "request_key",
      "open_by_handle_at",
      "setns",
      "userfaultfd",
      "io_uring_setup",
      "fsopen",
      "move_mount",
      "open_tree",
      "swapon",
      "reboot",
      "settimeofday",
      "clock_settime",
    ]) {
      expect(refused, name).toContain(name);
    }
  });

  it("lets through every call a real bubblewrap sandbox makes (traced with strace, as an unprivileged user)", () => {
    const trace = path.join(mkdtempSync(path.join(os.tmpdir(), "bwrap-trace-")), "trace");
    dirs.push(path.dirname(trace));
    chmodSync(path.dirname(trace), 0o777);
    // The shape the worker builds as a non-root user (worker/lib/sandbox-plan.mjs), as in a pod.
    const system = ["--ro-bind", "/usr", "/usr", ...["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"].flatMap((d) => ["--ro-bind-try", d, d])];
    const bwrap = [
      "bwrap",
      "--die-with-parent",
      "--new-session",
      "--unshare-all",
      ...system,
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--tmpfs",
      "/tmp",
      "--",
      "/bin/sh",
      "-c",
      "true",
    ];
    const asUser = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
    execFileSync(asUser[0] ?? "strace", [...asUser.slice(1), ...(asUser.length ? ["strace"] : []), "-f", "-qq", "-o", trace, ...bwrap], { timeout: 60_000 });
    const calls = new Set([...readFileSync(trace, "utf8").matchAll(/^\d+\s+([a-z_0-9]+)\(/gm)].map((m) => m[1]!));
    // bubblewrap's own: the namespaces, the mounts, the new root.
    for (const needed of ["unshare", "mount", "pivot_root", "umount2"])
      expect(calls.has(needed) || (needed === "unshare" && calls.has("clone")), needed).toBe(true);
    expect([...calls].filter((c) => refused.has(c))).toEqual([]);
  });
});

describe("the README walks an operator from nothing to a controller and workers", () => {
  const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const section = (title: string) => readme.slice(readme.indexOf(`## ${title}`), readme.indexOf("\n## ", readme.indexOf(`## ${title}`) + 5));

  it("on Kubernetes: images by digest, the App, the workers' sandbox, the kustomize install, doctor, and what the controller costs", () => {
    const k8s = section("Run on Kubernetes");
    for (const step of [
      "docker buildx imagetools inspect",
      "k8s-install/controller.env.example",
      "kubectl apply -k k8s-install",
      "K8S_USER_NAMESPACE=true",
      "k8s/worker-sandbox/",
      "doctor",
      "What the controller costs",
    ])
      expect(k8s).toContain(step);
    // The requests it quotes are the Deployment's.
    const c = parseAllDocuments(readFileSync(path.join(ROOT, "k8s/controller/deployment.yaml"), "utf8"))[0]!.toJS().spec.template.spec.containers[0];
    expect(k8s).toContain(
      `two pods asking for ${Number.parseInt(c.resources.requests.cpu) / 1000} CPU and ${c.resources.requests.memory.replace("Mi", " MiB")} each`,
    );
  });

  it("on Google Cloud: the controller VM from Terraform, its secrets, and its monthly cost from the bundled price table", () => {
    const gce = section("Run on Google Cloud");
    for (const step of [
      "controller_vm = true",
      "agent-work-controller-env",
      "agent-work-controller-ssh-key",
      "controller_address",
      "What the controller costs",
    ])
      expect(gce).toContain(step);
    const prices = JSON.parse(readFileSync(path.join(ROOT, "src/cost/gce-prices.json"), "utf8"));
    const month = prices.machines["e2-small"]["us-central1"].hour * 730;
    expect(gce).toContain(`about\n   $${month.toFixed(2)} a month`);
    expect(gce).toContain(`20 GB balanced disk $${(20 * prices.disks["pd-balanced"]["us-central1"]).toFixed(2)} a month`);
  });
});
