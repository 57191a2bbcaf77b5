/**
 * The Cloud Run Admin API (v2) and Cloud Logging's entries.list, faked as one HTTP server on
 * 127.0.0.1 for the cloudrun backend's REST client.
 *
 * - jobs: create (409 on a second), get, list, delete (its executions are stopped first), run.
 * - executions: `jobs.run` starts one at once as a local child process in its own folder, the way
 *   fake-k8s's kubelet runs a pod: the container's command with its paths translated (the image's
 *   files from `imageFiles`, a secret volume becomes a folder holding the secret's latest version,
 *   read through `readSecret` — the fake Secret Manager of fake-gcp). Cancel sends SIGTERM, then
 *   SIGKILL after `graceMs`; the override timeout kills it as Cloud Run's task timeout does.
 * - logs: each stdout and stderr line becomes a Cloud Logging entry labelled with its execution,
 *   served by `POST /v2/entries:list` filtered by job, execution and `timestamp>=`.
 * - what `agent-work doctor` reads beside Cloud Run, on the same server: Resource Manager's
 *   `projects.testIamPermissions` and IAM's `serviceAccounts.testIamPermissions` (answering the
 *   asked permissions the caller holds, `{}` when none, as proto3 JSON leaves an empty list out),
 *   and Artifact Registry's `packages.tags.get` and `packages.versions.get` for `images`.
 *   With `projects` set, any other project answers 403 "(or it may not exist)", as Google does.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { processesUnder } from "../contract/live-processes.js";

type Obj = Record<string, any>;

export interface FakeCloudRunOptions {
  /** Image path → local folder (e.g. /app/worker → the repository's worker/). */
  imageFiles?: Record<string, string>;
  /** The latest version of a Secret Manager secret by id, as text; undefined when it has none. */
  readSecret: (secretId: string) => string | undefined;
  /**
   * Cloud Logging's ingestion delay: each entry becomes visible after a random 0..logLagMs, so
   * entries appear late and out of order, as they do (default 0).
   */
  logLagMs?: number;
  /** Between a cancel's SIGTERM and SIGKILL (default 2000). */
  graceMs?: number;
  /** Projects that exist; default every project asked about. */
  projects?: string[];
  /** Regions Cloud Run serves; a job listing elsewhere answers 404 (default any). */
  regions?: string[];
  /** Permissions the caller holds on each project (testIamPermissions); default every one asked. */
  granted?: string[];
  /** Service accounts that exist, each with the permissions the caller holds on it; default any, with every one asked. */
  serviceAccounts?: Record<string, string[]>;
  /** Images in Artifact Registry, `<location>-docker.pkg.dev/<project>/<repo>/<image>@sha256:<digest>` with their tags. */
  images?: { ref: string; tags?: string[] }[];
}

export interface FakeRunRequest {
  method: string;
  path: string;
  status: number;
  body?: unknown;
}

interface Execution {
  name: string;
  job: string;
  dir: string;
  child?: ChildProcess;
  record: Obj;
  timers: NodeJS.Timeout[];
}

export interface FakeCloudRun {
  url: string;
  requests: FakeRunRequest[];
  jobs(): Obj[];
  /** Every execution's record, as executions.get answers it. */
  executions(): Obj[];
  /** The folder an execution of this job runs in (its processes' cwd and volumes are under it). */
  jobDir(jobId: string): string;
  /** The next `times` requests matching get this HTTP error, without their effect. */
  failNext(match: { method: string; path: RegExp }, status: number, times?: number): void;
  close(): Promise<void>;
}

const STATUS: Record<number, string> = {
  400: "FAILED_PRECONDITION",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  429: "RESOURCE_EXHAUSTED",
  503: "UNAVAILABLE",
};

