/**
 * A real git smart-HTTP server on 127.0.0.1 for tests: Node's http server in front of
 * `git http-backend` (CGI), with HTTP Basic auth that accepts exactly one token as the password,
 * the way github.com accepts `x-access-token:<installation token>`.
 */
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { createGunzip } from "node:zlib";
import { execa } from "execa";

export interface GitRequest {
  method: string;
  /** Path and query string, e.g. `/o/r.git/info/refs?service=git-receive-pack`. */
  path: string;
  /** The Basic-auth user name, when the request carried credentials that were accepted. */
  user: string | null;
  status: number;
}

export interface GitServer {
  url: string;
  port: number;
  createRepo(owner: string, repo: string, files: Record<string, string>, defaultBranch?: string): Promise<{ cloneUrl: string; headSha: string; dir: string }>;
  setAcceptedToken(token: string): void;
  requests: GitRequest[];
  branchSha(owner: string, repo: string, branch: string): Promise<string | null>;
  readFile(owner: string, repo: string, branch: string, file: string): Promise<string | null>;
  close(): Promise<void>;
}

const GIT_ENV = { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0" };

function basicAuth(header: string | undefined): { user: string; password: string } | null {
  const m = /^Basic\s+(.+)$/i.exec(header ?? "");
  if (!m?.[1]) return null;
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** fast-import's `data` command: the length in bytes, then the bytes. */
function dataBlock(content: string): string {
  return `data ${Buffer.byteLength(content)}\n${content}`;
}

/** A path as fast-import reads it: C-style quoted, so spaces, quotes and newlines in names stay as they are. */
function quotePath(name: string): string {
  return `"${name.replace(/[\\"]/g, "\\$&").replace(/\n/g, "\\n")}"`;
}

export async function startGitServer(options: {
  acceptToken: string;
  /** Anyone may clone and fetch, as from a public repository. */ publicRead?: boolean;
}): Promise<GitServer> {
  let acceptToken = options.acceptToken;
  const root = await mkdtemp(path.join(os.tmpdir(), "agent-work-git-"));
  const requests: GitRequest[] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const auth = basicAuth(req.headers.authorization);
    const record: GitRequest = { method: req.method ?? "GET", path: url.pathname + url.search, user: null, status: 0 };
    requests.push(record);
    const readOnly = url.searchParams.get("service") === "git-upload-pack" || url.pathname.endsWith("/git-upload-pack");
    if (options.publicRead && readOnly && !auth) {
      // An anonymous clone of a public repository: served, with no user.
    } else if (!auth || auth.password !== acceptToken) {
      record.status = 401;
      req.resume();
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain" });
      res.end("authentication required\n");
      return;
    }
    record.user = auth?.user ?? null;

    const gzip = /gzip/i.test(String(req.headers["content-encoding"] ?? ""));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      ...GIT_ENV,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: "1",
      REQUEST_METHOD: req.method,
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.replace(/^\?/, ""),
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: auth?.user ?? "anonymous",
      REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
    };
    // After gunzip the length differs; without CONTENT_LENGTH http-backend reads to EOF.
    if (!gzip && req.headers["content-length"]) env.CONTENT_LENGTH = req.headers["content-length"];
    if (req.headers["git-protocol"]) env.HTTP_GIT_PROTOCOL = String(req.headers["git-protocol"]);

    const cgi = spawn("git", ["-c", "http.receivepack=true", "http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    const body = gzip ? req.pipe(createGunzip()) : req;
    body.pipe(cgi.stdin);
    cgi.stdin.on("error", () => {});
    let stderr = "";
    cgi.stderr.on("data", (d: Buffer) => (stderr += d.toString()));

    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const text = head.toString("latin1");
      const crlf = text.indexOf("\r\n\r\n");
      const lf = text.indexOf("\n\n");
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of text.slice(0, end).split(/\r?\n/)) {
        const colon = line.indexOf(":");
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10) || 500;
        else headers[name] = value;
      }
      record.status = status;
      res.writeHead(status, headers);
      res.write(head.subarray(end));
    });
    cgi.on("close", (code) => {
      if (!headersDone) {
        record.status = 500;
        res.writeHead(500, { "Content-Type": "text/plain" });
        res.end(`git http-backend exited ${code}: ${stderr}\n`);
        return;
      }
      res.end();
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const bareDir = (owner: string, repo: string) => path.join(root, owner, `${repo}.git`);
  const git = (args: string[], cwd?: string) => execa("git", args, { cwd, env: GIT_ENV, reject: false, stripFinalNewline: false });

  return {
    url,
    port,
    requests,
    setAcceptedToken(token) {
      acceptToken = token;
    },
    async createRepo(owner, repo, files, defaultBranch = "main") {
      const dir = bareDir(owner, repo);
      await mkdir(dir, { recursive: true });
      await execa("git", ["init", "--quiet", "--bare", "--initial-branch", defaultBranch, dir], { env: GIT_ENV });
      // The first commit written straight into the bare repository by one git process, not by a
      // seed clone's init, add, commit and push (five git starts and the push's own): a test makes
      // a repository per harness or case, some a hundred of them.
      const now = `${Math.floor(Date.now() / 1000)} +0000`;
      const stream = [
        `commit refs/heads/${defaultBranch}`,
        "mark :1",
        `author seed <seed@example.com> ${now}`,
        `committer seed <seed@example.com> ${now}`,
        dataBlock("initial commit\n"),
        ...Object.entries(files).map(([name, content]) => `M 100644 inline ${quotePath(name)}\n${dataBlock(content)}`),
        "",
        "get-mark :1",
        "done",
        "",
      ].join("\n");
      const imported = await execa("git", ["--git-dir", dir, "fast-import", "--quiet", "--done"], { env: GIT_ENV, input: stream });
      return { cloneUrl: `${url}/${owner}/${repo}.git`, headSha: imported.stdout.trim(), dir };
    },
    async branchSha(owner, repo, branch) {
      const r = await git(["--git-dir", bareDir(owner, repo), "rev-parse", "--verify", "--quiet", `refs/heads/${branch}`]);
      return r.exitCode === 0 ? String(r.stdout).trim() : null;
    },
    async readFile(owner, repo, branch, file) {
      const r = await git(["--git-dir", bareDir(owner, repo), "show", `refs/heads/${branch}:${file}`]);
      return r.exitCode === 0 ? String(r.stdout) : null;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(root, { recursive: true, force: true });
    },
  };
}
