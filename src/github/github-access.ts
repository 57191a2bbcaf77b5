import type { Probot } from "probot";
import type { GitHub, GitHubAccess } from "./types.js";
import type { FetchLike } from "./node-http-fetch.js";

/** GitHub's REST base URL for github.com or a GitHub Enterprise Server host. */
export function restBaseUrl(gheHost?: string, gheProtocol = "https"): string {
  return gheHost ? `${gheProtocol}://${gheHost}/api/v3` : "https://api.github.com";
}

/** Installation clients live this long; their auth refreshes the token by itself meanwhile. */
const INSTALLATION_CLIENT_TTL_MS = 30 * 60_000;

/**
 * One Octokit per installation, shared: when 20 labels arrive at once, they must not each mint an
 * installation token (20 token requests, serialised by the throttling plugin's auth queue, were
 * most of the first answer's delay). The client's auth strategy caches and renews the token.
 */
export function githubAccessFor(app: Probot, baseUrl: string, now: () => number = Date.now, fetch?: FetchLike): GitHubAccess {
  const clients = new Map<number, { at: number; client: Promise<GitHub> }>();
  let appClient: Promise<GitHub> | undefined;
  return {
    forInstallation(installationId) {
      const cached = clients.get(installationId);
      if (cached && now() - cached.at < INSTALLATION_CLIENT_TTL_MS) return cached.client;
      const client = app.auth(installationId) as Promise<GitHub>;
      clients.set(installationId, { at: now(), client });
      // A failed authentication is not cached: the next caller tries again.
      client.catch(() => clients.delete(installationId));
      return client;
    },
    // One app client, like one per installation: its auth signs a fresh JWT for every call anyway.
    asApp() {
      appClient ??= app.auth() as Promise<GitHub>;
      appClient.catch(() => (appClient = undefined));
      return appClient;
    },
    baseUrl,
    ...(fetch ? { fetch } : {}),
  };
}