export async function startFakeCloudRun(options: FakeCloudRunOptions): Promise<FakeCloudRun> {
  const root = mkdtempSync(path.join(os.tmpdir(), "fake-cloudrun-"));
  const jobs = new Map<string, Obj>(); // by full name
  const executions = new Map<string, Execution>();
  const entries: Obj[] = [];
  const requests: FakeRunRequest[] = [];
  const faults: { method: string; path: RegExp; status: number; times: number }[] = [];
  let seq = 0;
  const graceMs = options.graceMs ?? 2000;
  const jobDir = (jobId: string) => path.join(root, jobId);

  const error = (status: number, message: string) => ({ status, body: { error: { code: status, status: STATUS[status] ?? "UNKNOWN", message } } });
  const operation = (done: boolean, extra: Obj = {}) => ({ name: `operations/${randomBytes(6).toString("hex")}`, done, ...extra });

  function log(e: Execution, stream: "stdout" | "stderr", text: string) {
    const [, project, , , , job] = e.name.split("/");
    entries.push({
      insertId: String(++seq).padStart(10, "0"),
      visibleAt: Date.now() + Math.random() * (options.logLagMs ?? 0),
      timestamp: new Date().toISOString(),
      textPayload: text,
      logName: `projects/${project}/logs/run.googleapis.com%2F${stream}`,
      resource: { type: "cloud_run_job", labels: { job_name: job } },
      labels: { "run.googleapis.com/execution_name": e.name.split("/").pop() },
    });
  }

  function lines(e: Execution, stream: "stdout" | "stderr") {
    let buf = "";
    return {
      push(chunk: Buffer) {
        buf += chunk.toString("utf8");
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          log(e, stream, buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      },
      end() {
        if (buf !== "") log(e, stream, buf);
        buf = "";
      },
    };
  }

  async function killAll(e: Execution) {
    if (e.child?.pid) {
      try {
        process.kill(-e.child.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    for (const p of await processesUnder(e.dir)) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }

  function finish(e: Execution, outcome: "succeeded" | "failed" | "cancelled") {
    if (e.record.completionTime) return;
    for (const t of e.timers) clearTimeout(t);
    e.record.completionTime = new Date().toISOString();
    e.record.runningCount = 0;
    e.record[`${outcome}Count`] = 1;
    e.record.conditions = [{ type: "Completed", state: outcome === "succeeded" ? "CONDITION_SUCCEEDED" : "CONDITION_FAILED", reason: outcome }];
    void killAll(e);
  }

  function stop(e: Execution, outcome: "failed" | "cancelled") {
    if (e.record.completionTime || e.record.stopping) return;
    e.record.stopping = outcome;
    if (e.child?.pid) {
      try {
        process.kill(-e.child.pid, "SIGTERM");
      } catch {
        // gone
      }
    }
    e.timers.push(setTimeout(() => finish(e, outcome), graceMs));
  }

  function start(job: Obj, overrides: Obj): Execution {
    const short = `${job.name.split("/").pop()}-${randomBytes(3).toString("hex")}`;
    const name = `${job.name}/executions/${short}`;
    const dir = path.join(jobDir(job.name.split("/").pop()), short);
    mkdirSync(dir, { recursive: true });
    const record: Obj = { name, createTime: new Date().toISOString(), runningCount: 0, succeededCount: 0, failedCount: 0, cancelledCount: 0 };
    const e: Execution = { name, job: job.name, dir, record, timers: [] };
    executions.set(name, e);
    job.latestCreatedExecution = { name, createTime: record.createTime };

    const task = job.template.template;
    const c = task.containers[0];
    const map: Record<string, string> = { ...(options.imageFiles ?? {}) };
    for (const v of (task.volumes ?? []) as Obj[]) {
      const vdir = path.join(dir, "volumes", v.name);
      mkdirSync(vdir, { recursive: true });
      for (const item of (v.secret?.items ?? []) as Obj[]) {
        const value = options.readSecret(v.secret.secret);
        if (value === undefined) {
          record.conditions = [{ type: "ResourcesAvailable", state: "CONDITION_FAILED", message: `Secret ${v.secret.secret} has no version` }];
          finish(e, "failed");
          return e;
        }
        const file = path.join(vdir, item.path);
        writeFileSync(file, value);
        chmodSync(file, item.mode ?? 0o444);
      }
      const mount = (c.volumeMounts as Obj[]).find((m) => m.name === v.name);
      if (mount) map[mount.mountPath] = vdir;
    }
    if (c.workingDir) map[c.workingDir] = path.join(dir, "workdir");
    const keys = Object.keys(map).sort((a, b) => b.length - a.length);
    const translate = (s: string) =>
      s.replace(
        new RegExp(`(^|[\\s<>=])(${keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})(?=$|[\\s/<>])`, "g"),
        (_, pre: string, p: string) => `${pre}${map[p]}`,
      );
    const argv = [...(c.command ?? []), ...(c.args ?? [])].map(translate);
    const env: Record<string, string> = {
      PATH: `${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
      CLOUD_RUN_EXECUTION: short,
      CLOUD_RUN_TASK_INDEX: "0",
    };
    for (const v of (c.env ?? []) as Obj[]) env[v.name] = translate(String(v.value));
    const cwd = c.workingDir ? map[c.workingDir]! : dir;
    mkdirSync(cwd, { recursive: true });

    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    e.child = child;
    record.startTime = new Date().toISOString();
    record.runningCount = 1;
    const out = lines(e, "stdout");
    const err = lines(e, "stderr");
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    child.on("close", (code) => {
      out.end();
      err.end();
      finish(e, record.stopping ?? (code === 0 ? "succeeded" : "failed"));
    });
    const timeout = /^(\d+)s$/.exec(overrides.timeout ?? task.timeout ?? "")?.[1];
    if (timeout) e.timers.push(setTimeout(() => stop(e, "failed"), Number(timeout) * 1000));
    return e;
  }

  function matches(entry: Obj, filter: string): boolean {
    const want = (re: RegExp) => re.exec(filter)?.[1];
    const job = want(/resource\.labels\.job_name="([^"]+)"/);
    const exec = want(/labels\."run\.googleapis\.com\/execution_name"="([^"]+)"/);
    const since = want(/timestamp>="([^"]+)"/);
    return (
      (!job || entry.resource.labels.job_name === job) &&
      (!exec || entry.labels["run.googleapis.com/execution_name"] === exec) &&
      (!since || entry.timestamp >= since)
    );
  }

  const projectExists = (project: string) => !options.projects || options.projects.includes(project);
  /** IAM's answer for a resource that is missing or hidden from the caller: the same 403 for both. */
  const denied = (permission: string, resource: string) => error(403, `Permission '${permission}' denied on resource '${resource}' (or it may not exist).`);
  const holding = (asked: unknown, held: string[] | undefined) => {
    const kept = ((asked as string[] | undefined) ?? []).filter((x) => !held || held.includes(x));
    return kept.length > 0 ? { permissions: kept } : {};
  };

  /** Resource Manager, IAM and Artifact Registry: what the doctor reads; null for any other path. */
  function doctorReads(method: string, p: string, body: Obj): { status: number; body: unknown } | null {
    let m: RegExpExecArray | null;
    if (method === "POST" && (m = /^\/v1\/projects\/([^/]+):testIamPermissions$/.exec(p))) {
      if (!projectExists(m[1]!)) return denied("resourcemanager.projects.get", `projects/${m[1]}`);
      return { status: 200, body: holding(body.permissions, options.granted) };
    }
    if (method === "POST" && (m = /^\/v1\/projects\/[^/]+\/serviceAccounts\/([^/:]+):testIamPermissions$/.exec(p))) {
      const email = decodeURIComponent(m[1]!);
      if (options.serviceAccounts && !(email in options.serviceAccounts))
        return error(404, `Service account projects/-/serviceAccounts/${email} does not exist.`);
      return { status: 200, body: holding(body.permissions, options.serviceAccounts?.[email]) };
    }
    m = /^\/v1\/(projects\/([^/]+)\/locations\/([^/]+)\/repositories\/([^/]+)\/packages\/([^/]+))\/(tags|versions)\/([^/]+)$/.exec(p);
    if (method === "GET" && m) {
      const [, pkgName, project, location, repo, pkg, kind, id] = m as unknown as string[];
      const image = `${location}-docker.pkg.dev/${project}/${repo}/${decodeURIComponent(pkg!)}`;
      const found = (options.images ?? [])
        .map((i) => ({ ...i, name: i.ref.split("@")[0], digest: i.ref.split("@")[1] }))
        .find((i) => i.name === image && (kind === "tags" ? (i.tags ?? []).includes(id!) : i.digest === decodeURIComponent(id!)));
      if (!found) return error(404, `Requested entity was not found.`);
      const version = `${pkgName}/versions/${found.digest}`;
      return { status: 200, body: kind === "tags" ? { name: `${pkgName}/tags/${id}`, version } : { name: version, createTime: "2026-12-01T00:00:00Z" } };
    }
    return null;
  }

  async function handle(method: string, url: URL, body: Obj): Promise<{ status: number; body: unknown }> {
    const p = url.pathname;
    const read = doctorReads(method, p, body);
    if (read) return read;
    const parentOf = /^\/v2\/projects\/([^/]+)\/locations\/([^/]+)\//.exec(p);
    if (parentOf && !projectExists(parentOf[1]!)) return denied("run.jobs.list", `projects/${parentOf[1]}/locations/${parentOf[2]}`);
    if (parentOf && options.regions && !options.regions.includes(parentOf[2]!))
      return error(404, `Location ${parentOf[2]} is not found or access is unauthorized.`);
    if (method === "POST" && p === "/v2/entries:list") {
      const visible = entries.filter((e) => e.visibleAt <= Date.now() && matches(e, String(body.filter ?? "")));
      return { status: 200, body: { entries: visible.map(({ visibleAt: _, ...e }) => e) } };
    }
    let m: RegExpExecArray | null;
    if ((m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+)\/jobs$/.exec(p))) {
      const parent = m[1]!;
      if (method === "GET") {
        const all = [...jobs.values()].filter((j) => j.name.startsWith(`${parent}/`));
        // Paged as Cloud Run pages: pageSize jobs, then a token for where the next page starts.
        const pageSize = Number(url.searchParams.get("pageSize") || all.length || 1);
        const from = Number(url.searchParams.get("pageToken") ?? 0);
        const page = all.slice(from, from + pageSize);
        return { status: 200, body: from + pageSize < all.length ? { jobs: page, nextPageToken: String(from + pageSize) } : { jobs: page } };
      }
      const id = url.searchParams.get("jobId") ?? "";
      const name = `${parent}/jobs/${id}`;
      if (jobs.has(name)) return error(409, `Resource '${id}' already exists.`);
      // Reconciling for a moment, as a new job is: jobs.run is refused until it is done.
      const job = { ...body, name, createTime: new Date().toISOString(), reconciling: true };
      jobs.set(name, job);
      setTimeout(() => (job.reconciling = false), 100);
      return { status: 200, body: operation(true, { response: job }) };
    }
    if ((m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/:]+)(:run)?$/.exec(p))) {
      const job = jobs.get(m[1]!);
      if (!job) return error(404, `Resource '${m[1]}' was not found`);
      if (m[2] && method === "POST") {
        if (job.reconciling) return error(400, `Job '${job.name.split("/").pop()}' is not ready: it is still being reconciled.`);
        const e = start(job, body.overrides ?? {});
        return { status: 200, body: operation(false, { metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Execution", ...e.record } }) };
      }
      if (method === "GET") return { status: 200, body: job };
      if (method === "DELETE") {
        for (const e of executions.values()) {
          if (e.job !== job.name) continue;
          if (!e.record.completionTime) finish(e, "cancelled");
          executions.delete(e.name);
        }
        jobs.delete(job.name);
        return { status: 200, body: operation(true) };
      }
    }
    if ((m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/]+)\/executions$/.exec(p)) && method === "GET") {
      if (!jobs.has(m[1]!)) return error(404, `Resource '${m[1]}' was not found`);
      return { status: 200, body: { executions: [...executions.values()].filter((e) => e.job === m![1]).map((e) => e.record) } };
    }
    if ((m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/]+\/executions\/[^/:]+)(:cancel)?$/.exec(p))) {
      const e = executions.get(m[1]!);
      if (!e) return error(404, `Resource '${m[1]}' was not found`);
      if (m[2] && method === "POST") {
        if (e.record.completionTime) return error(400, "Execution has already completed.");
        stop(e, "cancelled");
        return { status: 200, body: operation(false) };
      }
      if (method === "GET") return { status: 200, body: e.record };
    }
    return error(404, `no route ${method} ${p}`);
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const raw = Buffer.concat(chunks).toString("utf8");
      const body = raw ? (JSON.parse(raw) as Obj) : {};
      const method = req.method ?? "GET";
      const fault = faults.find((f) => f.times > 0 && f.method === method && f.path.test(url.pathname));
      const answer = fault
        ? Promise.resolve((fault.times--, error(fault.status, "injected")))
        : handle(method, url, body).catch((err: Error) => error(500, err.message));
      void answer.then((reply) => {
        requests.push({ method, path: url.pathname, status: reply.status, ...(raw ? { body } : {}) });
        res.writeHead(reply.status, { "content-type": "application/json" });
        res.end(JSON.stringify(reply.body));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    jobs: () => [...jobs.values()],
    executions: () => [...executions.values()].map((e) => e.record),
    jobDir,
    failNext(match, status, times = 1) {
      faults.push({ ...match, status, times });
    },
    async close() {
      for (const e of executions.values()) {
        for (const t of e.timers) clearTimeout(t);
        await killAll(e);
      }
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      rmSync(root, { recursive: true, force: true });
    },
  };
}
