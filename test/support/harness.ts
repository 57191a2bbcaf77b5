import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import nock from "nock";
import { loadControllerConfig, type ControllerConfig } from "../../src/config/env.js";
import type { Backend } from "../../src/backends/types.js";
import { startController, type Controller } from "../../src/controller.js";
import { startGitServer, type GitServer } from "./git-http-server.js";
import { fakeGitHub, type FakeGitHubOptions } from "./fake-github.js";
import {
  DEFAULT_BRANCH,
  INSTALLATION_ID,
  OWNER,
  REPO,
  checkRunPayload,
  commentPayload,
  deliver,
  labeledPayload,
  reviewCommentPayload,
  reviewPayload,
} from "./payloads.js";

export const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
export const FAKE_AGENT = path.join(FIXTURES, "fake-agent.mjs");

/** Canary tokens of both formats GitHub issues: the classic 40 characters and `ghs_<appid>_<JWT>`. */
export function canaryToken(format: "classic" | "jwt"): string {
  const alnum = (n: number) =>
    randomBytes(n)
      .toString("base64")
      .replace(/[^A-Za-z0-9]/g, "")
      .padEnd(n, "x")
      .slice(0, n);
  if (format === "classic") return `ghs_${alnum(36)}`;
  const b64 = (n: number) => randomBytes(n).toString("base64url");
  return `ghs_1234_${b64(27)}.${b64(300)}.${b64(86)}`;
}

let appKey: string | undefined;
/**
 * The GitHub App's RSA key, made once per test process: a 2048-bit key takes 0.1 to 0.2 s of CPU,
 * once per harness it was a minute of the suite. Each harness (and controller site,
 * test/support/controller-site.ts) still has its own webhook secret, worker token, data folder and
 * fake GitHub; nothing a test checks depends on the key being new.
 */
export function appPrivateKey(): string {
  appKey ??= generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  }).privateKey;
  return appKey;
}

export const FAKE_AGENT_CONFIG = (extra = "") => `agent: command\ncommand: ["node", "${FAKE_AGENT}", "{prompt_file}"]\n${extra}`;

