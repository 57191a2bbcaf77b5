/**
 * The agent's own repository in the work tree (worker/lib/git.mjs prepareAgentRepository), made
 * with real git from a worker clone laid out as the worker lays it out (git dir beside the tree).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
// @ts-expect-error the worker is plain JavaScript with no declarations
import { createGit, prepareAgentRepository } from "../../worker/lib/git.mjs";

interface WorkerGit {
  gitDir: string;
  ok(args: string[], what: string, options?: object): Promise<string>;
}

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const sh = (cwd: string, ...args: string[]) =>
  execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null" } }).trim();

/** A worker clone: `repo/` with one commit, its git dir in `git/`. */
function workerClone(): { root: string; repo: string; gitDir: string; baseSha: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), "aw-agent-repo-"));
  dirs.push(root);
  const repo = path.join(root, "repo");
  const gitDir = path.join(root, "git");
  execFileSync("git", ["init", "-q", "-b", "main", "--separate-git-dir", gitDir, repo]);
  writeFileSync(path.join(repo, "README.md"), "# demo\n");
  sh(repo, "add", "README.md");
  sh(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first");
  return { root, repo, gitDir, baseSha: sh(repo, "rev-parse", "HEAD") };
}

describe("the agent's own repository", () => {
  it("has the base branch, origin and the bot's identity, with the git commands that do not share a lock run side by side", async () => {
    const { root, repo, gitDir, baseSha } = workerClone();
    const cloneUrl = "https://github.example/octo/demo.git";
    const real = createGit({ gitDir, workTree: repo, remoteUrl: cloneUrl, privateDir: root }) as WorkerGit;
    let inFlight = 0;
    let most = 0;
    const git: WorkerGit = {
      gitDir: real.gitDir,
      ok: async (args, what, options) => {
        most = Math.max(most, ++inFlight);
        try {
          return await real.ok(args, what, options);
        } finally {
          inFlight--;
        }
      },
    };
    await prepareAgentRepository(git, { repo, baseSha, baseBranch: "main", cloneUrl, author: { name: "agent-work[bot]", email: "bot@example.com" } });

    expect(sh(repo, "symbolic-ref", "HEAD")).toBe("refs/heads/main");
    expect(sh(repo, "rev-parse", "HEAD", "refs/remotes/origin/main")).toBe(`${baseSha}\n${baseSha}`);
    expect(sh(repo, "config", "--get", "remote.origin.url")).toBe(cloneUrl);
    expect(sh(repo, "config", "--get", "remote.origin.fetch")).toBe("+refs/heads/*:refs/remotes/origin/*");
    expect(sh(repo, "config", "--get", "user.name")).toBe("agent-work[bot]");
    expect(sh(repo, "config", "--get", "user.email")).toBe("bot@example.com");
    expect(sh(repo, "status", "--porcelain")).toBe("");
    // The refs, HEAD and the config each take their own lock: none waits for another.
    expect(most).toBeGreaterThanOrEqual(4);
  });

  it("fails, naming the command, when a ref cannot be written", async () => {
    const { root, repo, gitDir } = workerClone();
    const git = createGit({ gitDir, workTree: repo, remoteUrl: "https://github.example/o/r.git", privateDir: root }) as WorkerGit;
    await expect(
      prepareAgentRepository(git, {
        repo,
        baseSha: "1".repeat(40),
        baseBranch: "main",
        cloneUrl: "https://github.example/o/r.git",
        author: { name: "a", email: "a@example.com" },
      }),
    ).rejects.toThrow(/update-ref failed/);
  });
});
