import type { ControllerConfig } from "./controller-config.js";

/** Every secret value in the configuration, for the redactor. */
export function secretValues(config: ControllerConfig): string[] {
  return [
    config.privateKey,
    config.webhookSecret,
    config.gce?.sshPrivateKey,
    config.signIn?.clientSecret,
    config.sessionSecret,
    config.metrics?.token,
    config.databaseUrl,
    config.webhookProxyUrl,
    // The password alone too: a driver's error may quote it without the rest of the URL.
    databasePassword(config.databaseUrl),
    ...Object.values(config.agentEnv),
    config.modelProxy?.value,
    ...(config.egressCredentials ?? []).map((c) => c.value),
  ].filter((value): value is string => typeof value === "string" && value !== "");
}

function databasePassword(databaseUrl: string | undefined): string | undefined {
  if (databaseUrl === undefined) return undefined;
  try {
    return decodeURIComponent(new URL(databaseUrl).password) || undefined;
  } catch {
    return undefined;
  }
}
