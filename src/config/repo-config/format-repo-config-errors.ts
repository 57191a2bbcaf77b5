import { show } from "./describe-value.js";
import { REPO_CONFIG_PATH, type RepoConfigError } from "./types.js";

/** The errors as Markdown for a comment on the issue: the file's path, then one bullet per key. */
export function formatRepoConfigErrors(errors: RepoConfigError[]): string {
  const bullets = errors.map((error) => {
    const key = error.key === "(file)" ? "the file as a whole" : show(error.key);
    return `- ${key}: ${error.message}`;
  });
  const heading = `**\`${REPO_CONFIG_PATH}\` has ${errors.length === 1 ? "a problem" : `${errors.length} problems`}; fix ${errors.length === 1 ? "it" : "them"} on the default branch and try again:**`;
  return [heading, "", ...bullets].join("\n");
}