/** Two different free ports (a port just released may be handed out again at once). */
export async function freePorts(): Promise<[number, number]> {
  const first = await freePort();
  for (;;) {
    const second = await freePort();
    if (second !== first) return [first, second];
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export interface HarnessOptions {
  tokenFormat?: "classic" | "jwt";
  permission?: FakeGitHubOptions["permission"];
  permissions?: FakeGitHubOptions["permissions"];
  discussion?: FakeGitHubOptions["discussion"];
  pull?: FakeGitHubOptions["pull"];
  reviewComments?: FakeGitHubOptions["reviewComments"];
  protectedBranches?: FakeGitHubOptions["protectedBranches"];
  latencyMs?: number;
  repoConfigYaml?: string;
  env?: Record<string, string>;
  dataDir?: string;
  files?: Record<string, string>;
  /** Run the scheduler on its own timer and webhook wake-ups, as in production. */
  autoSchedule?: boolean;
  /** Changes to the loaded controller config (e.g. a gce pricing section without GCP). */
  configure?: (config: ControllerConfig) => void;
  extraBackends?: ReadonlyMap<string, Backend>;
  /** Seconds in a job-limit "minute" (default 1: tests run fast). */
  secondsPerMinute?: number;
  /** Octokit options over the harness's (benchmarks turn GitHub's pacing off against the fake). */
  octokitDefaults?: Record<string, unknown>;
  /** The git server lets anyone clone (a public repository and its forks). */
  gitPublicRead?: boolean;
}

/**
 * A whole controller on 127.0.0.1 for a test: real Probot server, real SQLite in a temp folder,
 * real local backend with bwrap, a real git smart-HTTP server that accepts only the worker token,
 * and GitHub's REST API faked by nock (every other host unreachable).
 */
export async function startHarness(options: HarnessOptions = {}) {
  nock.disableNetConnect();
  nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  const workerToken = canaryToken(options.tokenFormat ?? "classic");
  const git = await startGitServer({ acceptToken: workerToken, publicRead: options.gitPublicRead ?? false });
  const seeded = await git.createRepo(OWNER, REPO, options.files ?? { "README.md": "# Hello World\n" }, DEFAULT_BRANCH);
  const github = fakeGitHub({
    owner: OWNER,
    repo: REPO,
    installationId: INSTALLATION_ID,
    workerToken,
    permission: options.permission,
    permissions: options.permissions,
    discussion: options.discussion,
    pull: options.pull,
    reviewComments: options.reviewComments,
    protectedBranches: options.protectedBranches,
    latencyMs: options.latencyMs,
    repoConfigYaml: options.repoConfigYaml ?? FAKE_AGENT_CONFIG(),
    baseSha: seeded.headSha,
  });
  // The fake PR API answers with the branch head the real git server holds.
  github.setPullHeadSha((branch) => {
    try {
      return execFileSync("git", ["--git-dir", seeded.dir, "rev-parse", `refs/heads/${branch}`], { encoding: "utf8" }).trim();
    } catch {
      return "f".repeat(40);
    }
  });

  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), "agent-work-data-"));
  const webhookSecret = randomBytes(32).toString("hex");
  const privateKey = appPrivateKey();
  const logs = new PassThrough();
  const logLines: string[] = [];
  logs.on("data", (d: Buffer) => logLines.push(...d.toString("utf8").split("\n").filter(Boolean)));

  const ports = await freePorts();
  const env = {
    APP_ID: "1234",
    PRIVATE_KEY: privateKey,
    WEBHOOK_SECRET: webhookSecret,
    HOST: "127.0.0.1",
    PORT: String(ports[0]),
    // A port of its own per controller: tests run side by side, and the default one would clash.
    METRICS_PORT: String(ports[1]),
    DATA_DIR: dataDir,
    LOG_LEVEL: "debug",
    SANDBOX_RO_BINDS: FIXTURES.replace(/\/$/, ""),
    STATUS_UPDATE_INTERVAL_SECONDS: "1",
    LEASE_SECONDS: "30",
    // Deliveries recorded on the main thread, so a test reads their log lines and counts as soon
    // as GitHub's answer arrives; test/integration/webhook-thread.test.ts and the tests that run
    // the controller as a process (test/support/*-controller.ts, controller-process.ts) run the
    // webhook thread, as users do.
    WEBHOOK_THREAD: "false",
    ...options.env,
  };
  const loaded = loadControllerConfig(env);
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  options.configure?.(loaded.config);
  const apiCalls: { method: string; route: string }[] = [];
  let controller: Controller = await startController({
    config: loaded.config,
    logDestination: logs,
    autoSchedule: options.autoSchedule ?? false,
    secondsPerMinute: options.secondsPerMinute ?? 1,
    octokitDefaults: { retry: { enabled: false }, ...options.octokitDefaults },
    onApiCall: (c) => apiCalls.push(c),
    ...(options.extraBackends ? { extraBackends: options.extraBackends } : {}),
  });

  const h = {
    git,
    github,
    seeded,
    workerToken,
    webhookSecret,
    privateKey,
    dataDir,
    logLines,
    apiCalls,
    get controller() {
      return controller;
    },
    deliverLabel(over: Partial<Parameters<typeof labeledPayload>[0]> = {}, deliveryId?: string) {
      return deliver(controller.url, webhookSecret, "issues", labeledPayload({ cloneUrl: seeded.cloneUrl, ...over }), deliveryId);
    },
    deliverComment(body: string, over: Partial<Omit<Parameters<typeof commentPayload>[0], "body" | "cloneUrl">> = {}, deliveryId?: string) {
      return deliver(controller.url, webhookSecret, "issue_comment", commentPayload({ body, cloneUrl: seeded.cloneUrl, ...over }), deliveryId);
    },
    deliverReviewComment(body: string, over: Partial<Omit<Parameters<typeof reviewCommentPayload>[0], "body" | "cloneUrl">> = {}) {
      return deliver(controller.url, webhookSecret, "pull_request_review_comment", reviewCommentPayload({ body, cloneUrl: seeded.cloneUrl, ...over }));
    },
    deliverReview(body: string | null, over: Partial<Omit<Parameters<typeof reviewPayload>[0], "body" | "cloneUrl">> = {}) {
      return deliver(controller.url, webhookSecret, "pull_request_review", reviewPayload({ body, cloneUrl: seeded.cloneUrl, ...over }));
    },
    deliverCheckRun(over: Omit<Parameters<typeof checkRunPayload>[0], "appId"> & { appId?: number }) {
      return deliver(controller.url, webhookSecret, "check_run", checkRunPayload({ appId: 1234, ...over }));
    },
    /**
     * Ticks the scheduler until nothing is in flight, no job is waiting to be claimed, and every
     * GitHub effect written to the outbox (a 👀, a refusal, a reply, a final status) has been
     * delivered: those go out after the state change that wrote them, so a job can be over while
     * its comment is still on its way (and GitHub calls wait their turn behind deliveries).
     */
    async settle(maxPasses = 20) {
      for (let i = 0; i < maxPasses; i++) {
        await controller.scheduler.tick();
        await controller.scheduler.drain();
        const counts = await controller.store.countByState();
        const pending = (await controller.requests.list()).some((r) => r.state === "pending");
        const jobsDone = !pending && !counts.received && !counts.queued && !counts.provisioning && !counts.running && !counts.reporting;
        const effects = (await controller.outbox.list({ state: "pending" })).length;
        if (jobsDone && effects === 0) break;
        // Only effects left: give the ones under way a moment (a pass sweeps any that failed).
        if (jobsDone) await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    async restart(extraEnv: Record<string, string> = {}) {
      await h.stop();
      await h.start(extraEnv);
    },
    /** Stops the controller (the port closes: GitHub's deliveries fail until `start()`). */
    async stop() {
      await controller.close();
    },
    /** Starts the controller again on the same data folder, on a new port. */
    async start(extraEnv: Record<string, string> = {}) {
      const [port, metricsPort] = await freePorts();
      const again = loadControllerConfig({ ...env, ...extraEnv, PORT: String(port), METRICS_PORT: String(metricsPort) });
      if (!again.ok) throw new Error(again.errors.join("\n"));
      controller = await startController({
        config: again.config,
        logDestination: logs,
        autoSchedule: false,
        secondsPerMinute: 1,
        octokitDefaults: { retry: { enabled: false } },
        onApiCall: (c) => apiCalls.push(c),
      });
    },
    async close() {
      await controller.close({ abort: true });
      await git.close();
      github.done();
      nock.enableNetConnect();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

export type Harness = Awaited<ReturnType<typeof startHarness>>;
