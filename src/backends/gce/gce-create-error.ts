import type { ProvisioningModel } from "./build-instance.js";
import type { ClassifiedGceError } from "./classify-gce-error.js";

/**
 * Thrown by create() when no VM could be made. `retryable` is true when every zone was merely out
 * of stock (capacity comes back) or the API kept failing transiently; false for quota, bad
 * configuration or missing permissions, which need a person. A class because callers branch on it.
 */
export class GceCreateError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly attempts: { zone: string; provisioningModel: ProvisioningModel; kind: ClassifiedGceError["kind"]; code: string; message: string }[] = [],
  ) {
    super(message);
    this.name = "GceCreateError";
  }
}
