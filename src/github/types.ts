import type { ProbotOctokit } from "probot";
import type { FetchLike } from "./node-http-fetch.js";

/** An authenticated Octokit as Probot builds it (installation or app auth). */
export type GitHub = InstanceType<typeof ProbotOctokit>;

/** How the pipeline reaches GitHub: passed in, never a module singleton, so tests can swap it. */
export interface GitHubAccess {
  /** Octokit authenticated as the app's installation (the controller's own token). */
  forInstallation(installationId: number): Promise<GitHub>;
  /** Octokit authenticated as the app itself (JWT), for minting repo-scoped tokens. */
  asApp(): Promise<GitHub>;
  /** REST base URL (https://api.github.com or https://<GHE_HOST>/api/v3). */
  baseUrl: string;
  /** The connection pool the Octokits use, for the few plain requests (revoking a worker token). */
  fetch?: FetchLike;
}
