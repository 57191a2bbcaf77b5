/**
 * The controller's Docker image, as far as it can be checked without a Docker engine (none runs
 * on these machines): what the Dockerfile copies exists and is not kept out of the build context,
 * .dockerignore keeps secrets and local state out, tini is PID 1, the setup page is reachable from
 * the host and can write .env as the node user through the image's /app/.env → /config/.env link
 * (tried here with Probot's own writer, as nobody, in a copy of that layout), and the README's
 * "Run with Docker" commands match the image.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
const ignore = readFileSync(path.join(ROOT, ".dockerignore"), "utf8")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));
const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Docker's rule: the last pattern that matches a path (or one of its parent folders) decides; `!` re-includes. */
function ignored(file: string): boolean {
  const toRegExp = (pattern: string) =>
    new RegExp(
      `^${pattern
        .replace(/^\//, "")
        .split("/")
        .map((part) =>
          part === "**"
            ? "(?:.+/)?"
            : part
                .replace(/[.+^${}()|[\]\\]/g, "\\$&")
                .replace(/\*/g, "[^/]*")
                .replace(/\?/g, "[^/]") + "/",
        )
        .join("")
        .replace(/\/$/, "")
        .replace(/\(\?:\.\+\/\)\?\//g, "(?:.+/)?")}$`,
    );
  const prefixes = file.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
  let out = false;
  for (const line of ignore) {
    const negate = line.startsWith("!");
    const re = toRegExp(negate ? line.slice(1) : line);
    if (prefixes.some((p) => re.test(p))) out = !negate;
  }
  return out;
}

/** `COPY a b ./` sources from the build context (not `--from=` another stage). */
function copiedFromContext(): string[] {
  return [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
}

describe("the Docker image", () => {
  it("copies only files that exist and that .dockerignore lets into the build context", () => {
    const sources = copiedFromContext();
    expect(sources).toEqual(expect.arrayContaining(["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "src", "app.yml", "worker"]));
    for (const source of sources) {
      expect(existsSync(path.join(ROOT, source)), source).toBe(true);
      expect(ignored(source), source).toBe(false);
    }
    expect(ignored("src/main.ts")).toBe(false);
    expect(ignored("worker/agent-work-worker.mjs")).toBe(false);
  });

  it("keeps secrets and local state out of the build context", () => {
    for (const file of [
      ".env",
      ".env.production",
      "agent-work.2026-01-01.private-key.pem",
      "keys/app.pem",
      "agent-work-worker-ssh.key",
      "agent-work-controller.kubeconfig",
      "k8s-install/controller.env",
      "k8s-install/database.env",
      "terraform/terraform.tfstate",
      "terraform/terraform.tfvars",
      "node_modules/probot/package.json",
      "bench/node_modules/x.js",
      "data/agent-work.sqlite",
      "dist/main.js",
      "test-results/report.xml",
      "coverage/index.html",
      ".git/config",
    ]) {
      expect(ignored(file), file).toBe(true);
    }
    // The example holds no secret and documents the variables.
    expect(ignored(".env.example")).toBe(false);
  });

  it("runs node under tini as the node user, binds every interface, and keeps .env in a folder that user may write", () => {
    expect(dockerfile).toMatch(/apt-get install -y --no-install-recommends [^\n]*\btini\b/);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/main\.js"\]$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^ENV [^\n]*\bHOST=0\.0\.0\.0\b/m);
    // With NODE_ENV=production a missing APP_ID is an error: the setup page could never run.
    expect(dockerfile).not.toMatch(/^ENV [^\n]*NODE_ENV=production/m);
    expect(dockerfile).toMatch(/chown node:node \/data \/config && ln -s \/config\/\.env \/app\/\.env/);
    expect(dockerfile).toMatch(/^VOLUME \["\/data", "\/config"\]$/m);
  });

  it("lets the node user's setup page write .env through /app/.env → /config/.env, and the controller read it back", async () => {
    // The image's layout in a temp folder: app/ belongs to root, config/ to the unprivileged user.
    const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-image-layout-"));
    dirs.push(dir);
    chmodSync(dir, 0o755);
    const app = path.join(dir, "app");
    const config = path.join(dir, "config");
    mkdirSync(app, { mode: 0o755 });
    mkdirSync(config);
    chownSync(config, 65534, 65534);
    symlinkSync(path.join(config, ".env"), path.join(app, ".env"));
    // Probot's own writer (what the setup page calls), run as nobody in /app, then read as main.ts does.
    const updateEnv = pathToFileURL(path.join(ROOT, "node_modules/probot/lib/helpers/update-env.js")).href;
    const script = `const { updateEnv } = await import(${JSON.stringify(updateEnv)}); updateEnv({ APP_ID: "42", WEBHOOK_SECRET: "s" }); process.loadEnvFile(".env"); console.log(process.env.APP_ID);`;
    const out = execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "--input-type=module", "-e", script], {
      cwd: app,
      encoding: "utf8",
      env: { PATH: process.env.PATH },
    });
    expect(out.trim()).toBe("42");
    expect(readFileSync(path.join(config, ".env"), "utf8")).toBe("APP_ID=42\nWEBHOOK_SECRET=s");
  });

  it("is run in the README as the image expects: volumes, loopback port for setup, the sandbox's security options", () => {
    const section = /## Run with Docker\n([\s\S]*?)\n## /.exec(readme)?.[1];
    expect(section, 'README.md has a "Run with Docker" section').toBeDefined();
    expect(section).toContain("docker build -t agent-work .");
    expect(section).toContain("-p 127.0.0.1:3000:3000");
    expect(section).toContain("-v agent-work-config:/config");
    expect(section).toContain("-v agent-work-data:/data");
    expect(section).toContain("--security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined");
  });
});
