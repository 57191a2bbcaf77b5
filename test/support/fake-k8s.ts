/**
 * A fake Kubernetes API server on 127.0.0.1, for the k8s backend's tests (there is no cluster
 * here). It serves what the backend uses with the real JSON shapes and status codes — Jobs
 * (create / get / list by label selector / merge-patch / delete with a propagation policy),
 * Secrets, pods and pod logs (follow, timestamps, sinceTime) — records every request, and plays
 * the parts of the cluster that matter to the backend:
 *
 * - the Job controller: a Job that is not suspended gets one pod; `activeDeadlineSeconds` (from the
 *   Job's start) fails it with DeadlineExceeded and stops its pods; `ttlSecondsAfterFinished`
 *   deletes it once finished; with `backoffLimit: 0` a failed pod fails the Job;
 * - the kubelet: a pod "runs" its container as a local child process. Volumes become folders
 *   (a Secret volume holds its keys as files), and container paths in the command, working dir
 *   and environment are rewritten to those folders and to `imageFiles` (the image's contents on
 *   this machine). So `sh -c "exec node /app/worker/agent-work-worker.mjs < /run/agent-work/input.json"`
 *   really runs the worker script with the Secret's data on stdin; stdout and stderr become the
 *   pod log. A pod whose Secret does not exist yet waits (ContainerCreating) until it does;
 *   `runAsNonRoot` without a non-zero `runAsUser` is refused like the kubelet does; an image
 *   `pullable` refuses gives ErrImagePull. Stopping a pod sends SIGTERM to its process group,
 *   SIGKILL after the grace period, then kills whatever still runs in its folders (a container's
 *   processes die with it);
 * - the garbage collector: deleting a Job with `Foreground` keeps it (deletionTimestamp,
 *   `foregroundDeletion` finalizer) until its pods are gone; `Background` removes it at once and
 *   its pods after; no policy orphans the pods (the API's default for Jobs). Objects owned by a
 *   Job (by uid) are deleted after it, and so is an object whose owner does not exist.
 *
 * Polling is what the backend uses; a `watch=true` request is answered 400 (not served here).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { processesUnder } from "../contract/live-processes.js";

// The API server's JSON, kept loose: the fake stores and serves objects as they came.
type Obj = Record<string, any>;

export interface RecordedRequest {
  method: string;
  /** Path without the query. */
  path: string;
  query: Record<string, string>;
  contentType?: string;
  authorization?: string;
  /** Parsed JSON, when there was a body. */
  body?: unknown;
  /** The status the fake answered. */
  status?: number;
}

export interface FakeK8sOptions {
  /** The image's files on this machine: container path → local path (e.g. the worker script). */
  imageFiles?: Record<string, string>;
  /** Images the kubelet can pull; others wait in ErrImagePull → ImagePullBackOff. Default: all. */
  pullable?: (image: string) => boolean;
  /** Real milliseconds per Kubernetes second (grace periods, deadlines, TTLs); default 1000. */
  msPerSecond?: number;
  /** The bearer token the server accepts (default: a random one, in `kubeConfig()`). */
  token?: string;
  /** What SelfSubjectAccessReview answers for the token's account, e.g. `delete batch/jobs` → false. Default: everything allowed. */
  allows?: (attributes: { namespace?: string; verb: string; group: string; resource: string; subresource: string }) => boolean;
}

export interface Failure {
  status: number;
  reason?: string;
  message?: string;
}

export interface FakeK8s {
  url: string;
  token: string;
  /** A KubeConfig pointing at this server with its token. */
  kubeConfig(): KubeConfig;
  /** The same as a kubeconfig file's YAML. */
  kubeconfigYaml(): string;
  requests: RecordedRequest[];
  /** Stored objects, as the API serves them. */
  jobs(namespace?: string): Obj[];
  pods(namespace?: string): Obj[];
  secrets(namespace?: string): Obj[];
  /** Adds an object as if someone else had created it (e.g. a foreign Job). */
  put(kind: "Job" | "Secret", namespace: string, body: Obj): Obj;
  /** The local folder under which a Job's pods keep their volumes and run. */
  jobDir(namespace: string, jobName: string): string;
  /** The next `times` requests matching answer `failure` instead (before any other check). */
  failNext(match: { method?: string; path: RegExp }, failure: Failure, times?: number): void;
  /** Breaks every open log stream's connection mid-response; returns how many. */
  breakLogStreams(): number;
  close(): Promise<void>;
}

interface LogLine {
  nanos: bigint;
  ts: string;
  text: string;
}

