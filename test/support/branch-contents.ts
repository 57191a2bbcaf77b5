/**
 * What a branch of a bare repository holds, read with plain git (no work tree, no config of the
 * repository's own that could change what is shown): every entry with its mode and raw path bytes,
 * and the content of each blob up to a size, for tests that must see exactly what was pushed.
 */
import { execa } from "execa";

export interface BranchEntry {
  /** `100644`, `100755`, `120000` (a symlink), `160000` (a gitlink). */
  mode: string;
  type: "blob" | "commit" | "tree";
  sha: string;
  /** The path's bytes exactly as stored (names may hold newlines or bytes that are not UTF-8). */
  path: Buffer;
  /** Blob size in bytes (0 for a gitlink). */
  size: number;
  /** The blob's content, when it is at most `maxBlobBytes`; null for larger blobs and gitlinks. */
  content: Buffer | null;
}

const GIT_ENV = { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0" };

/** The entries of `branch` in the bare repository `gitDir`, or null when the branch does not exist. */
export async function branchContents(gitDir: string, branch: string, maxBlobBytes = 8 * 1024 * 1024): Promise<BranchEntry[] | null> {
  const git = (args: string[], input?: Buffer) =>
    execa("git", ["--git-dir", gitDir, ...args], {
      env: GIT_ENV,
      extendEnv: false,
      encoding: "buffer",
      reject: false,
      stripFinalNewline: false,
      ...(input ? { input } : {}),
    });
  const ref = `refs/heads/${branch}`;
  if ((await git(["rev-parse", "--verify", "--quiet", ref])).exitCode !== 0) return null;
  const listed = await git(["ls-tree", "-r", "-z", "--long", "--full-tree", ref]);
  if (listed.exitCode !== 0) throw new Error(`git ls-tree failed: ${Buffer.from(listed.stderr).toString()}`);
  const raw = Buffer.from(listed.stdout);
  const entries: BranchEntry[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf(0, at);
    const record = raw.subarray(at, end < 0 ? raw.length : end);
    at = end < 0 ? raw.length : end + 1;
    const tab = record.indexOf(9);
    // "<mode> SP <type> SP <sha> SP+ <size or -> TAB <path>"
    const [mode, type, sha, size] = record.subarray(0, tab).toString("latin1").trim().split(/\s+/);
    entries.push({
      mode: mode!,
      type: type as BranchEntry["type"],
      sha: sha!,
      path: Buffer.from(record.subarray(tab + 1)),
      size: size === "-" ? 0 : Number(size),
      content: null,
    });
  }
  const wanted = entries.filter((e) => e.type === "blob" && e.size <= maxBlobBytes);
  if (wanted.length > 0) {
    const batch = await git(["cat-file", "--batch"], Buffer.from(wanted.map((e) => e.sha).join("\n") + "\n"));
    const out = Buffer.from(batch.stdout);
    let pos = 0;
    for (const e of wanted) {
      const nl = out.indexOf(10, pos);
      const header = out.subarray(pos, nl).toString("latin1").split(" ");
      const length = Number(header[2]);
      e.content = Buffer.from(out.subarray(nl + 1, nl + 1 + length));
      pos = nl + 1 + length + 1;
    }
  }
  return entries;
}
