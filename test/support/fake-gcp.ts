/**
 * Google Compute Engine and Secret Manager, faked as one HTTP server on 127.0.0.1, for the real
 * @google-cloud/compute and @google-cloud/secret-manager clients pointed at it with
 * `fakeGcp.clientOptions()` (REST fallback, no credentials).
 *
 * It keeps the parts of GCE's behaviour the gce backend relies on: an insert is accepted at once
 * and finishes through a zone operation (which may fail with a stock-out or quota error, as the
 * real one does, with no instance left behind); a repeated `requestId` returns the first
 * operation instead of making a second VM; an instance name is unique per zone (409
 * `alreadyExists`); deleting a missing instance is 404 `notFound`; list filters on labels. Every
 * request is recorded with its parsed body, and faults can be injected: stock-outs, quota errors,
 * errors before the effect, dropped responses after it, slow operations, operations that fail, and
 * operations held open until the test lets them finish (to replay interleavings of two callers).
 *
 * Resuming an instance that is not SUSPENDED: GCE refuses it (Google's own resume samples read the
 * status first, "only suspended instances can be resumed"), but how is not documented: the call
 * may be answered with an error, or accepted with an operation that fails. A VM being resumed has
 * no status of its own (it is STAGING, then RUNNING). `resumeWhenNotSuspended` picks the answer, so
 * a test can show the backend does not depend on which: `refuse` (default; 400 `resourceNotReady`,
 * as for any call on an instance in the wrong state), `fail-operation`, or `no-op` (a DONE
 * operation that changes nothing, as instances.start of a RUNNING VM does). The same goes for
 * start of an instance that is not TERMINATED.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThroughClient } from "google-auth-library";
import type { GcpClientOptions } from "../../src/backends/gce/compute-api.js";

export interface RecordedGcpRequest {
  method: string;
  /** Path without the query string, e.g. `/compute/v1/projects/p/zones/z/instances`. */
  path: string;
  query: Record<string, string>;
  body: any;
  at: number;
}

export interface FakeInstance {
  name: string;
  zone: string;
  status: "PROVISIONING" | "STAGING" | "RUNNING" | "STOPPING" | "TERMINATED" | "SUSPENDING" | "SUSPENDED";
  labels: Record<string, string>;
  creationTimestamp: string;
  /** The insert body as the client sent it. */
  body: any;
  requestId: string | undefined;
}

export interface FakeSecret {
  name: string;
  body: any;
  versions: { name: string; data: string; state: "ENABLED" | "DESTROYED" }[];
  policy: { bindings: { role: string; members: string[] }[]; etag?: string };
  createdAt: number;
}

export interface RequestMatch {
  method?: string;
  /** Matched against the path (without query). */
  path: RegExp;
}

export interface PlacementFailure {
  /** Zone the failure applies to; any zone when unset. */
  zone?: string;
  /** `SPOT` or `STANDARD`; either when unset. */
  provisioningModel?: "SPOT" | "STANDARD";
  /** How the operation fails, e.g. ZONE_RESOURCE_POOL_EXHAUSTED or QUOTA_EXCEEDED. */
  code: string;
  message?: string;
  /** Fail the insert call itself with this HTTP status instead of its operation (quota errors do). */
  synchronousStatus?: number;
  times?: number;
}

export interface FakeGcpOptions {
  projects?: string[];
  zones?: string[];
  /** Address reported as every instance's internal IP (the test's sshd). */
  vmAddress?: string;
  /** Guest attributes under `hostkeys/`: key type → base64 key blob. */
  hostKeys?: Record<string, string>;
  /** Images that exist: `projects/<p>/global/images/<name>` and `.../family/<f>` paths. */
  images?: string[];
  /** Labels of those images, by the same path (e.g. the agent CLIs' versions bake-image.sh writes). */
  imageLabels?: Record<string, Record<string, string>>;
  machineTypes?: string[];
  /** Operation polls (get or wait) before an operation is DONE; 1 = the first wait finishes it. */
  operationPolls?: number;
  /** Delay of every `operations/<op>/wait` answer, in ms. */
  waitDelayMs?: number;
  /**
   * The service account the metadata server's tokens stand for (`/computeMetadata/v1/.../token`):
   * a Secret Manager read with such a token succeeds only when the secret's policy names it.
   */
  vmServiceAccount?: string;
  /** Called when an instance goes away (deleted, or past its maxRunDuration). */
  onInstanceGone?: (instance: FakeInstance) => void;
  /** How a resume of an instance that is not SUSPENDED (or a start of one not TERMINATED) is answered; see the file's comment. */
  resumeWhenNotSuspended?: WakeAnswer;
  now?: () => number;
}

export type WakeAnswer = "refuse" | "fail-operation" | "no-op";

