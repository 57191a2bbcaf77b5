/**
 * The few Kubernetes calls the k8s backend makes, behind one small interface, and their
 * implementation on @kubernetes/client-node. Each method maps to one RBAC verb in k8s/rbac.yaml:
 *
 *   jobs: create, get, list, patch, delete · pods: list · pods/log: get · secrets: create, delete
 *
 * The pod log is read with a plain HTTP request carrying the client's own TLS and credentials
 * (`applyToHTTPSOptions`) rather than client-node's `Log`, which pipes the response into a stream
 * and drops a broken connection silently: a follower must know whether the log ended or broke.
 */
import http from "node:http";
import https from "node:https";
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Job,
  type V1Pod,
  type V1Secret,
} from "@kubernetes/client-node";

export interface PodLogRequest {
  namespace: string;
  pod: string;
  container: string;
  follow: boolean;
  /** Prefix each line with its RFC3339Nano time, so a reconnecting reader can skip what it has. */
  timestamps: boolean;
  /** RFC3339, whole seconds: only lines from then on. */
  sinceTime?: string;
}

export interface KubeApi {
  createJob(namespace: string, body: V1Job): Promise<V1Job>;
  readJob(namespace: string, name: string): Promise<V1Job>;
  /** A JSON merge patch (RFC 7386). */
  patchJob(namespace: string, name: string, patch: object): Promise<V1Job>;
  /** Foreground: the Job goes once its pods are gone; Background: at once, its pods after it. */
  deleteJob(namespace: string, name: string, propagationPolicy: "Foreground" | "Background"): Promise<void>;
  listJobs(namespace: string, labelSelector: string): Promise<V1Job[]>;
  createSecret(namespace: string, body: V1Secret): Promise<V1Secret>;
  deleteSecret(namespace: string, name: string): Promise<void>;
  listPods(namespace: string, labelSelector: string): Promise<V1Pod[]>;
  /**
   * Streams a container's log into `onChunk`. Resolves when the server ends the response (for a
   * follow: the container stopped, or the server cut the stream short); rejects when the request
   * fails or the connection breaks. An aborted `signal` rejects with an AbortError.
   */
  streamPodLog(request: PodLogRequest, onChunk: (chunk: Buffer) => void, signal: AbortSignal): Promise<void>;
}

/** A kubeconfig file (its current context), or the pod's own service account when none is given. */
export function loadKubeConfig(options: { kubeconfig?: string }, env: Record<string, string | undefined> = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (options.kubeconfig !== undefined) kc.loadFromFile(options.kubeconfig);
  // client-node would otherwise aim at https://undefined:undefined and fail only at the first call.
  else if (!env.KUBERNETES_SERVICE_HOST)
    throw new Error(
      "K8S_KUBECONFIG is not set and the controller is not running in a Kubernetes pod (no KUBERNETES_SERVICE_HOST): set K8S_KUBECONFIG to a kubeconfig file for the agent-work-controller account",
    );
  else kc.loadFromCluster();
  if (!kc.getCurrentCluster()) throw new Error(`no current cluster in ${options.kubeconfig ?? "the in-cluster configuration"}`);
  return kc;
}

const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export function createKubeApi(kc: KubeConfig): KubeApi {
  const batch = kc.makeApiClient(BatchV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    createJob: (namespace, body) => batch.createNamespacedJob({ namespace, body }),
    readJob: (namespace, name) => batch.readNamespacedJob({ namespace, name }),
    patchJob: (namespace, name, body) => batch.patchNamespacedJob({ namespace, name, body }, MERGE_PATCH),
    deleteJob: async (namespace, name, propagationPolicy) => {
      await batch.deleteNamespacedJob({ namespace, name, propagationPolicy });
    },
    listJobs: async (namespace, labelSelector) => (await batch.listNamespacedJob({ namespace, labelSelector })).items,
    createSecret: (namespace, body) => core.createNamespacedSecret({ namespace, body }),
    deleteSecret: async (namespace, name) => {
      await core.deleteNamespacedSecret({ namespace, name });
    },
    listPods: async (namespace, labelSelector) => (await core.listNamespacedPod({ namespace, labelSelector })).items,
    streamPodLog: (request, onChunk, signal) => streamPodLog(kc, request, onChunk, signal),
  };
}

async function streamPodLog(kc: KubeConfig, r: PodLogRequest, onChunk: (chunk: Buffer) => void, signal: AbortSignal): Promise<void> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("no current cluster in the kubeconfig");
  const url = new URL(`${cluster.server.replace(/\/+$/, "")}/api/v1/namespaces/${encodeURIComponent(r.namespace)}/pods/${encodeURIComponent(r.pod)}/log`);
  url.searchParams.set("container", r.container);
  url.searchParams.set("follow", String(r.follow));
  url.searchParams.set("timestamps", String(r.timestamps));
  if (r.sinceTime !== undefined) url.searchParams.set("sinceTime", r.sinceTime);
  const options: https.RequestOptions = { method: "GET", headers: { Accept: "*/*" } };
  await kc.applyToHTTPSOptions(options);
  const request = url.protocol === "https:" ? https.request : http.request;
  signal.throwIfAborted();

  return new Promise<void>((resolve, reject) => {
    const req = request(url, { ...options, signal }, (res) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          reject(new ApiException(res.statusCode ?? 500, "pod log request failed", text, {}));
        });
        res.on("error", reject);
        return;
      }
      res.on("data", onChunk);
      // `end` only follows a complete response; a connection that breaks gives `error` or `aborted`.
      res.on("end", () => resolve());
      res.on("error", reject);
      res.on("aborted", () => reject(Object.assign(new Error("the pod log stream broke off"), { code: "ECONNRESET" })));
    });
    req.on("error", reject);
    req.end();
  });
}
