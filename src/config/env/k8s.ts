import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { NodeProfile, PodIsolation } from "../../backends/k8s/build-job.js";
import { blankToUndefined, fieldBuilders, optionalText, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** The k8s backend: one Kubernetes Job per job; K8S_NAMESPACE turns it on. */
export const K8S_VARS = [
  { name: "K8S_NAMESPACE", secret: false, description: "Kubernetes namespace for the k8s backend's Jobs (one Job per job); setting it enables the backend." },
  {
    name: "K8S_KUBECONFIG",
    secret: false,
    description: "Path of a kubeconfig file (its current context) for the k8s backend; unset means the in-cluster service account.",
  },
  {
    name: "K8S_IMAGE",
    secret: false,
    description: "Container image of worker pods, with node 20+, git and the worker script at /app/worker/agent-work-worker.mjs; required with K8S_NAMESPACE.",
  },
  {
    name: "K8S_CPU",
    secret: false,
    default: "1",
    description: "CPU of a worker pod (request and limit) when the job names no machine type, in Kubernetes units (1, 500m).",
  },
  {
    name: "K8S_MEMORY",
    secret: false,
    default: "2Gi",
    description: "Memory of a worker pod (request and limit) when the job names no machine type, in Kubernetes units (2Gi, 512Mi).",
  },
  {
    name: "K8S_EPHEMERAL_STORAGE",
    secret: false,
    default: "10Gi",
    description: "Scratch disk of a worker pod (request and limit): the clone and the agent's work.",
  },
  { name: "K8S_MAX_JOBS", secret: false, default: "4", description: "Worker Jobs that may exist in the namespace at the same time." },
  {
    name: "K8S_TTL_SECONDS_AFTER_FINISHED",
    secret: false,
    default: "600",
    description: "Seconds Kubernetes keeps a finished worker Job before deleting it, should the controller not have deleted it itself.",
  },
  {
    name: "K8S_RUN_AS_USER",
    secret: false,
    default: "1000",
    description: "Non-root user id worker pods run as; it must be able to read the worker script in the image.",
  },
  {
    name: "K8S_AGENT_SANDBOX",
    secret: false,
    default: "bwrap",
    description:
      "Sandbox for the agent inside a worker pod: bwrap (needs bwrap in the image and user namespaces allowed) or none (the pod is its only boundary).",
  },
  {
    name: "K8S_USER_NAMESPACE",
    secret: false,
    default: "false",
    description:
      "Run worker pods in their own user namespace (hostUsers: false) with an unmasked /proc, which bubblewrap needs inside the pod: true or false. Needs Kubernetes 1.35+ and nodes with user namespaces (k8s/worker-sandbox/README.md).",
  },
  {
    name: "K8S_SECCOMP_PROFILE",
    secret: false,
    default: "RuntimeDefault",
    description:
      "Seccomp profile of worker pods: RuntimeDefault, or localhost/<file> installed in the kubelet's seccomp folder on the nodes (k8s/worker-sandbox/agent-work-bwrap.json lets bubblewrap work).",
  },
  {
    name: "K8S_APPARMOR_PROFILE",
    secret: false,
    description:
      "AppArmor profile of worker pods on AppArmor nodes: RuntimeDefault or localhost/<profile> loaded on the nodes; unset leaves the runtime's default.",
  },
  {
    name: "K8S_RUNTIME_CLASS",
    secret: false,
    description: "RuntimeClass of worker pods, e.g. gvisor (GKE Sandbox); unset uses the cluster's default runtime.",
  },
] as const satisfies readonly ControllerEnvVar[];

/** One Kubernetes Job per job (src/backends/k8s/). */
export interface K8sConfig {
  namespace: string;
  /** Absolute path of a kubeconfig file (its current context); unset: the in-cluster service account. */
  kubeconfig?: string;
  /** Worker image: node, git and the worker script at /app/worker/agent-work-worker.mjs (bwrap too for the bwrap sandbox). */
  image: string;
  /** Requests and limits of a pod whose job names no machine type, in Kubernetes quantities. */
  cpu: string;
  memory: string;
  ephemeralStorage: string;
  maxJobs: number;
  ttlSecondsAfterFinished: number;
  runAsUser: number;
  /** `bwrap`: the agent runs under the worker's bubblewrap inside the pod; `none`: the pod is its only boundary. */
  agentSandbox: "bwrap" | "none";
  /** Seccomp/AppArmor profiles, user namespace and RuntimeClass of worker pods (k8s/worker-sandbox/README.md). */
  isolation: PodIsolation;
}

/** A Kubernetes resource quantity (1, 500m, 2Gi, 1.5G). */
const K8S_QUANTITY = /^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
/** A node profile: the runtime's default, or one installed on the nodes (a path below the kubelet's folder, never above it). */
const NODE_PROFILE = /^(RuntimeDefault|localhost\/(?!.*\.\.)[A-Za-z0-9._-][A-Za-z0-9._\/-]*)$/;
const NODE_PROFILE_ADVICE = "expected RuntimeDefault or localhost/<name> (a profile installed on the nodes, such as localhost/agent-work-bwrap.json)";

function nodeProfile(value: string): NodeProfile {
  return value === "RuntimeDefault" ? { type: "RuntimeDefault" } : { type: "Localhost", localhostProfile: value.slice("localhost/".length) };
}

const { integer, oneOf, text, bool } = fieldBuilders(K8S_VARS);

export const K8S_FIELDS = {
  K8S_NAMESPACE: optionalText((v) =>
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v) ? null : "expected a namespace name such as agent-work (lowercase letters, digits and dashes, at most 63)",
  ),
  K8S_KUBECONFIG: optionalText(),
  K8S_IMAGE: optionalText((v) => (/^[^\s]+$/.test(v) ? null : "expected an image reference such as ghcr.io/acme/agent-work-worker:1.0, without spaces")),
  K8S_CPU: text("K8S_CPU", (v) => (K8S_QUANTITY.test(v) ? null : "expected a CPU quantity such as 1, 2 or 500m")),
  K8S_MEMORY: text("K8S_MEMORY", (v) => (K8S_QUANTITY.test(v) ? null : "expected a memory quantity such as 2Gi or 512Mi")),
  K8S_EPHEMERAL_STORAGE: text("K8S_EPHEMERAL_STORAGE", (v) => (K8S_QUANTITY.test(v) ? null : "expected a storage quantity such as 10Gi")),
  K8S_MAX_JOBS: integer("K8S_MAX_JOBS", 1, 10_000),
  K8S_TTL_SECONDS_AFTER_FINISHED: integer("K8S_TTL_SECONDS_AFTER_FINISHED", 0, 7 * 24 * 3600),
  K8S_RUN_AS_USER: integer("K8S_RUN_AS_USER", 1, 2_147_483_647, " (0 is root, which worker pods never run as)"),
  K8S_AGENT_SANDBOX: oneOf("K8S_AGENT_SANDBOX", ["bwrap", "none"] as const),
  K8S_USER_NAMESPACE: bool("K8S_USER_NAMESPACE"),
  K8S_SECCOMP_PROFILE: text("K8S_SECCOMP_PROFILE", (v) => (NODE_PROFILE.test(v) ? null : NODE_PROFILE_ADVICE)),
  K8S_APPARMOR_PROFILE: optionalText((v) => (NODE_PROFILE.test(v) ? null : NODE_PROFILE_ADVICE)),
  K8S_RUNTIME_CLASS: optionalText((v) => (/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v) ? null : "expected a RuntimeClass name such as gvisor")),
} satisfies Record<VarName<typeof K8S_VARS>, EnvField>;