interface PodRuntime {
  child?: ChildProcess;
  started: boolean;
  exited: boolean;
  lines: LogLine[];
  followers: Set<{ res: http.ServerResponse; timestamps: boolean }>;
  dir: string;
  killTimer?: NodeJS.Timeout;
  stopping?: Promise<void>;
  exitedPromise: Promise<void>;
  markExited: () => void;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

function rfc3339(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Obj = typeof target === "object" && target !== null && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

type Requirement = { key: string; op: "=" | "!=" | "exists" | "!exists"; value?: string };

function parseSelector(selector: string | undefined): Requirement[] | null {
  if (!selector) return [];
  const out: Requirement[] = [];
  for (const part of selector
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*!=\s*([\w.-]*)$/.exec(part))) out.push({ key: m[1]!, op: "!=", value: m[2]! });
    else if ((m = /^([\w./-]+)\s*==?\s*([\w.-]*)$/.exec(part))) out.push({ key: m[1]!, op: "=", value: m[2]! });
    else if ((m = /^!([\w./-]+)$/.exec(part))) out.push({ key: m[1]!, op: "!exists" });
    else if ((m = /^([\w./-]+)$/.exec(part))) out.push({ key: m[1]!, op: "exists" });
    else return null;
  }
  return out;
}

function matches(labels: Record<string, string> | undefined, reqs: Requirement[]): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    switch (r.op) {
      case "=":
        return l[r.key] === r.value;
      case "!=":
        return l[r.key] !== r.value;
      case "exists":
        return r.key in l;
      case "!exists":
        return !(r.key in l);
    }
  });
}

