/**
 * The Cloud Run Admin API (v2) and Cloud Logging calls the cloudrun backend makes, over plain REST
 * with `fetch`: the official Node client for Cloud Run would add a gRPC stack and its protobuf
 * descriptors to the controller for six calls. The backend reaches Google only through this
 * interface; tests point it at a fake on 127.0.0.1 with `runUrl` and `loggingUrl`.
 */
import { GoogleAuth } from "google-auth-library";

/** A Cloud Run job, as much of it as the backend reads or writes. */
export interface RunJob {
  name?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  createTime?: string;
  reconciling?: boolean;
  latestCreatedExecution?: { name?: string; createTime?: string; completionTime?: string };
  template?: unknown;
}

export interface RunCondition {
  type?: string;
  state?: string;
  reason?: string;
  message?: string;
  executionReason?: string;
}

export interface RunExecution {
  name?: string;
  createTime?: string;
  startTime?: string;
  completionTime?: string;
  runningCount?: number;
  succeededCount?: number;
  failedCount?: number;
  cancelledCount?: number;
  conditions?: RunCondition[];
}

export interface LogEntry {
  insertId?: string;
  timestamp?: string;
  textPayload?: string;
  jsonPayload?: { message?: string };
  logName?: string;
}

/** An error answer from a Google API, with its HTTP status and `error.status` (ALREADY_EXISTS...). */
export class GoogleApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    message: string,
  ) {
    super(message);
    this.name = "GoogleApiError";
  }
}

/**
 * One JSON call to a Google API with Application Default Credentials (or the token `accessToken`
 * gives): an error answer becomes GoogleApiError (`<status> <error.status> <error.message>`), a
 * dropped connection stays fetch's TypeError. The backend (createRunApi) and `agent-work doctor`'s
 * cloudrun check both call Google this way.
 */