type K8sValues = Partial<FieldValues<typeof K8S_FIELDS>>;

/** The k8s backend when K8S_NAMESPACE is set, with warnings where its sandbox cannot work or is weak; else a warning for K8S_ variables set in vain. */
export function resolveK8s(values: K8sValues, ctx: RuleContext): K8sConfig | undefined {
  const { env, warnings, fail } = ctx;
  let k8s: K8sConfig | undefined;
  if (values.K8S_NAMESPACE !== undefined) {
    let kubeconfig: string | undefined;
    if (values.K8S_KUBECONFIG !== undefined) {
      kubeconfig = resolve(values.K8S_KUBECONFIG);
      try {
        readFileSync(kubeconfig, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
        fail(
          "K8S_KUBECONFIG",
          `cannot read ${kubeconfig} (${code}); expected a kubeconfig file, or leave it unset when the controller runs inside the cluster`,
        );
      }
    }
    if (values.K8S_IMAGE === undefined) {
      fail(
        "K8S_IMAGE",
        'required with K8S_NAMESPACE: the worker image, with node 20+, git and the worker script at /app/worker/agent-work-worker.mjs (see "Run on Kubernetes" in README.md)',
      );
    } else if (values.K8S_CPU && values.K8S_MEMORY && values.K8S_EPHEMERAL_STORAGE && values.K8S_AGENT_SANDBOX) {
      k8s = {
        namespace: values.K8S_NAMESPACE,
        image: values.K8S_IMAGE,
        cpu: values.K8S_CPU,
        memory: values.K8S_MEMORY,
        ephemeralStorage: values.K8S_EPHEMERAL_STORAGE,
        maxJobs: values.K8S_MAX_JOBS ?? 4,
        ttlSecondsAfterFinished: values.K8S_TTL_SECONDS_AFTER_FINISHED ?? 600,
        runAsUser: values.K8S_RUN_AS_USER ?? 1000,
        agentSandbox: values.K8S_AGENT_SANDBOX,
        isolation: {
          userNamespace: values.K8S_USER_NAMESPACE ?? false,
          seccompProfile: nodeProfile(values.K8S_SECCOMP_PROFILE ?? "RuntimeDefault"),
          ...(values.K8S_APPARMOR_PROFILE !== undefined ? { appArmorProfile: nodeProfile(values.K8S_APPARMOR_PROFILE) } : {}),
          ...(values.K8S_RUNTIME_CLASS !== undefined ? { runtimeClassName: values.K8S_RUNTIME_CLASS } : {}),
        },
      };
      if (kubeconfig !== undefined) k8s.kubeconfig = kubeconfig;
      if (k8s.agentSandbox === "bwrap" && (!k8s.isolation.userNamespace || k8s.isolation.seccompProfile.type === "RuntimeDefault")) {
        warnings.push(
          "K8S_AGENT_SANDBOX=bwrap with " +
            (k8s.isolation.userNamespace
              ? "RuntimeDefault seccomp"
              : k8s.isolation.seccompProfile.type === "RuntimeDefault"
                ? "RuntimeDefault seccomp and no user namespace"
                : "no user namespace") +
            ": bubblewrap cannot build the agent's sandbox in a worker pod (the runtime refuses its namespaces and its fresh /proc), so every k8s job would fail at the agent step. " +
            "Set K8S_USER_NAMESPACE=true and K8S_SECCOMP_PROFILE=localhost/agent-work-bwrap.json (Kubernetes 1.35+; k8s/worker-sandbox/README.md), " +
            "or K8S_AGENT_SANDBOX=none with a stronger pod boundary such as K8S_RUNTIME_CLASS=gvisor",
        );
      }
      if (!/@sha256:[0-9a-f]{64}$/.test(k8s.image)) {
        warnings.push(`K8S_IMAGE=${k8s.image} is not pinned by digest: whoever moves the tag changes what every job runs; name it as <image>@sha256:<digest>`);
      }
      if (k8s.agentSandbox === "none") {
        warnings.push(
          "K8S_AGENT_SANDBOX=none: inside a worker pod the agent runs as the same user as the worker script and can read the job's mounted input, which holds the repository token; the pod, not bubblewrap, is its boundary",
        );
      }
    }
  } else {
    const stray = Object.keys(env).filter((name) => name.startsWith("K8S_") && blankToUndefined(env[name]) !== undefined);
    if (stray.length > 0)
      warnings.push(
        `${stray.join(", ")} ${stray.length === 1 ? "is" : "are"} set but K8S_NAMESPACE is not, so the k8s backend is off and ${stray.length === 1 ? "it is" : "they are"} unused`,
      );
  }
  return k8s;
}
