// The work tree after the agent: attacker's data. Everything here walks it with lstat and never
// follows a link, and nothing here reads a file's content.
import fs from "node:fs";
import path from "node:path";
import { printable } from "./output.mjs";

/** Gives a tree to another owner without following a link the agent may have planted in it. */
export function chownTree(root, uid, gid) {
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop();
    let st;
    try {
      st = fs.lstatSync(p);
      fs.lchownSync(p, uid, gid);
      // The kernel clears set-id bits on chown; make sure, since the new owner may be root.
      if (!st.isSymbolicLink() && st.mode & 0o6000) fs.chmodSync(p, st.mode & 0o1777);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      let names = [];
      try {
        names = fs.readdirSync(p);
      } catch {
        // unreadable: nothing below to hand over
      }
      for (const name of names) stack.push(path.join(p, name));
    }
  }
}

/**
 * True for a name git treats as its own metadata folder, on this host or on any host that later
 * checks the branch out: `.git` in any case, with the trailing dots and spaces Windows drops, its
 * 8.3 short name, and NTFS stream suffixes.
 */
export function isGitMetadataName(name) {
  const plain = name.replace(/[. ]+$/, "").toLowerCase();
  return plain === ".git" || plain.startsWith(".git:") || /^git~\d+$/.test(plain);
}

/** Files git reads from the work tree as its own settings; as symlinks git (or GitHub's fsck) refuses them. */
const GIT_SETTINGS_FILES = new Set([".gitmodules", ".gitattributes", ".gitignore", ".mailmap"]);

/** GitHub refuses a push with a file over 100 MB; nothing bigger is worth committing. */
export const MAX_FILE_BYTES = 100 * 1024 * 1024;
const MAX_ENTRIES = 500_000;
const MAX_DEPTH = 200;

/**
 * Makes the work tree the agent left something git can commit as plain data, before any git
 * command looks at it, and says what it left out. Removed, never read: every entry named like
 * `.git` (the agent's own repository at the top, nested repositories and `.git` files below it),
 * fifos, sockets and device files, and symlinks named like git's own settings files. Refused (the
 * job pushes nothing): a file over the per-file limit or a tree over `maxTotalBytes` by apparent
 * size (a sparse file takes no disk but git would read and store every byte), too many entries,
 * or folders nested deeper than git can handle.
 *
 * Returns `{ ok: true, leftOut: [description…] }` or `{ ok: false, message }`.
 */
export function prepareTreeForCommit(root, { maxTotalBytes, maxFileBytes = MAX_FILE_BYTES }) {
  const leftOut = [];
  let totalBytes = 0;
  let entries = 0;
  const stack = [{ dir: root, rel: "", depth: 0 }];
  while (stack.length > 0) {
    const { dir, rel, depth } = stack.pop();
    if (depth > MAX_DEPTH) return { ok: false, message: `the agent left folders nested more than ${MAX_DEPTH} deep (${printable(rel)}); nothing was pushed` };
    let names;
    try {
      names = fs.readdirSync(dir);
    } catch {
      // A folder the agent made unreadable is still the worker's to open (same user, or root).
      try {
        fs.chmodSync(dir, 0o755);
        names = fs.readdirSync(dir);
      } catch (err) {
        return { ok: false, message: `cannot read the folder ${printable(rel || ".")} the agent left (${err.code ?? err.message}); nothing was pushed` };
      }
    }
    for (const name of names) {
      if (++entries > MAX_ENTRIES) return { ok: false, message: `the agent left more than ${MAX_ENTRIES} files and folders; nothing was pushed` };
      const p = path.join(dir, name);
      const relName = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (isGitMetadataName(name)) {
        fs.rmSync(p, { recursive: true, force: true });
        // The agent's own repository at the top is expected; anything else is worth a word.
        if (relName !== ".git" || !st.isDirectory()) leftOut.push(`${printable(relName)} (git metadata)`);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (GIT_SETTINGS_FILES.has(name.toLowerCase())) {
          fs.rmSync(p, { force: true });
          leftOut.push(`${printable(relName)} (a symlink in place of a git settings file)`);
          continue;
        }
        totalBytes += st.size;
      } else if (st.isDirectory()) {
        stack.push({ dir: p, rel: relName, depth: depth + 1 });
      } else if (st.isFile()) {
        if (st.size > maxFileBytes) {
          return {
            ok: false,
            limit: "disk",
            message: `the agent left ${printable(relName)} of ${formatBytes(st.size)}, over the limit of ${formatBytes(maxFileBytes)} per file; nothing was pushed`,
          };
        }
        totalBytes += st.size;
        if (totalBytes > maxTotalBytes) {
          return {
            ok: false,
            limit: "disk",
            message: `the agent's files add up to more than ${formatBytes(maxTotalBytes)}, its disk limit (counting the full size of sparse files); nothing was pushed`,
          };
        }
        if ((st.mode & 0o400) === 0) fs.chmodSync(p, (st.mode & 0o777) | 0o400);
      } else {
        fs.rmSync(p, { force: true });
        leftOut.push(`${printable(relName)} (not a file, folder or symlink)`);
      }
    }
  }
  return { ok: true, leftOut };
}

function formatBytes(n) {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GB`;
  return `${(n / 1024 ** 2).toFixed(1).replace(/\.0$/, "")} MB`;
}
