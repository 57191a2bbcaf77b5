/**
 * The Compute Engine calls the gce backend makes, as a small interface over @google-cloud/compute
 * (REST). The backend reaches GCE only through this, and tests point the real clients at a fake
 * endpoint on 127.0.0.1 with {@link GcpClientOptions}.
 */
import { InstancesClient, ZoneOperationsClient, type protos } from "@google-cloud/compute";
import { classifyGceError } from "./classify-gce-error.js";
import { lastSegment } from "./gce-names.js";

export type GceInstance = protos.google.cloud.compute.v1.IInstance;
export type GceOperation = protos.google.cloud.compute.v1.IOperation;

/**
 * Options every @google-cloud client accepts. Empty in production (Application Default
 * Credentials, the real endpoints); tests pass `{ apiEndpoint: "127.0.0.1", port, protocol:
 * "http", fallback: true, authClient: new PassThroughClient() }`.
 */
export type GcpClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

export interface ListedInstance {
  zone: string;
  instance: GceInstance;
}

export interface ComputeApi {
  readonly project: string;
  /** Starts an insert; returns the zone operation's name. */
  insertInstance(zone: string, body: GceInstance, requestId: string): Promise<string>;
  /** The instance, or null when there is none by that name in that zone. */
  getInstance(zone: string, name: string): Promise<GceInstance | null>;
  /** Starts a delete; returns the zone operation's name, or null when the instance is already gone. */
  deleteInstance(zone: string, name: string, requestId?: string): Promise<string | null>;
  /**
   * Every instance in the project matching a GCE list filter, across all zones, and the zones
   * GCE could not answer for (aggregated lists succeed partially rather than fail).
   */
  listInstances(filter: string): Promise<{ instances: ListedInstance[]; unreachable: string[] }>;
  /** One `operations.wait` call: returns when the operation is DONE or GCE's wait window ends. */
  waitOperation(zone: string, operation: string): Promise<GceOperation>;
  /** True when GCE recorded a preemption of this instance (a `compute.instances.preempted` zone operation). */
  wasPreempted(zone: string, name: string): Promise<boolean>;
  /** SSH host keys the guest agent published (type → base64 blob), or null while there are none. */
  hostKeys(zone: string, name: string): Promise<Record<string, string> | null>;
}

/** GCE answers `operations.wait` within about two minutes; give the HTTP call a little longer. */
const WAIT_CALL_TIMEOUT_MS = 150_000;

export function createComputeApi(project: string, clientOptions: GcpClientOptions = {}): ComputeApi {
  const instances = new InstancesClient(clientOptions);
  const operations = new ZoneOperationsClient(clientOptions);

  return {
    project,

    async insertInstance(zone, body, requestId) {
      const [lro] = await instances.insert({ project, zone, requestId, instanceResource: body });
      const name = lro.latestResponse?.name ?? (lro as unknown as { name?: string }).name;
      if (!name) throw new Error(`instances.insert in ${zone} answered without an operation name`);
      return name;
    },

    async getInstance(zone, name) {
      try {
        const [instance] = await instances.get({ project, zone, instance: name });
        return instance;
      } catch (err) {
        if (classifyGceError(err).kind === "not_found") return null;
        throw err;
      }
    },

    async deleteInstance(zone, name, requestId) {
      try {
        const [lro] = await instances.delete({ project, zone, instance: name, ...(requestId ? { requestId } : {}) });
        return lro.latestResponse?.name ?? (lro as unknown as { name?: string }).name ?? null;
      } catch (err) {
        if (classifyGceError(err).kind === "not_found") return null;
        throw err;
      }
    },

    async listInstances(filter) {
      const found: ListedInstance[] = [];
      const unreachable: string[] = [];
      const pages = instances.aggregatedListAsync({ project, filter, returnPartialSuccess: true }, { autoPaginate: false });
      for await (const [scope, list] of pages) {
        for (const instance of list.instances ?? []) found.push({ zone: lastSegment(instance.zone) || lastSegment(scope), instance });
        if (list.warning?.code === "UNREACHABLE") unreachable.push(`${lastSegment(scope)}: ${list.warning.message ?? "unreachable"}`);
      }
      return { instances: found, unreachable };
    },

    async waitOperation(zone, operation) {
      const [op] = await operations.wait({ project, zone, operation }, { timeout: WAIT_CALL_TIMEOUT_MS });
      return op;
    },

    async wasPreempted(zone, name) {
      const filter = `operationType = "compute.instances.preempted"`;
      for await (const op of operations.listAsync({ project, zone, filter }, { autoPaginate: false })) {
        if (lastSegment(op.targetLink) === name) return true;
      }
      return false;
    },

    async hostKeys(zone, name) {
      try {
        const [attributes] = await instances.getGuestAttributes({ project, zone, instance: name, queryPath: "hostkeys/" });
        const keys: Record<string, string> = {};
        for (const item of attributes.queryValue?.items ?? []) {
          if (item.key && item.value) keys[item.key] = item.value;
        }
        return Object.keys(keys).length > 0 ? keys : null;
      } catch (err) {
        // Not published yet (the guest agent is still starting), or guest attributes are off.
        if (classifyGceError(err).kind === "not_found") return null;
        throw err;
      }
    },
  };
}
