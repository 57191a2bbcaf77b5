/**
 * k8s/network-policy.yaml, the worker pods' NetworkPolicy, read the way a CNI reads it: for each
 * connection a worker pod might open, is there an egress rule whose peer and port admit it? The
 * pod-level wall of `network: allowlist` on k8s (the agent's own is its network namespace in the
 * pod, the same worker as everywhere): the worker's proxy and git need DNS and HTTPS to the
 * internet, and nothing in the cluster, the node or the metadata server. There is no cluster here;
 * the evaluation follows the NetworkPolicy API's rules (peers OR'd, ports OR'd, a rule needs a peer
 * and a port to match; an ipBlock matches its cidr minus its excepts; a namespaceSelector with a
 * podSelector matches those pods in those namespaces; policies on the same pod add up).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { jobLabels, WORKER_APP } from "../../src/backends/k8s/k8s-names.js";

type Doc = Record<string, any>;
const ROOT = path.resolve(import.meta.dirname, "../..");
const policies = parseAllDocuments(readFileSync(path.join(ROOT, "k8s/network-policy.yaml"), "utf8"))
  .map((d) => d.toJS() as Doc)
  .filter((d) => d.kind === "NetworkPolicy");

interface Peer {
  ip: string;
  /** Labels of the destination's namespace and pod, when it is a pod. */
  namespace?: Record<string, string>;
  pod?: Record<string, string>;
}

const ipv4 = (ip: string) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
function inCidr(ip: string, cidr: string): boolean {
  if (cidr.includes(":") || ip.includes(":")) return cidr === "::/0" && ip.includes(":");
  const [base, bits] = cidr.split("/") as [string, string];
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(base) / size);
}
const matches = (selector: Doc | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && labels !== undefined && Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

function peerMatches(rulePeer: Doc, dest: Peer): boolean {
  if (rulePeer.ipBlock) return inCidr(dest.ip, rulePeer.ipBlock.cidr) && !(rulePeer.ipBlock.except ?? []).some((c: string) => inCidr(dest.ip, c));
  if (rulePeer.namespaceSelector && rulePeer.podSelector) return matches(rulePeer.namespaceSelector, dest.namespace) && matches(rulePeer.podSelector, dest.pod);
  if (rulePeer.namespaceSelector) return matches(rulePeer.namespaceSelector, dest.namespace);
  if (rulePeer.podSelector)
    return matches({ matchLabels: { "kubernetes.io/metadata.name": "agent-work" } }, dest.namespace) && matches(rulePeer.podSelector, dest.pod);
  return false;
}

const workerLabels = jobLabels("j1", "octo/demo", WORKER_APP);
const selecting = policies.filter((p) => p.metadata.namespace === "agent-work" && matches(p.spec.podSelector, workerLabels));

/** May a worker pod open this connection? */
function egressAllowed(dest: Peer, protocol: "TCP" | "UDP", port: number): boolean {
  const isolating = selecting.filter((p) => (p.spec.policyTypes ?? []).includes("Egress"));
  if (isolating.length === 0) return true;
  return isolating.some((p) =>
    (p.spec.egress ?? []).some(
      (rule: Doc) =>
        (rule.to === undefined || rule.to.some((peer: Doc) => peerMatches(peer, dest))) &&
        (rule.ports === undefined || rule.ports.some((p: Doc) => (p.protocol ?? "TCP") === protocol && (p.port === undefined || p.port === port))),
    ),
  );
}

const KUBE_DNS: Peer = { ip: "10.96.0.10", namespace: { "kubernetes.io/metadata.name": "kube-system" }, pod: { "k8s-app": "kube-dns" } };
const CONTROLLER: Peer = {
  ip: "10.8.0.5",
  namespace: { "kubernetes.io/metadata.name": "agent-work" },
  pod: { "app.kubernetes.io/name": "agent-work-controller" },
};
const OTHER_WORKER: Peer = { ip: "10.8.0.9", namespace: { "kubernetes.io/metadata.name": "agent-work" }, pod: workerLabels };
const GITHUB: Peer = { ip: "140.82.112.3" };

describe("the worker pods' NetworkPolicy", () => {
  it("selects the pods the k8s backend makes, and isolates them both ways", () => {
    expect(selecting.length).toBeGreaterThan(0);
    for (const p of selecting) expect(p.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    // No ingress rule in any policy that selects them: no connection in.
    expect(selecting.flatMap((p) => p.spec.ingress ?? [])).toEqual([]);
  });

  it("lets a worker pod ask the cluster's DNS and reach HTTPS on the internet (its proxy and git need no more)", () => {
    expect(egressAllowed(KUBE_DNS, "UDP", 53)).toBe(true);
    expect(egressAllowed(KUBE_DNS, "TCP", 53)).toBe(true);
    expect(egressAllowed(GITHUB, "TCP", 443)).toBe(true);
  });

  it("keeps it from the metadata server, the API server, the nodes, the controller, other workers and every private range", () => {
    for (const [name, dest, port] of [
      ["metadata HTTP", { ip: "169.254.169.254" }, 80],
      ["metadata on 443", { ip: "169.254.169.254" }, 443],
      ["the API server's endpoint", { ip: "10.128.0.2" }, 443],
      ["the API server's service", { ip: "10.96.0.1" }, 443],
      ["a node's kubelet", { ip: "10.128.0.3" }, 10250],
      ["the controller", CONTROLLER, 3000],
      ["the controller on 443", CONTROLLER, 443],
      ["another worker", OTHER_WORKER, 443],
      ["kube-dns on another port", KUBE_DNS, 443],
      ["a 172.16 address", { ip: "172.20.1.1" }, 443],
      ["a 192.168 address", { ip: "192.168.1.10" }, 443],
      ["a CGNAT address", { ip: "100.64.0.1" }, 443],
    ] as [string, Peer, number][]) {
      expect(egressAllowed(dest, "TCP", port), name).toBe(false);
    }
  });

  it("allows no other port or protocol to the internet: no ssh, no plain HTTP, no outside resolver", () => {
    expect(egressAllowed(GITHUB, "TCP", 22)).toBe(false);
    expect(egressAllowed(GITHUB, "TCP", 80)).toBe(false);
    expect(egressAllowed({ ip: "8.8.8.8" }, "UDP", 53)).toBe(false);
    expect(egressAllowed({ ip: "8.8.8.8" }, "TCP", 53)).toBe(false);
    expect(egressAllowed({ ip: "2606:4700::1111" }, "TCP", 443)).toBe(false);
  });
});