export async function startFakeK8s(options: FakeK8sOptions = {}): Promise<FakeK8s> {
  const token = options.token ?? `fake-${randomBytes(12).toString("hex")}`;
  const ms = options.msPerSecond ?? 1000;
  const root = mkdtempSync(path.join(os.tmpdir(), "fake-k8s-"));
  const requests: RecordedRequest[] = [];
  const failures: { method?: string; path: RegExp; failure: Failure; times: number }[] = [];
  const jobs = new Map<string, Obj>();
  const pods = new Map<string, Obj>();
  const secrets = new Map<string, Obj>();
  const runtimes = new Map<string, PodRuntime>();
  const timers = new Set<NodeJS.Timeout>();
  let resourceVersion = 1000;
  let lastNanos = 0n;
  let closed = false;

  const key = (ns: string, name: string) => `${ns}/${name}`;
  const later = (fn: () => void, delayMs: number) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, delayMs);
    t.unref();
    timers.add(t);
    return t;
  };
  const cancel = (t: NodeJS.Timeout | undefined) => {
    if (t) {
      clearTimeout(t);
      timers.delete(t);
    }
  };
  const bump = (o: Obj) => {
    o.metadata.resourceVersion = String(++resourceVersion);
  };

  function stamp(): { nanos: bigint; ts: string } {
    let nanos = BigInt(Date.now()) * 1_000_000n;
    if (nanos <= lastNanos) nanos = lastNanos + 1n;
    lastNanos = nanos;
    const seconds = new Date(Number(nanos / 1_000_000_000n) * 1000).toISOString().replace(/\.\d{3}Z$/, "");
    const frac = String(nanos % 1_000_000_000n)
      .padStart(9, "0")
      .replace(/0+$/, "");
    return { nanos, ts: `${seconds}${frac ? `.${frac}` : ""}Z` };
  }

  // ---- the garbage collector ------------------------------------------------------------------

  function ownedBy(o: Obj, uid: string): boolean {
    return (o.metadata?.ownerReferences ?? []).some((r: Obj) => r.uid === uid);
  }

  function collectDependents(uid: string) {
    later(() => {
      for (const [k, s] of secrets) if (ownedBy(s, uid)) secrets.delete(k);
    }, 20);
  }

  /** An object whose every owner is gone is deleted (checked shortly after it is created). */
  function collectIfOrphaned(map: Map<string, Obj>, k: string) {
    later(() => {
      const o = map.get(k);
      const refs: Obj[] = o?.metadata?.ownerReferences ?? [];
      if (o && refs.length > 0 && !refs.some((r) => [...jobs.values()].some((j) => j.metadata.uid === r.uid))) map.delete(k);
    }, 20);
  }

  // ---- the kubelet ----------------------------------------------------------------------------

  function setWaiting(pod: Obj, reason: string, message?: string) {
    const c = pod.spec.containers[0];
    pod.status.containerStatuses = [
      {
        name: c.name,
        image: c.image,
        imageID: "",
        ready: false,
        started: false,
        restartCount: 0,
        state: { waiting: { reason, ...(message ? { message } : {}) } },
      },
    ];
    bump(pod);
  }

  function appendLine(rt: PodRuntime, text: string) {
    const line = { ...stamp(), text };
    rt.lines.push(line);
    for (const f of rt.followers) f.res.write(f.timestamps ? `${line.ts} ${line.text}\n` : `${line.text}\n`);
  }

  function lineReader(rt: PodRuntime) {
    let buf = "";
    return {
      push(chunk: Buffer) {
        buf += chunk.toString("utf8");
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          appendLine(rt, buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      },
      end() {
        if (buf !== "") appendLine(rt, buf);
        buf = "";
      },
    };
  }

  /** Container path → local path, in one pass, longest first, only at path boundaries. */
  function translator(map: Record<string, string>) {
    const keys = Object.keys(map).sort((a, b) => b.length - a.length);
    if (keys.length === 0) return (s: string) => s;
    const re = new RegExp(`(^|[\\s'"<>=:])(${keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})(?=$|[\\s'"/<>:])`, "g");
    return (s: string) => s.replace(re, (_, pre: string, p: string) => `${pre}${map[p]}`);
  }

  function tryStart(podKey: string) {
    const pod = pods.get(podKey);
    const rt = runtimes.get(podKey);
    if (!pod || !rt || rt.started || pod.metadata.deletionTimestamp) return;
    const ns = pod.metadata.namespace as string;
    const spec = pod.spec as Obj;
    const c = spec.containers[0] as Obj;
    if (options.pullable && !options.pullable(c.image)) {
      setWaiting(pod, "ErrImagePull", `failed to pull image "${c.image}": not found`);
      later(() => pods.has(podKey) && setWaiting(pod, "ImagePullBackOff", `Back-off pulling image "${c.image}"`), 30);
      return;
    }
    const runAsNonRoot = c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot;
    const runAsUser = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
    if (runAsNonRoot && (runAsUser === undefined || runAsUser === 0)) {
      setWaiting(pod, "CreateContainerConfigError", "container has runAsNonRoot and image will run as root");
      return;
    }
    // Volumes: a Secret that does not exist yet keeps the pod in ContainerCreating (FailedMount).
    const volumeDirs: Record<string, string> = {};
    for (const v of (spec.volumes ?? []) as Obj[]) {
      if (v.secret && !secrets.has(key(ns, v.secret.secretName)) && v.secret.optional !== true) {
        setWaiting(pod, "ContainerCreating");
        return;
      }
    }
    for (const v of (spec.volumes ?? []) as Obj[]) {
      const dir = path.join(rt.dir, "volumes", v.name);
      mkdirSync(dir, { recursive: true });
      volumeDirs[v.name] = dir;
      if (v.secret) {
        const s = secrets.get(key(ns, v.secret.secretName));
        for (const [file, b64] of Object.entries((s?.data ?? {}) as Record<string, string>)) {
          const p = path.join(dir, file);
          writeFileSync(p, Buffer.from(b64, "base64"));
          chmodSync(p, v.secret.defaultMode ?? 0o644);
        }
      }
    }
    const map: Record<string, string> = { ...(options.imageFiles ?? {}) };
    for (const m of (c.volumeMounts ?? []) as Obj[]) if (volumeDirs[m.name]) map[m.mountPath] = volumeDirs[m.name]!;
    const translate = translator(map);
    const argv = [...(c.command ?? []), ...(c.args ?? [])].map((a: string) => translate(a));
    if (argv.length === 0) {
      setWaiting(pod, "CreateContainerError", "the fake needs an explicit command");
      return;
    }
    const env: Record<string, string> = { PATH: `${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`, HOSTNAME: pod.metadata.name };
    for (const e of (c.env ?? []) as Obj[]) {
      if (typeof e.value !== "string") {
        setWaiting(pod, "CreateContainerConfigError", `env ${e.name}: only plain values are served by the fake`);
        return;
      }
      env[e.name] = translate(e.value);
    }
    const cwd = c.workingDir ? translate(c.workingDir) : rt.dir;
    mkdirSync(cwd, { recursive: true });

    rt.started = true;
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    rt.child = child;
    const startedAt = rfc3339();
    pod.status.phase = "Running";
    pod.status.conditions = [
      { type: "PodScheduled", status: "True", lastTransitionTime: pod.status.startTime },
      { type: "Initialized", status: "True", lastTransitionTime: startedAt },
      { type: "ContainersReady", status: "True", lastTransitionTime: startedAt },
      { type: "Ready", status: "True", lastTransitionTime: startedAt },
    ];
    pod.status.containerStatuses = [
      {
        name: c.name,
        image: c.image,
        imageID: `fake@sha256:${"0".repeat(64)}`,
        containerID: `fake://${child.pid}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt } },
      },
    ];
    bump(pod);
    const job = jobs.get(key(ns, ownerName(pod)));
    if (job) {
      job.status.ready = 1;
      bump(job);
    }
    const out = lineReader(rt);
    const err = lineReader(rt);
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    let done = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      out.end();
      err.end();
      void containerExited(podKey, code, signal, startedAt);
    };
    child.on("error", (e) => {
      appendLine(rt, `exec: ${e.message}`);
      finish(127, null);
    });
    // `close` waits for stdout and stderr; a grandchild holding them must not hold the container up.
    child.on("exit", (code, signal) => later(() => finish(code, signal), 1000));
    child.on("close", (code, signal) => finish(code, signal));
  }

  function ownerName(pod: Obj): string {
    return (pod.metadata.ownerReferences?.[0]?.name as string) ?? "";
  }

  async function killLeftovers(dir: string) {
    for (const p of await processesUnder(dir)) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }

  async function containerExited(podKey: string, code: number | null, signal: NodeJS.Signals | null, startedAt: string) {
    const pod = pods.get(podKey);
    const rt = runtimes.get(podKey);
    if (!rt) return;
    // The container's processes die with it.
    if (rt.child?.pid) {
      try {
        process.kill(-rt.child.pid, "SIGKILL");
      } catch {
        // the group is gone
      }
    }
    await killLeftovers(rt.dir);
    cancel(rt.killTimer);
    rt.exited = true;
    const endLogs = () => {
      for (const f of rt.followers) f.res.end();
      rt.followers.clear();
      rt.markExited();
    };
    if (!pod) return endLogs();
    const exitCode = code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0);
    const c = pod.spec.containers[0];
    pod.status.phase = exitCode === 0 ? "Succeeded" : "Failed";
    pod.status.containerStatuses = [
      {
        name: c.name,
        image: c.image,
        imageID: `fake@sha256:${"0".repeat(64)}`,
        containerID: `fake://${rt.child?.pid}`,
        ready: false,
        started: false,
        restartCount: 0,
        state: {
          terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt, finishedAt: rfc3339(), containerID: `fake://${rt.child?.pid}` },
        },
      },
    ];
    bump(pod);
    endLogs();
    if (pod.metadata.deletionTimestamp) {
      removePod(podKey);
      return;
    }
    const job = jobs.get(key(pod.metadata.namespace, ownerName(pod)));
    if (job && !job.metadata.deletionTimestamp) podFinished(job, exitCode === 0);
  }

  function removePod(podKey: string) {
    const pod = pods.get(podKey);
    pods.delete(podKey);
    const rt = runtimes.get(podKey);
    if (rt) {
      for (const f of rt.followers) f.res.end();
      rt.followers.clear();
    }
    runtimes.delete(podKey);
    if (!pod) return;
    const job = jobs.get(key(pod.metadata.namespace, ownerName(pod)));
    if (job?.metadata.deletionTimestamp && job.metadata.finalizers?.includes("foregroundDeletion") && podsOf(job).length === 0) removeJob(job);
  }

  /** SIGTERM, then SIGKILL after the grace period; a pod that never ran goes at once. */
  function stopPod(podKey: string, remove: boolean) {
    const pod = pods.get(podKey);
    const rt = runtimes.get(podKey);
    if (!pod) return;
    if (remove && !pod.metadata.deletionTimestamp) {
      pod.metadata.deletionTimestamp = rfc3339();
      pod.metadata.deletionGracePeriodSeconds = pod.spec.terminationGracePeriodSeconds ?? 30;
      bump(pod);
    }
    if (!rt?.child?.pid || rt.exited) {
      if (remove) removePod(podKey);
      return;
    }
    const pid = rt.child.pid;
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      // already gone
    }
    rt.killTimer ??= later(
      () => {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
        void killLeftovers(rt.dir);
      },
      (pod.spec.terminationGracePeriodSeconds ?? 30) * ms,
    );
  }

  // ---- the Job controller ---------------------------------------------------------------------

  function podsOf(job: Obj): [string, Obj][] {
    return [...pods.entries()].filter(([, p]) => ownedBy(p, job.metadata.uid));
  }

  const jobTimers = new Map<string, { deadline?: NodeJS.Timeout; ttl?: NodeJS.Timeout }>();

  function finished(job: Obj): boolean {
    return (job.status.conditions ?? []).some((c: Obj) => (c.type === "Complete" || c.type === "Failed") && c.status === "True");
  }

  function armDeadline(job: Obj) {
    const t = jobTimers.get(job.metadata.uid) ?? {};
    cancel(t.deadline);
    const ads = job.spec.activeDeadlineSeconds;
    if (typeof ads === "number" && job.status.startTime && !finished(job)) {
      const left = Date.parse(job.status.startTime) + ads * ms - Date.now();
      t.deadline = later(() => failJob(job, "DeadlineExceeded", "Job was active longer than specified deadline"), Math.max(0, left));
    }
    jobTimers.set(job.metadata.uid, t);
  }

  function armTtl(job: Obj) {
    const ttl = job.spec.ttlSecondsAfterFinished;
    if (typeof ttl !== "number") return;
    const t = jobTimers.get(job.metadata.uid) ?? {};
    t.ttl = later(() => {
      if (jobs.get(key(job.metadata.namespace, job.metadata.name)) === job) deleteJob(job, "Background");
    }, ttl * ms);
    jobTimers.set(job.metadata.uid, t);
  }

  function failJob(job: Obj, reason: string, message: string) {
    if (finished(job) || job.metadata.deletionTimestamp) return;
    const at = rfc3339();
    job.status.conditions = [
      ...(job.status.conditions ?? []),
      { type: "FailureTarget", status: "True", reason, message, lastProbeTime: at, lastTransitionTime: at },
      { type: "Failed", status: "True", reason, message, lastProbeTime: at, lastTransitionTime: at },
    ];
    job.status.failed = (job.status.failed ?? 0) + (job.status.active ?? 0);
    job.status.active = 0;
    job.status.ready = 0;
    bump(job);
    cancel(jobTimers.get(job.metadata.uid)?.deadline);
    // The Job controller deletes the pods still running (a deadline); finished ones are kept.
    for (const [k] of podsOf(job)) if (!runtimes.get(k)?.exited) stopPod(k, true);
    armTtl(job);
  }

  function podFinished(job: Obj, succeeded: boolean) {
    if (finished(job)) return;
    if (!succeeded) {
      job.status.failed = (job.status.failed ?? 0) + 1;
      job.status.active = 0;
      failJob(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit");
      return;
    }
    const at = rfc3339();
    job.status.active = 0;
    job.status.ready = 0;
    job.status.succeeded = 1;
    job.status.completionTime = at;
    job.status.conditions = [
      ...(job.status.conditions ?? []),
      { type: "SuccessCriteriaMet", status: "True", lastProbeTime: at, lastTransitionTime: at },
      { type: "Complete", status: "True", lastProbeTime: at, lastTransitionTime: at },
    ];
    bump(job);
    cancel(jobTimers.get(job.metadata.uid)?.deadline);
    armTtl(job);
  }

  function reconcileJob(job: Obj) {
    if (job.metadata.deletionTimestamp || finished(job)) return;
    const live = podsOf(job).filter(([, p]) => !p.metadata.deletionTimestamp);
    if (job.spec.suspend) {
      for (const [k] of live) stopPod(k, true);
      if (job.status.active) {
        job.status.active = 0;
        bump(job);
      }
      return;
    }
    if (live.length > 0 || (job.status.failed ?? 0) > (job.spec.backoffLimit ?? 6)) return;
    if (!job.status.startTime) job.status.startTime = rfc3339();
    job.status.active = 1;
    job.status.ready = 0;
    bump(job);
    armDeadline(job);
    const ns = job.metadata.namespace as string;
    const name = `${job.metadata.name}-${randomBytes(3).toString("hex").slice(0, 5)}`;
    const template = clone(job.spec.template) as Obj;
    const pod: Obj = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        generateName: `${job.metadata.name}-`,
        namespace: ns,
        uid: randomUUID(),
        creationTimestamp: rfc3339(),
        labels: { ...(template.metadata?.labels ?? {}) },
        annotations: template.metadata?.annotations ?? {},
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: job.metadata.name, uid: job.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: { ...template.spec, nodeName: "fake-node", serviceAccountName: template.spec.serviceAccountName ?? "default" },
      status: { phase: "Pending", startTime: rfc3339(), conditions: [{ type: "PodScheduled", status: "True" }] },
    };
    bump(pod);
    const podKey = key(ns, name);
    pods.set(podKey, pod);
    let markExited!: () => void;
    const exitedPromise = new Promise<void>((r) => (markExited = r));
    runtimes.set(podKey, {
      started: false,
      exited: false,
      lines: [],
      followers: new Set(),
      dir: path.join(root, ns, job.metadata.name, name),
      exitedPromise,
      markExited,
    });
    mkdirSync(path.join(root, ns, job.metadata.name, name), { recursive: true });
    setWaiting(pod, "ContainerCreating");
    later(() => tryStart(podKey), 5);
  }

  function removeJob(job: Obj) {
    const k = key(job.metadata.namespace, job.metadata.name);
    if (jobs.get(k) !== job) return;
    jobs.delete(k);
    const t = jobTimers.get(job.metadata.uid);
    cancel(t?.deadline);
    cancel(t?.ttl);
    jobTimers.delete(job.metadata.uid);
    collectDependents(job.metadata.uid);
  }

  /** Returns what the API answers: the object while finalizers hold it, else null (a Status). */
  function deleteJob(job: Obj, policy: string): Obj | null {
    const dependents = podsOf(job);
    if (policy === "Foreground") {
      if (!job.metadata.deletionTimestamp) {
        job.metadata.deletionTimestamp = rfc3339();
        job.metadata.deletionGracePeriodSeconds = 0;
        job.metadata.finalizers = [...(job.metadata.finalizers ?? []), "foregroundDeletion"];
        bump(job);
        const t = jobTimers.get(job.metadata.uid);
        cancel(t?.deadline);
        cancel(t?.ttl);
        for (const [k] of dependents) stopPod(k, true);
        if (dependents.length === 0) later(() => removeJob(job), 10);
      }
      return job;
    }
    removeJob(job);
    if (policy === "Orphan") {
      for (const [, p] of dependents) p.metadata.ownerReferences = [];
      for (const s of secrets.values()) if (ownedBy(s, job.metadata.uid)) s.metadata.ownerReferences = [];
      return null;
    }
    for (const [k] of dependents) later(() => stopPod(k, true), 10);
    return null;
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  function send(res: http.ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  function statusBody(code: number, reason: string, message: string, details?: Obj): Obj {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: code < 400 ? "Success" : "Failure",
      message,
      reason,
      ...(details ? { details } : {}),
      code,
    };
  }

  function fail(res: http.ServerResponse, code: number, reason: string, message: string, details?: Obj) {
    send(res, code, statusBody(code, reason, message, details));
  }

  function list(res: http.ServerResponse, kind: string, apiVersion: string, items: Obj[], selector: string | undefined) {
    const reqs = parseSelector(selector);
    if (reqs === null) return fail(res, 400, "BadRequest", `unable to parse requirement: ${selector}`);
    send(res, 200, { kind, apiVersion, metadata: { resourceVersion: String(resourceVersion) }, items: items.filter((o) => matches(o.metadata.labels, reqs)) });
  }

  function create(
    map: Map<string, Obj>,
    ns: string,
    body: Obj,
    group: string,
    plural: string,
    res: http.ServerResponse,
    kind: string,
    apiVersion: string,
  ): Obj | null {
    const name = body?.metadata?.name;
    if (typeof name !== "string" || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
      fail(res, 422, "Invalid", `${plural}${group ? `.${group}` : ""} "${name}" is invalid: metadata.name: Invalid value`);
      return null;
    }
    if (body.metadata.namespace && body.metadata.namespace !== ns) {
      fail(res, 400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
      return null;
    }
    if (map.has(key(ns, name))) {
      fail(res, 409, "AlreadyExists", `${plural}${group ? `.${group}` : ""} "${name}" already exists`, { name, group, kind: plural });
      return null;
    }
    const obj: Obj = clone(body);
    obj.kind = kind;
    obj.apiVersion = apiVersion;
    obj.metadata = { ...obj.metadata, namespace: ns, uid: randomUUID(), creationTimestamp: rfc3339(), generation: 1 };
    bump(obj);
    map.set(key(ns, name), obj);
    return obj;
  }

  async function readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  function serveLog(res: http.ServerResponse, ns: string, name: string, q: Record<string, string>) {
    const pod = pods.get(key(ns, name));
    const rt = runtimes.get(key(ns, name));
    if (!pod || !rt) return fail(res, 404, "NotFound", `pods "${name}" not found`, { name, kind: "pods" });
    const container = pod.spec.containers[0].name as string;
    if (q.container && q.container !== container) return fail(res, 400, "BadRequest", `container ${q.container} is not valid for pod ${name}`);
    if (!rt.started) {
      const waiting = pod.status.containerStatuses?.[0]?.state?.waiting?.reason ?? "ContainerCreating";
      return fail(res, 400, "BadRequest", `container "${container}" in pod "${name}" is waiting to start: ${waiting}`);
    }
    const timestamps = q.timestamps === "true";
    let since = -1n;
    if (q.sinceTime) {
      const t = Date.parse(q.sinceTime);
      if (Number.isNaN(t)) return fail(res, 400, "BadRequest", `sinceTime: invalid value ${q.sinceTime}`);
      since = BigInt(t) * 1_000_000n;
    }
    res.writeHead(200, { "content-type": "text/plain", "transfer-encoding": "chunked" });
    for (const line of rt.lines) if (line.nanos >= since) res.write(timestamps ? `${line.ts} ${line.text}\n` : `${line.text}\n`);
    if (q.follow === "true" && !rt.exited) {
      const f = { res, timestamps };
      rt.followers.add(f);
      res.on("close", () => rt.followers.delete(f));
    } else {
      res.end();
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? "/", "http://fake");
    const q = Object.fromEntries(url.searchParams);
    const text = await readBody(req);
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const record: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: q,
      ...(req.headers["content-type"] ? { contentType: req.headers["content-type"] } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(body !== undefined ? { body } : {}),
    };
    requests.push(record);
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = ((status: number, ...rest: unknown[]) => {
      record.status = status;
      return (origWriteHead as (...a: unknown[]) => http.ServerResponse)(status, ...rest);
    }) as typeof res.writeHead;

    const injected = failures.find((f) => f.times > 0 && (!f.method || f.method === record.method) && f.path.test(url.pathname));
    if (injected) {
      injected.times -= 1;
      return fail(res, injected.failure.status, injected.failure.reason ?? "InternalError", injected.failure.message ?? "injected by the test");
    }
    if (req.headers.authorization !== `Bearer ${token}`) return fail(res, 401, "Unauthorized", "Unauthorized");
    if (q.watch === "true" || q.watch === "1") return fail(res, 400, "BadRequest", "fake-k8s does not serve watch; the backend polls");
    const b = (body ?? {}) as Obj;
    const method = record.method;
    let m: RegExpExecArray | null;

    if (url.pathname === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" && method === "POST") {
      const spec = (b.spec ?? {}) as { resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string; subresource?: string } };
      const ra = spec.resourceAttributes ?? {};
      const allowed = (options.allows ?? (() => true))({
        namespace: ra.namespace,
        verb: ra.verb ?? "",
        group: ra.group ?? "",
        resource: ra.resource ?? "",
        subresource: ra.subresource ?? "",
      });
      return send(res, 201, {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        metadata: {},
        spec,
        status: { allowed, ...(allowed ? {} : { reason: "" }) },
      });
    }
    if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs$/.exec(url.pathname))) {
      const ns = m[1]!;
      if (method === "GET")
        return list(
          res,
          "JobList",
          "batch/v1",
          [...jobs.values()].filter((j) => j.metadata.namespace === ns),
          q.labelSelector,
        );
      if (method === "POST") {
        const job = create(jobs, ns, b, "batch", "jobs", res, "Job", "batch/v1");
        if (!job) return;
        job.spec.suspend ??= false;
        job.spec.backoffLimit ??= 6;
        job.spec.completions ??= 1;
        job.spec.parallelism ??= 1;
        const uidLabels = {
          "batch.kubernetes.io/controller-uid": job.metadata.uid,
          "batch.kubernetes.io/job-name": job.metadata.name,
          "controller-uid": job.metadata.uid,
          "job-name": job.metadata.name,
        };
        job.spec.selector = { matchLabels: { "batch.kubernetes.io/controller-uid": job.metadata.uid } };
        job.spec.template.metadata = { ...(job.spec.template.metadata ?? {}), labels: { ...(job.spec.template.metadata?.labels ?? {}), ...uidLabels } };
        job.status = job.spec.suspend ? { conditions: [{ type: "Suspended", status: "True", reason: "JobSuspended", message: "Job suspended" }] } : {};
        reconcileJob(job);
        return send(res, 201, job);
      }
    }
    if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/]+)$/.exec(url.pathname))) {
      const [ns, name] = [m[1]!, m[2]!];
      const job = jobs.get(key(ns, name));
      if (!job) return fail(res, 404, "NotFound", `jobs.batch "${name}" not found`, { name, group: "batch", kind: "jobs" });
      if (method === "GET") return send(res, 200, job);
      if (method === "PATCH") {
        if (!/^application\/(merge-patch|strategic-merge-patch)\+json/.test(record.contentType ?? ""))
          return fail(res, 415, "UnsupportedMediaType", `the fake serves merge patches, not ${record.contentType}`);
        const before = { suspend: job.spec.suspend, ads: job.spec.activeDeadlineSeconds };
        const patched = mergePatch(job, b) as Obj;
        job.spec = patched.spec;
        job.metadata = { ...job.metadata, labels: patched.metadata?.labels, annotations: patched.metadata?.annotations };
        bump(job);
        if (before.suspend && !job.spec.suspend) {
          // Resuming (re)starts the clock of activeDeadlineSeconds.
          job.status.startTime = rfc3339();
          job.status.conditions = (job.status.conditions ?? []).map((c: Obj) =>
            c.type === "Suspended" ? { ...c, status: "False", reason: "JobResumed", message: "Job resumed" } : c,
          );
        }
        reconcileJob(job);
        if (before.ads !== job.spec.activeDeadlineSeconds) armDeadline(job);
        return send(res, 200, job);
      }
      if (method === "DELETE") {
        const policy = q.propagationPolicy ?? (b.propagationPolicy as string | undefined) ?? "Orphan";
        const kept = deleteJob(job, policy);
        return kept ? send(res, 200, kept) : send(res, 200, statusBody(200, "", "", { name, group: "batch", kind: "jobs", uid: job.metadata.uid }));
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets$/.exec(url.pathname))) {
      const ns = m[1]!;
      if (method === "GET")
        return list(
          res,
          "SecretList",
          "v1",
          [...secrets.values()].filter((s) => s.metadata.namespace === ns),
          q.labelSelector,
        );
      if (method === "POST") {
        const secret = create(secrets, ns, b, "", "secrets", res, "Secret", "v1");
        if (!secret) return;
        const k = key(ns, secret.metadata.name);
        collectIfOrphaned(secrets, k);
        // The kubelet retries mounting: pods that waited for this Secret start now.
        for (const [pk, p] of pods) if (p.metadata.namespace === ns) later(() => tryStart(pk), 5);
        return send(res, 201, secret);
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(url.pathname))) {
      const [ns, name] = [m[1]!, m[2]!];
      const secret = secrets.get(key(ns, name));
      if (!secret) return fail(res, 404, "NotFound", `secrets "${name}" not found`, { name, kind: "secrets" });
      if (method === "GET") return send(res, 200, secret);
      if (method === "DELETE") {
        secrets.delete(key(ns, name));
        return send(res, 200, statusBody(200, "", "", { name, kind: "secrets", uid: secret.metadata.uid }));
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname)) && method === "GET") {
      const ns = m[1]!;
      return list(
        res,
        "PodList",
        "v1",
        [...pods.values()].filter((p) => p.metadata.namespace === ns),
        q.labelSelector,
      );
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname)) && method === "GET") {
      const pod = pods.get(key(m[1]!, m[2]!));
      return pod ? send(res, 200, pod) : fail(res, 404, "NotFound", `pods "${m[2]}" not found`, { name: m[2], kind: "pods" });
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(url.pathname)) && method === "GET") return serveLog(res, m[1]!, m[2]!, q);
    return fail(res, 404, "NotFound", `fake-k8s serves no ${method} ${url.pathname}`);
  }

  const sockets = new Set<import("node:net").Socket>();
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) fail(res, 500, "InternalError", `fake-k8s: ${err.message}`);
      else res.destroy();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const byNs = (map: Map<string, Obj>, ns?: string) => [...map.values()].filter((o) => ns === undefined || o.metadata.namespace === ns);

  return {
    url,
    token,
    requests,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromClusterAndUser({ name: "fake", server: url, skipTLSVerify: true }, { name: "agent-work-controller", token });
      return kc;
    },
    kubeconfigYaml() {
      return [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `- name: fake`,
        `  cluster: { server: "${url}", insecure-skip-tls-verify: true }`,
        "users:",
        `- name: agent-work-controller`,
        `  user: { token: "${token}" }`,
        "contexts:",
        "- name: fake",
        "  context: { cluster: fake, user: agent-work-controller, namespace: agent-work }",
        "current-context: fake",
        "",
      ].join("\n");
    },
    jobs: (ns) => byNs(jobs, ns),
    pods: (ns) => byNs(pods, ns),
    secrets: (ns) => byNs(secrets, ns),
    put(kind, ns, body) {
      const map = kind === "Job" ? jobs : secrets;
      const obj: Obj = { ...clone(body), kind, apiVersion: kind === "Job" ? "batch/v1" : "v1" };
      obj.metadata = { ...obj.metadata, namespace: ns, uid: randomUUID(), creationTimestamp: rfc3339() };
      if (kind === "Job") obj.status ??= {};
      bump(obj);
      map.set(key(ns, obj.metadata.name), obj);
      return obj;
    },
    jobDir: (ns, jobName) => path.join(root, ns, jobName),
    failNext(match, failure, times = 1) {
      failures.push({ ...(match.method ? { method: match.method } : {}), path: match.path, failure, times });
    },
    breakLogStreams() {
      let n = 0;
      for (const rt of runtimes.values()) {
        for (const f of rt.followers) {
          f.res.socket?.destroy();
          n += 1;
        }
        rt.followers.clear();
      }
      return n;
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const waits: Promise<void>[] = [];
      for (const rt of runtimes.values()) {
        if (rt.child?.pid && !rt.exited) {
          try {
            process.kill(-rt.child.pid, "SIGKILL");
          } catch {
            // gone
          }
          waits.push(Promise.race([rt.exitedPromise, new Promise<void>((r) => setTimeout(r, 2000))]));
        }
      }
      await Promise.all(waits);
      for (const rt of runtimes.values()) await killLeftovers(rt.dir);
      runtimes.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