export function googleJsonCaller(options: { accessToken?: () => Promise<string | undefined>; fetch?: typeof fetch }) {
  const doFetch = options.fetch ?? fetch;
  let auth: GoogleAuth | undefined;
  const accessToken =
    options.accessToken ??
    (async () => {
      auth ??= new GoogleAuth({ scopes: ["https://www.googleapis.com/auth/cloud-platform"] });
      return (await auth.getAccessToken()) ?? undefined;
    });
  return async <T>(method: "GET" | "POST" | "DELETE", url: string, body?: unknown): Promise<T> => {
    const token = await accessToken();
    const res = await doFetch(url, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: Record<string, any> = {};
    try {
      parsed = text ? (JSON.parse(text) as Record<string, any>) : {};
    } catch {
      // Not JSON (a proxy's page): the status and the text's start say enough.
    }
    if (!res.ok) {
      const e = parsed.error ?? {};
      throw new GoogleApiError(
        res.status,
        String(e.status ?? ""),
        `${res.status} ${e.status ?? ""} ${e.message ?? text.slice(0, 200)}`.replace(/\s+/g, " ").trim(),
      );
    }
    return parsed as T;
  };
}

export interface RunApi {
  readonly parent: string;
  /** Creates the job; GoogleApiError 409 when one by that id exists. */
  createJob(jobId: string, job: RunJob): Promise<void>;
  /** The job, or null when there is none. */
  getJob(jobId: string): Promise<RunJob | null>;
  /** Every job in the region (Cloud Run lists without a label filter). */
  listJobs(): Promise<RunJob[]>;
  /** Deletes the job with its executions; false when it was already gone. */
  deleteJob(jobId: string): Promise<boolean>;
  /** Starts an execution; returns its full name. */
  runJob(jobId: string, overrides?: { timeout?: string }): Promise<string>;
  getExecution(name: string): Promise<RunExecution | null>;
  listExecutions(jobId: string): Promise<RunExecution[]>;
  /** Cancels a running execution; false when it is gone or already finished. */
  cancelExecution(name: string): Promise<boolean>;
  /** One page of Cloud Logging entries matching `filter`, oldest first. */
  listLogEntries(filter: string, pageToken?: string): Promise<{ entries: LogEntry[]; nextPageToken?: string }>;
}

export interface RunApiOptions {
  project: string;
  region: string;
  /** Default https://run.googleapis.com. */
  runUrl?: string;
  /** Default https://logging.googleapis.com. */
  loggingUrl?: string;
  /** A bearer token per call; default Application Default Credentials. Tests return undefined. */
  accessToken?: () => Promise<string | undefined>;
  fetch?: typeof fetch;
}

export function createRunApi(options: RunApiOptions): RunApi {
  const runUrl = options.runUrl ?? "https://run.googleapis.com";
  const loggingUrl = options.loggingUrl ?? "https://logging.googleapis.com";
  const googleCall = googleJsonCaller(options);
  const parent = `projects/${options.project}/locations/${options.region}`;

  async function call<T>(method: "GET" | "POST" | "DELETE", url: string, body?: unknown): Promise<T> {
    try {
      return await googleCall<T>(method, url, body);
    } catch (err) {
      if (!(err instanceof GoogleApiError)) throw err;
      throw new GoogleApiError(err.httpStatus, err.status, `${method} ${new URL(url).pathname}: ${err.message}`);
    }
  }
  const orNull = async <T>(p: Promise<T>): Promise<T | null> => {
    try {
      return await p;
    } catch (err) {
      if (err instanceof GoogleApiError && err.httpStatus === 404) return null;
      throw err;
    }
  };
  const jobUrl = (jobId: string) => `${runUrl}/v2/${parent}/jobs/${encodeURIComponent(jobId)}`;

  return {
    parent,
    async createJob(jobId, job) {
      await call("POST", `${runUrl}/v2/${parent}/jobs?jobId=${encodeURIComponent(jobId)}`, job);
    },
    getJob: (jobId) => orNull(call<RunJob>("GET", jobUrl(jobId))),
    async listJobs() {
      const jobs: RunJob[] = [];
      let pageToken: string | undefined;
      do {
        const page = await call<{ jobs?: RunJob[]; nextPageToken?: string }>(
          "GET",
          `${runUrl}/v2/${parent}/jobs?pageSize=100${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ""}`,
        );
        jobs.push(...(page.jobs ?? []));
        pageToken = page.nextPageToken || undefined;
      } while (pageToken);
      return jobs;
    },
    async deleteJob(jobId) {
      return (await orNull(call("DELETE", jobUrl(jobId)))) !== null;
    },
    async runJob(jobId, overrides) {
      const op = await call<{ name?: string; metadata?: { name?: string } }>("POST", `${jobUrl(jobId)}:run`, overrides ? { overrides } : {});
      const name = op.metadata?.name;
      if (!name) throw new Error(`jobs.run of ${jobId} answered without an execution name`);
      return name;
    },
    getExecution: (name) => orNull(call<RunExecution>("GET", `${runUrl}/v2/${name}`)),
    async listExecutions(jobId) {
      return (await call<{ executions?: RunExecution[] }>("GET", `${jobUrl(jobId)}/executions?pageSize=100`)).executions ?? [];
    },
    async cancelExecution(name) {
      try {
        await call("POST", `${runUrl}/v2/${name}:cancel`, {});
        return true;
      } catch (err) {
        // 404: gone; 400 FAILED_PRECONDITION: it has already finished.
        if (err instanceof GoogleApiError && (err.httpStatus === 404 || err.httpStatus === 400)) return false;
        throw err;
      }
    },
    async listLogEntries(filter, pageToken) {
      const page = await call<{ entries?: LogEntry[]; nextPageToken?: string }>("POST", `${loggingUrl}/v2/entries:list`, {
        resourceNames: [`projects/${options.project}`],
        filter,
        orderBy: "timestamp asc",
        pageSize: 1000,
        ...(pageToken ? { pageToken } : {}),
      });
      return { entries: page.entries ?? [], ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}) };
    },
  };
}