/** Which operations a hold or an injected failure applies to: its type (`setLabels`, `resume`, …) and, optionally, its instance. */
export interface OperationMatch {
  kind: string;
  target?: string;
}

/** An operation held open: `operations.wait` on it is answered only after release(). */
export interface OperationHold {
  /** Resolves with the first held operation's name, once one has been started. */
  started: Promise<string>;
  /** Lets every operation this hold caught finish (on its next poll); later matches are no longer held. */
  release(): void;
}

interface Operation {
  name: string;
  zone: string;
  /** insert, delete, or a GCE-initiated `compute.instances.preempted`. */
  kind: string;
  target: string;
  pollsLeft: number;
  status: "PENDING" | "RUNNING" | "DONE";
  error?: { code: string; message: string };
  httpErrorStatusCode?: number;
  onDone?: () => void;
  /** Until this resolves, the operation does not finish and a wait on it is not answered. */
  heldUntil?: Promise<void>;
}

interface OperationFailure {
  match: OperationMatch;
  times: number;
  error: { code: string; message: string };
  httpStatus: number;
}

interface Fault {
  match: RequestMatch;
  times: number;
  kind: "error" | "drop";
  status?: number;
  body?: unknown;
}

export interface FakeGcp {
  url: string;
  port: number;
  /** Options for any @google-cloud client: `new InstancesClient(fake.clientOptions())`. */
  clientOptions(): GcpClientOptions;
  requests: RecordedGcpRequest[];
  /** Requests matching a method and a path pattern. */
  requestsTo(method: string, path: RegExp): RecordedGcpRequest[];
  instances(): FakeInstance[];
  secrets(): FakeSecret[];
  /** Puts an instance there directly (one this controller, another or nobody made). */
  seedInstance(instance: Partial<FakeInstance> & { name: string; zone: string }): FakeInstance;
  /** Deletes an instance behind the client's back (preemption, the dead-man switch, a person). */
  removeInstance(zone: string, name: string): boolean;
  /**
   * Preempts a spot VM as GCE does with `instanceTerminationAction: DELETE`: a
   * `compute.instances.preempted` zone operation is recorded and the instance goes away.
   */
  preemptInstance(zone: string, name: string): boolean;
  /** Deletes every instance whose `scheduling.maxRunDuration` has passed, as GCE's dead-man switch does. */
  enforceMaxRunDuration(): FakeInstance[];
  failPlacement(failure: PlacementFailure): void;
  /** The next `times` matching requests get this error, without their effect. */
  failNext(match: RequestMatch, status: number, body: unknown, times?: number): void;
  /** The next `times` matching requests take effect, then their connection is cut before the answer. */
  dropResponse(match: RequestMatch, times?: number): void;
  /**
   * The next `times` matching operations are accepted (the call answers with an operation) but end
   * with this error, without their effect: labels not set, status not changed, instance not deleted.
   */
  failOperations(match: OperationMatch, error: { code: string; message: string; httpStatus?: number }, times?: number): void;
  /** Holds the next `times` matching operations (default: all) open until release(), to replay an interleaving of two callers. */
  holdOperations(match: OperationMatch, times?: number): OperationHold;
  setResumeWhenNotSuspended(answer: WakeAnswer): void;
  setOperationPolls(polls: number): void;
  /** Forgets injected faults and placement failures, and restores instant operations. */
  resetFaults(): void;
  setWaitDelayMs(ms: number): void;
  setHostKeys(keys: Record<string, string>): void;
  close(): Promise<void>;
}

function httpError(status: number, reason: string, message: string) {
  return { error: { code: status, message, errors: [{ domain: "global", reason, message }] } };
}

/** Secret Manager answers in the google.rpc.Status shape. */
function rpcError(status: number, rpcStatus: string, message: string) {
  return { error: { code: status, message, status: rpcStatus } };
}

function parseQuery(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of url.searchParams) out[k] = v;
  return out;
}

/** The subset of GCE's list filter syntax the backend uses: `labels.k = "v"`, `labels.k:*`, joined by AND / spaces. */
function matchesFilter(labels: Record<string, string>, filter: string | undefined): boolean {
  if (!filter) return true;
  const terms = filter
    .split(/\s+AND\s+|\)\s*\(/i)
    .map((t) => t.replace(/[()]/g, "").trim())
    .filter(Boolean);
  return terms.every((term) => {
    let m = /^labels\.([a-z0-9_-]+)\s*(=|!=)\s*"?([^"]*)"?$/.exec(term);
    if (m) return m[2] === "=" ? labels[m[1]!] === m[3] : labels[m[1]!] !== m[3];
    m = /^labels\.([a-z0-9_-]+)\s*:\s*\*$/.exec(term);
    if (m) return m[1]! in labels;
    throw new Error(`fake-gcp: filter term not understood: ${term}`);
  });
}

