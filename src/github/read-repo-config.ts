import type { GitHub } from "./types.js";
import { REPO_CONFIG_PATH } from "../config/repo-config.js";

/**
 * Reads `.github/agent-work.yml` the way Probot's `context.config` does (the repository's default
 * branch, then `<owner>/.github`, with `_extends`). Returns the raw object (null when there is no
 * file) or the parse error to show the user.
 */
export async function readRepoConfig(
  octokit: GitHub,
  target: { owner: string; repo: string },
): Promise<{ ok: true; raw: unknown } | { ok: false; error: string }> {
  try {
    const { config, files } = await octokit.config.get({ owner: target.owner, repo: target.repo, path: REPO_CONFIG_PATH });
    const found = files.some((f) => f.config !== null);
    return { ok: true, raw: found ? config : null };
  } catch (err) {
    const message = err instanceof Error ? err.message.replace("[@probot/octokit-plugin-config] ", "") : String(err);
    return { ok: false, error: message };
  }
}
