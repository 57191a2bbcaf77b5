/**
 * setup-cache: what the dependency cache saves. Two jobs of one repository, through the real
 * worker script and real bubblewrap (as nobody when run as root), each with the setup step
 * `npm install --prefer-offline`: the first with an empty cache, the second with what the first
 * left. The packages come from a registry on 127.0.0.1 run by this script (no internet): `--packages`
 * tarballs of `--kb` KB each, every request answered after `--latency-ms` (a registry's round trip;
 * 0 measures the local work alone). The figures are the setup step's duration, as the check run
 * shows it, and the requests the registry saw.
 *   npm run bench:setup-cache -- --packages 60 --latency-ms 40
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { createProgressParser } from "../src/worker/parse-progress.js";
import type { ProgressEvent, WorkerInput, WorkerResult } from "../src/worker/protocol.js";
import { workerScriptPath } from "../src/worker/worker-script-path.js";
import { startGitServer } from "../test/support/git-http-server.js";
import { arg, ms, report, type BenchRow } from "./lib.js";

const packages = arg("packages", 40);
const kb = arg("kb", 20);
const latencyMs = arg("latency-ms", 20);

interface Tarball {
  name: string;
  file: string;
  integrity: string;
  shasum: string;
}

/** `packages` tarballs laid out as npm packs them (`package/…`), with some bulk to unpack. */
async function makeTarballs(dir: string): Promise<Tarball[]> {
  const out: Tarball[] = [];
  for (let i = 1; i <= packages; i++) {
    const name = `bench-dep-${i}`;
    const src = path.join(dir, name, "package");
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, "package.json"), JSON.stringify({ name, version: "1.0.0", main: "index.js" }));
    await writeFile(path.join(src, "index.js"), `module.exports = ${JSON.stringify(randomBytes(kb * 512).toString("hex"))};\n`);
    const file = path.join(dir, `${name}-1.0.0.tgz`);
    execFileSync("tar", ["-czf", file, "-C", path.join(dir, name), "package"]);
    const bytes = await readFile(file);
    out.push({
      name,
      file,
      integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`,
      shasum: createHash("sha1").update(bytes).digest("hex"),
    });
  }
  return out;
}

/** The two routes `npm install` needs: a package's document and its tarball. */
async function startRegistry(tarballs: Tarball[]) {
  const byName = new Map(tarballs.map((t) => [t.name, t]));
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    setTimeout(() => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const tgz = /^\/(bench-dep-\d+)\/-\/[^/]+\.tgz$/.exec(url.pathname);
      const t = byName.get(tgz ? tgz[1]! : decodeURIComponent(url.pathname.slice(1)));
      if (!t) return void res.writeHead(404).end();
      if (tgz) return void readFile(t.file).then((b) => res.writeHead(200, { "content-type": "application/octet-stream" }).end(b));
      const version = {
        name: t.name,
        version: "1.0.0",
        main: "index.js",
        dist: { tarball: `${base}/${t.name}/-/${t.name}-1.0.0.tgz`, integrity: t.integrity, shasum: t.shasum },
      };
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ name: t.name, "dist-tags": { latest: "1.0.0" }, versions: { "1.0.0": version } }));
    }, latencyMs);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, requests: () => requests, close: () => new Promise((r) => server.close(r)) };
}

/** One job in `<root>/<job id>/work`, as the local backend lays it out; the setup step's seconds from its step events. */
async function runJob(root: string, jobId: string, spec: WorkerInput): Promise<{ result: WorkerResult; setupMs: number; lines: string[] }> {
  const work = path.join(root, jobId, "work");
  await mkdir(work, { recursive: true });
  const events: ProgressEvent[] = [];
  const parser = createProgressParser((e) => events.push(e));
  const child = execa(process.execPath, [workerScriptPath], {
    cwd: work,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: path.dirname(work), LANG: "C.UTF-8" },
    extendEnv: false,
    input: JSON.stringify({ ...spec, jobId }) + "\n",
    reject: false,
    buffer: false,
  });
  child.stdout!.on("data", (c: Buffer) => parser.push(c));
  await child;
  parser.end();
  const result = events.flatMap((e) => (e.type === "result" ? [e.result] : []))[0];
  const at = (status: string) => events.find((e) => e.type === "step" && e.step === "setup" && e.status === status)?.at;
  const lines = events.flatMap((e) => (e.type === "log" ? [`${e.stream}: ${e.line}`] : []));
  const [started, finished] = [at("started"), at("finished")];
  if (!result || started === undefined || finished === undefined)
    throw new Error(`setup did not finish: ${result?.message ?? "no result"}; ${lines.slice(-5).join(" | ")}`);
  return { result, setupMs: finished - started, lines };
}

export async function setupCacheBench(): Promise<BenchRow[]> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), "agent-work-bench-setup-"));
  const token = `ghs_${randomBytes(18).toString("hex")}`;
  const git = await startGitServer({ acceptToken: token });
  const registry = await startRegistry(await makeTarballs(path.join(scratch, "packages")));
  try {
    const dependencies = Object.fromEntries(Array.from({ length: packages }, (_, i) => [`bench-dep-${i + 1}`, "1.0.0"]));
    const { cloneUrl } = await git.createRepo("octo", "setup-bench", {
      "package.json": JSON.stringify({ name: "setup-bench", version: "1.0.0", private: true, dependencies }, null, 2),
      ".npmrc": `registry=${registry.base}/\n`,
      ".gitignore": "node_modules/\n",
    });
    const spec: WorkerInput = {
      jobId: "",
      cloneUrl,
      baseBranch: "main",
      branch: "agent/1-bench",
      token,
      agentArgv: ["/bin/sh", "-c", "ls node_modules | wc -l > INSTALLED.txt"],
      prompt: "bench",
      commitMessage: "bench",
      author: { name: "bench", email: "bench@example.com" },
      agentTimeoutSeconds: 300,
      agentEnv: {},
      sandbox: { kind: "bwrap", roBinds: [], shareNet: false },
      setup: { commands: ["npm install --prefer-offline --no-audit --no-fund --no-package-lock --loglevel=error"], timeoutSeconds: 300 },
      cache: { key: "octo+setup-bench-1", maxMb: 2048 },
    };
    const root = path.join(scratch, "workers");
    const first = await runJob(root, "jbench1", spec);
    const afterFirst = registry.requests();
    const second = await runJob(root, "jbench2", spec);
    const secondRequests = registry.requests() - afterFirst;
    for (const r of [first, second]) if (r.result.outcome !== "pushed") throw new Error(`the job ended ${r.result.outcome}: ${r.result.message}`);
    return [
      {
        bench: `setup-cache: npm install of ${packages} × ${kb} KB packages, empty cache → kept cache`,
        figure: `setup ${ms(first.setupMs)} → ${ms(second.setupMs)}`,
        reference: `registry requests ${afterFirst} → ${secondRequests}, ${latencyMs} ms each (127.0.0.1)`,
        goal: "second faster, no request",
        met: second.setupMs < first.setupMs && secondRequests === 0,
      },
    ];
  } finally {
    await registry.close();
    await git.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) report(await setupCacheBench());
