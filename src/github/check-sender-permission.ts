import type { GitHub } from "./types.js";

export type Permission = "read" | "triage" | "write" | "maintain" | "admin";
const RANK: Record<string, number> = { none: 0, read: 1, triage: 2, write: 3, maintain: 4, admin: 5 };

export interface PermissionVerdict {
  allowed: boolean;
  /** What GitHub said (role name when it has one), or `unknown` when the call failed. */
  permission: string;
  reason: string;
}

/**
 * Asks GitHub what the sender may do on the repository and compares it with the required level.
 * Fails closed: an API error, a 404 or an unexpected answer all mean "not allowed". Never trusts
 * `author_association`, which shows private org members as CONTRIBUTOR.
 */
export async function checkSenderPermission(
  octokit: GitHub,
  target: { owner: string; repo: string; username: string },
  required: Permission,
): Promise<PermissionVerdict> {
  let permission = "unknown";
  try {
    const { data } = await octokit.rest.repos.getCollaboratorPermissionLevel(target);
    // role_name distinguishes maintain/triage, which `permission` folds into write/read.
    permission = (data as { role_name?: string }).role_name || data.permission || "none";
  } catch (err) {
    const status = (err as { status?: number }).status;
    return {
      allowed: false,
      permission,
      reason:
        status === 404
          ? `@${target.username} is not a collaborator on this repository`
          : `the permission check failed (GitHub answered ${status ?? "with an error"}), so nothing was started`,
    };
  }
  const allowed = (RANK[permission] ?? 0) >= (RANK[required] ?? 99);
  return {
    allowed,
    permission,
    reason: allowed ? "" : `@${target.username} has \`${permission}\` access; starting agent work needs \`${required}\` or higher`,
  };
}
