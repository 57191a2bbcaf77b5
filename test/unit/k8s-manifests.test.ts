import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { buildWorkerJob } from "../../src/backends/k8s/build-job.js";
import { jobLabels, WORKER_APP } from "../../src/backends/k8s/k8s-names.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
type Doc = Record<string, any>;
const docs = (file: string): Doc[] => parseAllDocuments(readFileSync(path.join(ROOT, "k8s", file), "utf8")).map((d) => d.toJS() as Doc);
const role = () => docs("rbac.yaml").find((d) => d.kind === "Role")!;

describe("the manifests a cluster admin applies", () => {
  it("all parse, and all live in the agent-work namespace", () => {
    for (const file of ["namespace.yaml", "rbac.yaml", "network-policy.yaml"]) {
      for (const d of docs(file)) expect(d.kind === "Namespace" ? d.metadata.name : d.metadata.namespace, `${file} ${d.kind}`).toBe("agent-work");
    }
  });

  it("enforce Pod Security 'restricted' on the namespace, and its default account mounts no token", () => {
    const [ns, sa] = docs("namespace.yaml");
    expect(ns!.metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
    expect(sa).toMatchObject({ kind: "ServiceAccount", metadata: { name: "default" }, automountServiceAccountToken: false });
  });

  it("make worker pods that 'restricted' admits", () => {
    const pod = buildWorkerJob({ jobId: "j1", repoFullName: "o/r", maxSeconds: 60 }, 0, {
      namespace: "agent-work",
      image: "x",
      resources: { cpu: "1", memory: "1Gi" },
      ephemeralStorage: "1Gi",
      ttlSecondsAfterFinished: 60,
      runAsUser: 1000,
      nodePath: "node",
      workerScript: "/app/worker/agent-work-worker.mjs",
      terminationGracePeriodSeconds: 10,
    }).spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.hostNetwork ?? false).toBe(false);
    for (const c of pod.containers)
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, runAsNonRoot: true });
    for (const v of pod.volumes ?? []) {
      const kinds = Object.keys(v).filter((k) => k !== "name");
      expect(kinds, v.name).toHaveLength(1);
      expect(["secret", "emptyDir"], v.name).toContain(kinds[0]);
    }
  });

  it("bind the controller's ServiceAccount to the Role", () => {
    const binding = docs("rbac.yaml").find((d) => d.kind === "RoleBinding")!;
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role().metadata.name });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "agent-work-controller", namespace: "agent-work" }]);
    expect(docs("rbac.yaml").find((d) => d.kind === "ServiceAccount")!.metadata.name).toBe("agent-work-controller");
  });

  it("let worker pods take no connection and reach only DNS and HTTPS outside the private ranges", () => {
    const [policy] = docs("network-policy.yaml");
    const labels = jobLabels("any", "o/r", WORKER_APP);
    for (const [k, v] of Object.entries(policy!.spec.podSelector.matchLabels)) expect(labels[k], k).toBe(v);
    expect(policy!.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy!.spec.ingress).toEqual([]);
    const ports = policy!.spec.egress.flatMap((e: Doc) => e.ports.map((p: Doc) => `${p.protocol}/${p.port}`));
    expect(ports.sort()).toEqual(["TCP/443", "TCP/53", "UDP/53"]);
    const https = policy!.spec.egress.find((e: Doc) => e.ports.some((p: Doc) => p.port === 443));
    expect(https.to[0].ipBlock.except).toEqual(expect.arrayContaining(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]));
  });

  it("come with an example worker image that copies the worker script where the backend runs it", () => {
    const dockerfile = readFileSync(path.join(ROOT, "k8s/worker.Dockerfile"), "utf8");
    // COPY <source…> <destination>: the agent CLIs' list, then the worker script's folder.
    const copies = [...dockerfile.matchAll(/^COPY\s+(.+)$/gm)].map((m) => m[1]!.split(/\s+/));
    expect(copies.map((words) => words.at(-1))).toEqual(["/usr/local/lib/agent-clis/", "/app/worker/"]);
    for (const words of copies) for (const src of words.slice(0, -1)) expect(existsSync(path.join(ROOT, src)), src).toBe(true);
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
  });
});

describe("the README's Run on Kubernetes", () => {
  const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Run on Kubernetes"), readme.indexOf("\n## ", readme.indexOf("## Run on Kubernetes") + 5));

  it("shows the Role exactly as k8s/rbac.yaml grants it", () => {
    const block = /The Role[^\n]*\n\s*```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block, "a yaml block after 'The Role'").toBeDefined();
    const indent = /^( *)/.exec(block!)![1]!.length;
    const shown = parse(
      block!
        .split("\n")
        .map((l) => l.slice(indent))
        .join("\n"),
    ) as Doc;
    expect(shown.rules).toEqual(role().rules);
  });

  it("applies every manifest and names every K8S_ variable it relies on", () => {
    for (const file of ["k8s/namespace.yaml", "k8s/rbac.yaml", "k8s/network-policy.yaml", "k8s/worker.Dockerfile"]) expect(section).toContain(file);
    for (const name of ["K8S_NAMESPACE", "K8S_IMAGE", "K8S_KUBECONFIG", "K8S_RUN_AS_USER", "K8S_AGENT_SANDBOX"]) expect(section).toContain(name);
  });
});
