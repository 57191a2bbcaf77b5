import type { Probot } from "probot";
import type { GitHub, GitHubAccess } from "./types.js";

/** GitHub's REST base URL for github.com or a GitHub Enterprise Server host. */
export function restBaseUrl(gheHost?: string, gheProtocol = "https"): string {
  return gheHost ? `${gheProtocol}://${gheHost}/api/v3` : "https://api.github.com";
}

export function githubAccessFor(app: Probot, baseUrl: string): GitHubAccess {
  return {
    forInstallation: (installationId) => app.auth(installationId) as Promise<GitHub>,
    asApp: () => app.auth() as Promise<GitHub>,
    baseUrl,
  };
}
