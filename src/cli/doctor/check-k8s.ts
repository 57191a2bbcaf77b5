import { AuthorizationV1Api } from "@kubernetes/client-node";
import type { K8sConfig } from "../../config/env.js";
import { loadKubeConfig } from "../../backends/k8s/kube-api.js";
import type { DoctorCheck } from "./doctor-check.js";

/** Every verb the k8s backend uses, as k8s/rbac.yaml grants them (a test keeps the two in step). */
export const K8S_BACKEND_VERBS = [
  { group: "batch", resource: "jobs", verbs: ["create", "get", "list", "patch", "delete"] },
  { group: "", resource: "pods", verbs: ["list"] },
  { group: "", resource: "pods", subresource: "log", verbs: ["get"] },
  { group: "", resource: "secrets", verbs: ["create", "delete"] },
] as const;

/**
 * The k8s backend's permissions in its namespace, asked of the cluster with a
 * SelfSubjectAccessReview per verb: nothing is created, and a missing verb is named before the
 * first job needs it.
 */
export async function checkK8s(k8s: K8sConfig, add: (check: DoctorCheck) => void, env: Record<string, string | undefined> = process.env): Promise<void> {
  let api: AuthorizationV1Api;
  try {
    api = loadKubeConfig(k8s.kubeconfig === undefined ? {} : { kubeconfig: k8s.kubeconfig }, env).makeApiClient(AuthorizationV1Api);
  } catch (err) {
    add({
      name: "k8s",
      status: "fail",
      detail: err instanceof Error ? err.message : String(err),
      fix: 'set K8S_KUBECONFIG to a kubeconfig for the agent-work-controller account (README.md, "Run on Kubernetes")',
    });
    return;
  }
  const denied: string[] = [];
  try {
    for (const rule of K8S_BACKEND_VERBS) {
      for (const verb of rule.verbs) {
        const subresource = "subresource" in rule ? rule.subresource : undefined;
        const review = await api.createSelfSubjectAccessReview({
          body: {
            apiVersion: "authorization.k8s.io/v1",
            kind: "SelfSubjectAccessReview",
            spec: {
              resourceAttributes: { namespace: k8s.namespace, verb, group: rule.group, resource: rule.resource, ...(subresource ? { subresource } : {}) },
            },
          },
        });
        if (!review.status?.allowed) denied.push(`${verb} ${rule.group ? `${rule.group}/` : ""}${rule.resource}${subresource ? `/${subresource}` : ""}`);
      }
    }
  } catch (err) {
    add({
      name: `k8s namespace ${k8s.namespace}`,
      status: "fail",
      detail: `the cluster did not answer: ${err instanceof Error ? err.message : String(err)}`,
      fix: "check K8S_KUBECONFIG (its server and credentials)",
    });
    return;
  }
  if (denied.length > 0) {
    add({
      name: `k8s namespace ${k8s.namespace}`,
      status: "fail",
      detail: `the controller may not ${denied.join(", ")}`,
      fix: `apply k8s/rbac.yaml (kubectl apply -f k8s/rbac.yaml) and bind it to the account the kubeconfig uses, in namespace ${k8s.namespace}`,
    });
  } else {
    add({
      name: `k8s namespace ${k8s.namespace}`,
      status: "ok",
      detail: "the controller may do everything the backend does there (jobs, pods and their logs, secrets)",
    });
  }
}