export async function startFakeGcp(options: FakeGcpOptions = {}): Promise<FakeGcp> {
  const now = options.now ?? Date.now;
  const projects = new Set(options.projects ?? ["test-project"]);
  const zones = new Set(options.zones ?? ["us-central1-a", "us-central1-b", "us-central1-c", "europe-west1-b"]);
  const images = new Set(options.images ?? []);
  const machineTypes = new Set(options.machineTypes ?? ["e2-micro", "e2-small", "e2-medium", "e2-standard-2", "e2-standard-4", "n2-standard-2"]);
  const vmAddress = options.vmAddress ?? "127.0.0.1";
  let hostKeys = options.hostKeys ?? {};
  let operationPolls = options.operationPolls ?? 1;
  let waitDelayMs = options.waitDelayMs ?? 0;

  const instances = new Map<string, FakeInstance>(); // key zone/name
  const operations = new Map<string, Operation>();
  const requestIds = new Map<string, string>(); // requestId → operation name
  const secrets = new Map<string, FakeSecret>(); // key projects/p/secrets/s
  const requests: RecordedGcpRequest[] = [];
  const faults: Fault[] = [];
  const placementFailures: PlacementFailure[] = [];
  const operationFailures: OperationFailure[] = [];
  const holds: { match: OperationMatch; left: number; released: Promise<void>; caught: Operation[]; onStart: (name: string) => void; release: () => void }[] =
    [];
  let resumeWhenNotSuspended: WakeAnswer = options.resumeWhenNotSuspended ?? "refuse";
  let opCounter = 0;
  const vmServiceAccount = options.vmServiceAccount ?? "agent-work-worker@test-project.iam.gserviceaccount.com";
  const vmTokens = new Map<string, string>(); // access token → service account
  let vmTokenCounter = 0;

  const key = (zone: string, name: string) => `${zone}/${name}`;

  function gone(instance: FakeInstance) {
    instances.delete(key(instance.zone, instance.name));
    options.onInstanceGone?.(instance);
  }

  const matches = (m: OperationMatch, kind: string, target: string) => m.kind === kind && (m.target === undefined || m.target === target);

  function newOperation(op: Omit<Operation, "name" | "status" | "pollsLeft">): Operation {
    const created: Operation = { ...op, name: `operation-${++opCounter}-${now()}`, status: "RUNNING", pollsLeft: operationPolls };
    const hold = holds.find((h) => h.left > 0 && matches(h.match, op.kind, op.target));
    if (hold) {
      hold.left -= 1;
      created.heldUntil = hold.released;
      hold.caught.push(created);
      hold.onStart(created.name);
    }
    operations.set(created.name, created);
    return created;
  }

  /** The injected failure for an operation about to start, if any: it then ends with this error and no effect. */
  function takeOperationFailure(kind: string, target: string): Pick<Operation, "error" | "httpErrorStatusCode"> | undefined {
    const failure = operationFailures.find((f) => f.times > 0 && matches(f.match, kind, target));
    if (!failure) return undefined;
    failure.times -= 1;
    return { error: failure.error, httpErrorStatusCode: failure.httpStatus };
  }

  function poll(op: Operation) {
    if (op.status === "DONE" || op.heldUntil) return;
    op.pollsLeft -= 1;
    if (op.pollsLeft <= 0) {
      op.status = "DONE";
      op.onDone?.();
    }
  }

  function operationJson(project: string, op: Operation) {
    const base = `https://www.googleapis.com/compute/v1/projects/${project}/zones/${op.zone}`;
    return {
      kind: "compute#operation",
      id: String(opCounter),
      name: op.name,
      zone: base,
      operationType: op.kind,
      targetLink: `${base}/instances/${op.target}`,
      status: op.status,
      progress: op.status === "DONE" ? 100 : 0,
      selfLink: `${base}/operations/${op.name}`,
      ...(op.status === "DONE" && op.error
        ? {
            error: { errors: [{ code: op.error.code, message: op.error.message }] },
            httpErrorStatusCode: op.httpErrorStatusCode ?? 503,
            httpErrorMessage: http.STATUS_CODES[op.httpErrorStatusCode ?? 503]?.toUpperCase() ?? "ERROR",
          }
        : {}),
    };
  }

  function instanceJson(project: string, i: FakeInstance) {
    const zoneUrl = `https://www.googleapis.com/compute/v1/projects/${project}/zones/${i.zone}`;
    const body = i.body ?? {};
    const nics = (body.networkInterfaces ?? [{}]).map((nic: any, n: number) => ({
      ...nic,
      name: `nic${n}`,
      networkIP: vmAddress,
      ...(nic.accessConfigs ? { accessConfigs: nic.accessConfigs.map((a: any) => ({ ...a, natIP: vmAddress })) } : {}),
    }));
    return {
      ...body,
      kind: "compute#instance",
      id: String(Math.abs(hash(i.zone + i.name))),
      name: i.name,
      zone: zoneUrl,
      status: i.status,
      labels: i.labels,
      labelFingerprint: fingerprintOf(i.labels),
      creationTimestamp: i.creationTimestamp,
      networkInterfaces: nics,
      selfLink: `${zoneUrl}/instances/${i.name}`,
    };
  }

  function takeFault(method: string, path: string): Fault | undefined {
    const fault = faults.find((f) => f.times > 0 && (!f.match.method || f.match.method === method) && f.match.path.test(path));
    if (fault) fault.times -= 1;
    return fault;
  }

  function takePlacementFailure(zone: string, model: string): PlacementFailure | undefined {
    const failure = placementFailures.find(
      (f) => (f.times ?? Infinity) > 0 && (!f.zone || f.zone === zone) && (!f.provisioningModel || f.provisioningModel === model),
    );
    if (failure && failure.times !== undefined) failure.times -= 1;
    return failure;
  }

  /** `later`: the answer is sent once it resolves (a wait on a held operation), with that body. */
  type Reply = { status: number; body: unknown; delayMs?: number; later?: Promise<unknown> };

  function handleCompute(method: string, path: string, query: Record<string, string>, body: any): Reply {
    let m: RegExpExecArray | null;
    const projectOf = (p: string) => (projects.has(p) ? null : { status: 404, body: httpError(404, "notFound", `The resource 'projects/${p}' was not found`) });

    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances$/.exec(path))) {
      const [, project, zone] = m as unknown as [string, string, string];
      const bad = projectOf(project);
      if (bad) return bad;
      if (!zones.has(zone)) return { status: 404, body: httpError(404, "notFound", `The resource 'projects/${project}/zones/${zone}' was not found`) };
      if (method === "GET") {
        const items = [...instances.values()].filter((i) => i.zone === zone && matchesFilter(i.labels, query.filter)).map((i) => instanceJson(project, i));
        return { status: 200, body: { kind: "compute#instanceList", items } };
      }
      if (method === "POST") {
        const requestId = query.requestId;
        if (requestId && requestIds.has(requestId)) {
          return { status: 200, body: operationJson(project, operations.get(requestIds.get(requestId)!)!) };
        }
        const name = String(body?.name ?? "");
        if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name))
          return { status: 400, body: httpError(400, "invalid", `Invalid value for field 'resource.name': '${name}'.`) };
        if (instances.has(key(zone, name))) {
          return { status: 409, body: httpError(409, "alreadyExists", `The resource 'projects/${project}/zones/${zone}/instances/${name}' already exists`) };
        }
        const model = body?.scheduling?.provisioningModel === "SPOT" ? "SPOT" : "STANDARD";
        const failure = takePlacementFailure(zone, model);
        if (failure?.synchronousStatus) {
          return {
            status: failure.synchronousStatus,
            body: httpError(
              failure.synchronousStatus,
              failure.code === "QUOTA_EXCEEDED" ? "quotaExceeded" : failure.code,
              failure.message ?? `Quota 'CPUS' exceeded. Limit: 8.0 in region ${zone.replace(/-[a-z]$/, "")}.`,
            ),
          };
        }
        const op = newOperation({ zone, kind: "insert", target: name });
        if (requestId) requestIds.set(requestId, op.name);
        if (failure) {
          op.error = {
            code: failure.code,
            message:
              failure.message ??
              (failure.code.startsWith("ZONE_RESOURCE_POOL_EXHAUSTED")
                ? `The zone 'projects/${project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`
                : `Quota 'CPUS' exceeded.  Limit: 8.0 in region ${zone.replace(/-[a-z]$/, "")}.`),
          };
          op.httpErrorStatusCode = failure.code === "QUOTA_EXCEEDED" ? 403 : 503;
        } else {
          const instance: FakeInstance = {
            name,
            zone,
            status: "PROVISIONING",
            labels: { ...(body?.labels ?? {}) },
            creationTimestamp: new Date(now()).toISOString(),
            body,
            requestId,
          };
          instances.set(key(zone, name), instance);
          op.onDone = () => {
            instance.status = "RUNNING";
          };
        }
        return { status: 200, body: operationJson(project, op) };
      }
    }

    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)$/.exec(path))) {
      const [, project, zone, name] = m as unknown as [string, string, string, string];
      const bad = projectOf(project);
      if (bad) return bad;
      const instance = instances.get(key(zone, name));
      const notFound = { status: 404, body: httpError(404, "notFound", `The resource 'projects/${project}/zones/${zone}/instances/${name}' was not found`) };
      if (method === "GET") return instance ? { status: 200, body: instanceJson(project, instance) } : notFound;
      if (method === "DELETE") {
        const requestId = query.requestId;
        if (requestId && requestIds.has(requestId)) return { status: 200, body: operationJson(project, operations.get(requestIds.get(requestId)!)!) };
        if (!instance) return notFound;
        const failed = takeOperationFailure("delete", name);
        const op = newOperation({ zone, kind: "delete", target: name, ...failed });
        if (requestId) requestIds.set(requestId, op.name);
        if (!failed) {
          // GCE deletes an instance whatever it is doing, a resume or start under way included.
          instance.status = "STOPPING";
          op.onDone = () => {
            if (instances.get(key(zone, name)) === instance) gone(instance);
          };
        }
        return { status: 200, body: operationJson(project, op) };
      }
    }

    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)\/(suspend|resume|stop|start|setLabels)$/.exec(path)) && method === "POST") {
      const [, project, zone, name, verb] = m as unknown as [string, string, string, string, string];
      const instance = instances.get(key(zone, name));
      if (!instance)
        return { status: 404, body: httpError(404, "notFound", `The resource 'projects/${project}/zones/${zone}/instances/${name}' was not found`) };
      const notReady = () => ({
        status: 400,
        body: httpError(400, "resourceNotReady", `The resource 'projects/${project}/zones/${zone}/instances/${name}' is not ready (${instance.status})`),
      });
      if (verb === "setLabels") {
        // An injected failure stands for a caller GCE accepted and then told, in the operation, that
        // it lost (as when two calls with the same fingerprint were both accepted): no 412 here.
        const failed = takeOperationFailure("setLabels", name);
        if (failed) return { status: 200, body: operationJson(project, newOperation({ zone, kind: "setLabels", target: name, ...failed })) };
        // A compare-and-swap on the label fingerprint, as GCE does.
        if (body?.labelFingerprint !== fingerprintOf(instance.labels)) {
          return { status: 412, body: httpError(412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed") };
        }
        instance.labels = { ...(body?.labels ?? {}) };
        const op = newOperation({ zone, kind: "setLabels", target: name });
        return { status: 200, body: operationJson(project, op) };
      }
      const from: Record<string, string> = { suspend: "RUNNING", resume: "SUSPENDED", stop: "RUNNING", start: "TERMINATED" };
      if (instance.status !== from[verb]) {
        const waking = verb === "resume" || verb === "start";
        if (!waking || resumeWhenNotSuspended === "refuse") return notReady();
        const op = newOperation({
          zone,
          kind: verb,
          target: name,
          ...(resumeWhenNotSuspended === "fail-operation"
            ? {
                error: { code: "RESOURCE_NOT_READY", message: `The resource 'projects/${project}/zones/${zone}/instances/${name}' is not ready` },
                httpErrorStatusCode: 400,
              }
            : {}),
        });
        return { status: 200, body: operationJson(project, op) };
      }
      const during: Record<string, FakeInstance["status"]> = { suspend: "SUSPENDING", resume: "STAGING", stop: "STOPPING", start: "STAGING" };
      const after: Record<string, FakeInstance["status"]> = { suspend: "SUSPENDED", resume: "RUNNING", stop: "TERMINATED", start: "RUNNING" };
      const failed = takeOperationFailure(verb, name);
      const op = newOperation({ zone, kind: verb, target: name, ...failed });
      if (!failed) {
        instance.status = during[verb]!;
        // Only from where this call left it: an instance deleted meanwhile stays STOPPING, then goes.
        op.onDone = () => {
          if (instances.get(key(zone, name)) === instance && instance.status === during[verb]) instance.status = after[verb]!;
        };
      }
      return { status: 200, body: operationJson(project, op) };
    }

    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)\/getGuestAttributes$/.exec(path))) {
      const [, project, zone, name] = m as unknown as [string, string, string, string];
      const instance = instances.get(key(zone, name));
      if (!instance)
        return { status: 404, body: httpError(404, "notFound", `The resource 'projects/${project}/zones/${zone}/instances/${name}' was not found`) };
      const items = Object.entries(hostKeys).map(([k, value]) => ({ namespace: "hostkeys", key: k, value }));
      if (instance.status !== "RUNNING" || items.length === 0) {
        return {
          status: 404,
          body: httpError(
            404,
            "notFound",
            `The resource 'projects/${project}/zones/${zone}/instances/${name}/guestAttributes/${query.queryPath ?? ""}' was not found`,
          ),
        };
      }
      return { status: 200, body: { kind: "compute#guestAttributes", queryPath: query.queryPath, queryValue: { items } } };
    }

    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/aggregated\/instances$/.exec(path))) {
      const [, project] = m as unknown as [string, string];
      const bad = projectOf(project);
      if (bad) return bad;
      const items: Record<string, unknown> = {};
      for (const zone of zones) {
        const found = [...instances.values()].filter((i) => i.zone === zone && matchesFilter(i.labels, query.filter)).map((i) => instanceJson(project, i));
        items[`zones/${zone}`] =
          found.length > 0 ? { instances: found } : { warning: { code: "NO_RESULTS_ON_PAGE", message: "There are no results for scope" } };
      }
      return { status: 200, body: { kind: "compute#instanceAggregatedList", items } };
    }

    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/operations$/.exec(path)) && method === "GET") {
      const [, project, zone] = m as unknown as [string, string, string];
      // The one filter the backend sends: operationType = "<type>".
      const wanted = /operationType\s*=\s*"?([a-z.]+)"?/.exec(query.filter ?? "")?.[1];
      const items = [...operations.values()].filter((op) => op.zone === zone && (!wanted || op.kind === wanted)).map((op) => operationJson(project, op));
      return { status: 200, body: { kind: "compute#operationList", items } };
    }

    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/operations\/([^/]+)(\/wait)?$/.exec(path))) {
      const [, project, , name, wait] = m as unknown as [string, string, string, string, string | undefined];
      const op = operations.get(name);
      if (!op) return { status: 404, body: httpError(404, "notFound", `The resource 'projects/${project}/zones/x/operations/${name}' was not found`) };
      if (wait && op.heldUntil) {
        // operations.wait holds the call open until the operation is done (GCE: up to two minutes).
        const later = op.heldUntil.then(() => {
          poll(op);
          return operationJson(project, op);
        });
        return { status: 200, body: null, later };
      }
      poll(op);
      return { status: 200, body: operationJson(project, op), delayMs: wait ? waitDelayMs : 0 };
    }

    // Read-only lookups `agent-work doctor` makes.
    if ((m = /^\/compute\/v1\/projects\/([^/]+)$/.exec(path))) {
      const [, project] = m as unknown as [string, string];
      return projectOf(project) ?? { status: 200, body: { kind: "compute#project", name: project, id: "1234567890" } };
    }
    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)$/.exec(path))) {
      const [, project, zone] = m as unknown as [string, string, string];
      const bad = projectOf(project);
      if (bad) return bad;
      if (!zones.has(zone)) return { status: 404, body: httpError(404, "notFound", `The resource 'projects/${project}/zones/${zone}' was not found`) };
      return {
        status: 200,
        body: {
          kind: "compute#zone",
          name: zone,
          status: "UP",
          region: `https://www.googleapis.com/compute/v1/projects/${project}/regions/${zone.replace(/-[a-z]$/, "")}`,
        },
      };
    }
    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/machineTypes\/([^/]+)$/.exec(path))) {
      const [, project, zone, type] = m as unknown as [string, string, string, string];
      if (!zones.has(zone) || !machineTypes.has(type))
        return { status: 404, body: httpError(404, "notFound", `The resource 'projects/${project}/zones/${zone}/machineTypes/${type}' was not found`) };
      return { status: 200, body: { kind: "compute#machineType", name: type, zone } };
    }
    if ((m = /^\/compute\/v1\/(projects\/[^/]+\/global\/images\/(?:family\/)?[^/]+)$/.exec(path))) {
      const [, image] = m as unknown as [string, string];
      if (!images.has(image)) return { status: 404, body: httpError(404, "notFound", `The resource '${image}' was not found`) };
      const labels = options.imageLabels?.[image];
      return {
        status: 200,
        body: {
          kind: "compute#image",
          name: image.split("/").pop(),
          status: "READY",
          family: image.includes("/family/") ? image.split("/").pop() : undefined,
          selfLink: `https://www.googleapis.com/compute/v1/${image}`,
          ...(labels ? { labels } : {}),
        },
      };
    }

    return { status: 404, body: httpError(404, "notFound", `fake-gcp does not serve ${method} ${path}`) };
  }

  /** The metadata server a VM asks for its identity's access token. */
  function handleMetadata(method: string, path: string, headers: http.IncomingHttpHeaders): Reply {
    if (method !== "GET" || path !== "/computeMetadata/v1/instance/service-accounts/default/token") return { status: 404, body: "not found" };
    // The real server refuses requests without this header (a defence against request forgery).
    if (headers["metadata-flavor"] !== "Google") return { status: 403, body: "Missing Metadata-Flavor:Google header." };
    const token = `ya29.fake-vm-${++vmTokenCounter}-${Math.random().toString(36).slice(2)}`;
    vmTokens.set(token, vmServiceAccount);
    return { status: 200, body: { access_token: token, expires_in: 3599, token_type: "Bearer" } };
  }

  function handleSecrets(method: string, path: string, query: Record<string, string>, body: any, headers: http.IncomingHttpHeaders = {}): Reply {
    let m: RegExpExecArray | null;
    const notFound = (what: string) => ({ status: 404, body: rpcError(404, "NOT_FOUND", `Secret [${what}] not found or has no versions.`) });

    if ((m = /^\/v1\/projects\/([^/]+)\/secrets$/.exec(path))) {
      const [, project] = m as unknown as [string, string];
      if (method === "POST") {
        const name = `projects/${project}/secrets/${query.secretId}`;
        if (secrets.has(name)) return { status: 409, body: rpcError(409, "ALREADY_EXISTS", `Secret [${name}] already exists.`) };
        const secret: FakeSecret = { name, body, versions: [], policy: { bindings: [] }, createdAt: now() };
        secrets.set(name, secret);
        return { status: 200, body: { ...body, name, createTime: new Date(secret.createdAt).toISOString() } };
      }
      if (method === "GET") {
        const list = [...secrets.values()].filter(
          (s) => s.name.startsWith(`projects/${project}/`) && matchesFilter(s.body?.labels ?? {}, query.filter?.replace(/=/g, " = ")),
        );
        return {
          status: 200,
          body: { secrets: list.map((s) => ({ ...s.body, name: s.name, createTime: new Date(s.createdAt).toISOString() })), totalSize: list.length },
        };
      }
    }
    if ((m = /^\/v1\/(projects\/[^/]+\/secrets\/[^/:]+)(?::(addVersion|setIamPolicy|getIamPolicy|testIamPermissions))?$/.exec(path))) {
      const [, name, verb] = m as unknown as [string, string, string | undefined];
      const secret = secrets.get(name);
      if (!secret) return notFound(name);
      if (verb === "addVersion") {
        const version = { name: `${name}/versions/${secret.versions.length + 1}`, data: String(body?.payload?.data ?? ""), state: "ENABLED" as const };
        secret.versions.push(version);
        return { status: 200, body: { name: version.name, state: 1, createTime: new Date(now()).toISOString() } };
      }
      if (verb === "setIamPolicy") {
        secret.policy = { bindings: body?.policy?.bindings ?? [], etag: "BwYAAAAAAAA=" };
        return { status: 200, body: secret.policy };
      }
      if (verb === "getIamPolicy") return { status: 200, body: secret.policy };
      if (verb === "testIamPermissions") return { status: 200, body: { permissions: body?.permissions ?? [] } };
      if (method === "DELETE") {
        secrets.delete(name);
        return { status: 200, body: {} };
      }
      if (method === "GET") return { status: 200, body: { ...secret.body, name, createTime: new Date(secret.createdAt).toISOString() } };
    }
    if ((m = /^\/v1\/(projects\/[^/]+\/secrets\/[^/]+)\/versions\/([^/:]+)(:access)?$/.exec(path))) {
      const [, name, which, access] = m as unknown as [string, string, string, string | undefined];
      const secret = secrets.get(name);
      const enabled = secret?.versions.filter((v) => v.state === "ENABLED") ?? [];
      // A caller with a VM's token (not the controller's pass-through client) reads only what the
      // secret's policy grants that VM's service account.
      const bearer = /^Bearer (.+)$/.exec(String(headers.authorization ?? ""))?.[1];
      if (bearer !== undefined) {
        const member = vmTokens.get(bearer);
        if (!member) return { status: 401, body: rpcError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.") };
        const granted = secret?.policy.bindings.some((b) => b.role === "roles/secretmanager.secretAccessor" && b.members.includes(`serviceAccount:${member}`));
        if (!granted)
          return {
            status: 403,
            body: rpcError(
              403,
              "PERMISSION_DENIED",
              `Permission 'secretmanager.versions.access' denied for resource '${name}/versions/${which}' (or it may not exist).`,
            ),
          };
      }
      const version = which === "latest" ? enabled.at(-1) : enabled.find((v) => v.name === `${name}/versions/${which}`);
      if (!version) return notFound(`${name}/versions/${which}`);
      return { status: 200, body: access ? { name: version.name, payload: { data: version.data } } : { name: version.name, state: 1 } };
    }
    return { status: 404, body: rpcError(404, "NOT_FOUND", `fake-gcp does not serve ${method} ${path}`) };
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const path = url.pathname;
      const query = parseQuery(url);
      const method = req.method ?? "GET";
      const text = Buffer.concat(chunks).toString("utf8");
      let body: any = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      requests.push({ method, path, query, body, at: now() });

      const fault = takeFault(method, path);
      if (fault?.kind === "error") {
        res.writeHead(fault.status ?? 500, { "content-type": "application/json" });
        res.end(JSON.stringify(fault.body));
        return;
      }
      let reply: Reply;
      try {
        reply = path.startsWith("/compute/")
          ? handleCompute(method, path, query, body)
          : path.startsWith("/computeMetadata/")
            ? handleMetadata(method, path, req.headers)
            : handleSecrets(method, path, query, body, req.headers);
      } catch (err) {
        reply = { status: 500, body: httpError(500, "backendError", err instanceof Error ? err.message : String(err)) };
      }
      if (fault?.kind === "drop") {
        // The effect happened; the caller never hears about it.
        req.socket.destroy();
        return;
      }
      const send = (body: unknown = reply.body) => {
        res.writeHead(reply.status, { "content-type": "application/json; charset=UTF-8" });
        res.end(JSON.stringify(body));
      };
      if (reply.later) void reply.later.then(send);
      else if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const firstProject = [...projects][0] ?? "test-project";

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    clientOptions: () => ({
      apiEndpoint: "127.0.0.1",
      port,
      protocol: "http",
      fallback: true,
      // google-gax bundles its own copy of google-auth-library: the same class at run time, another type to tsc.
      authClient: new PassThroughClient() as unknown as GcpClientOptions["authClient"],
      projectId: firstProject,
    }),
    requests,
    requestsTo: (method, path) => requests.filter((r) => r.method === method && path.test(r.path)),
    instances: () => [...instances.values()],
    secrets: () => [...secrets.values()],
    seedInstance(partial) {
      const instance: FakeInstance = {
        status: "RUNNING",
        labels: {},
        creationTimestamp: new Date(now()).toISOString(),
        body: {},
        requestId: undefined,
        ...partial,
      };
      instances.set(key(instance.zone, instance.name), instance);
      return instance;
    },
    preemptInstance(zone, name) {
      const instance = instances.get(key(zone, name));
      if (!instance) return false;
      const op = newOperation({ zone, kind: "compute.instances.preempted", target: name });
      op.status = "DONE";
      gone(instance);
      return true;
    },
    removeInstance(zone, name) {
      const instance = instances.get(key(zone, name));
      if (!instance) return false;
      gone(instance);
      return true;
    },
    enforceMaxRunDuration() {
      const expired = [...instances.values()].filter((i) => {
        const seconds = Number(i.body?.scheduling?.maxRunDuration?.seconds ?? NaN);
        return Number.isFinite(seconds) && Date.parse(i.creationTimestamp) + seconds * 1000 <= now();
      });
      for (const i of expired) gone(i);
      return expired;
    },
    failPlacement: (failure) => placementFailures.push({ ...failure }),
    failNext: (match, status, body, times = 1) => faults.push({ match, times, kind: "error", status, body }),
    dropResponse: (match, times = 1) => faults.push({ match, times, kind: "drop" }),
    failOperations: (match, error, times = 1) =>
      void operationFailures.push({ match, times, error: { code: error.code, message: error.message }, httpStatus: error.httpStatus ?? 400 }),
    holdOperations(match, times = Infinity) {
      let resolve!: () => void;
      let onStart!: (name: string) => void;
      const released = new Promise<void>((r) => (resolve = r));
      const started = new Promise<string>((r) => (onStart = r));
      const hold = {
        match,
        left: times,
        released,
        caught: [] as Operation[],
        onStart,
        release() {
          const at = holds.indexOf(hold);
          if (at >= 0) holds.splice(at, 1);
          for (const op of hold.caught) delete op.heldUntil;
          resolve();
        },
      };
      holds.push(hold);
      return { started, release: () => hold.release() };
    },
    setResumeWhenNotSuspended: (answer) => void (resumeWhenNotSuspended = answer),
    setOperationPolls: (polls) => void (operationPolls = polls),
    resetFaults() {
      faults.length = 0;
      placementFailures.length = 0;
      operationFailures.length = 0;
      for (const hold of [...holds]) hold.release();
      resumeWhenNotSuspended = options.resumeWhenNotSuspended ?? "refuse";
      operationPolls = options.operationPolls ?? 1;
      waitDelayMs = options.waitDelayMs ?? 0;
    },
    setWaitDelayMs: (ms) => void (waitDelayMs = ms),
    setHostKeys: (keys) => void (hostKeys = keys),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** GCE's label fingerprint: changes whenever the labels do. */
function fingerprintOf(labels: Record<string, string>): string {
  return Buffer.from(String(hash(JSON.stringify(Object.entries(labels).sort())))).toString("base64");
}

function hash(text: string): number {
  let h = 0;
  for (const c of text) h = (Math.imul(h, 31) + c.charCodeAt(0)) | 0;
  return h;
}
