// Runs before `npm test` (and so on CI, through .ci/run): makes sure this machine has the system
// tools the tests need, instead of letting tests fail deep inside a spawn with ENOENT. What is
// missing is installed with apt-get when this user may (root, or sudo without a password), saying
// what it installs; otherwise it prints the one line that does, and stops.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const NEEDS = [
  { bin: "git", args: ["--version"], pkg: "git", why: "real repositories" },
  { bin: "git", args: ["http-backend", "--help"], pkg: "git", what: "git http-backend", why: "the local git server" },
  { bin: "bwrap", args: ["--version"], pkg: "bubblewrap", why: "the agent's sandbox" },
  { bin: "/usr/sbin/sshd", args: ["-V"], pkg: "openssh-server", what: "sshd", why: "a real sshd on 127.0.0.1 for the ssh and gce backends" },
  { bin: "/usr/sbin/iptables", args: ["--version"], pkg: "iptables", what: "iptables", why: "the worker VM's egress firewall, applied in a network namespace" },
  { bin: "ansible-playbook", args: ["--version"], pkg: "ansible-core", why: "the worker provisioning playbook" },
  { bin: "chromium", args: ["--version"], pkg: "chromium", why: "the job pages' browser test" },
  { bin: "strace", args: ["-V"], pkg: "strace", why: "tracing a real bubblewrap sandbox against the k8s workers' seccomp profile" },
];
// --no-install-recommends: ansible-core alone is small; its recommends pull 258 MB of collections.
const APT_INSTALL = ["install", "-y", "-qq", "--no-install-recommends"];

const missingNow = () => NEEDS.filter((n) => spawnSync(n.bin, n.args, { stdio: "ignore" }).error);
const packagesOf = (needs) => [...new Set(needs.map((n) => n.pkg))];
const has = (bin) => !spawnSync(bin, ["--version"], { stdio: "ignore" }).error;

/** How this process may run apt-get: itself as root, through sudo without a password, or not at all. */
function installer() {
  if (!has("apt-get")) return undefined;
  if (process.getuid?.() === 0) return [];
  if (has("sudo") && spawnSync("sudo", ["-n", "true"], { stdio: "ignore" }).status === 0) return ["sudo", "-n"];
  return undefined;
}

function apt(prefix, args) {
  const [cmd, ...rest] = [...prefix, "apt-get", ...args];
  const r = spawnSync(cmd, rest, { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  return r.status === 0;
}

// `kubectl kustomize` builds the Kubernetes install in the tests (test/unit/k8s-install.test.ts). Not
// installed from here: Debian's kubernetes-client is 1.20, whose kustomize is too old for it.
const kustomize = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
const kustomizeMajor = Number(/Kustomize Version: v(\d+)/.exec(kustomize.stdout ?? "")?.[1] ?? 0);
if (kustomize.error || kustomizeMajor < 5) {
  console.error(
    `The tests need kubectl with kustomize 5 or later (${kustomize.error ? "kubectl is not installed" : `this kubectl has kustomize ${kustomizeMajor || "unknown"}`}), for the Kubernetes install.\n` +
      "Install it from Kubernetes' packages (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/) or `gcloud components install kubectl`, then run npm test again.",
  );
  process.exit(1);
}

const missing = missingNow();
if (missing.length > 0) {
  const pkgs = packagesOf(missing);
  const list = missing.map((m) => `${m.what ?? m.bin} (${m.why})`).join(", ");
  const how = installer();
  if (how === undefined) {
    console.error(
      `The tests need ${list}, which this machine lacks. Install them with:\n` +
        `  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs.join(" ")}\n` +
        `then run npm test again.`,
    );
    process.exit(1);
  }
  console.error(`The tests need ${list}; installing ${pkgs.join(" ")} with ${[...how, "apt-get"].join(" ")} ${APT_INSTALL.join(" ")}`);
  const ok = apt(how, ["update", "-qq"]) && apt(how, [...APT_INSTALL, ...pkgs]);
  const still = missingNow();
  if (!ok || still.length > 0) {
    console.error(
      `Could not install ${packagesOf(still.length > 0 ? still : missing).join(" ")} (apt-get ${ok ? "succeeded but they are still missing" : "failed"}); install them by hand and run npm test again.`,
    );
    process.exit(1);
  }
  console.error(`Installed ${pkgs.join(" ")}.`);
}

// The store tests also run on PostgreSQL (trust auth as `postgres`; each test file makes and drops
// its own database). Not installed from here: its authentication is the machine owner's to choose.
const postgresUrl = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const { default: pg } = await import("pg");
const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 5000 });
try {
  await client.connect();
  await client.query("select 1");
} catch (err) {
  const where = new URL(postgresUrl).host;
  console.error(
    `The store tests need PostgreSQL at ${where} (${err instanceof Error ? err.message : String(err)}).\n` +
      (process.env.TEST_POSTGRES_URL
        ? "Check TEST_POSTGRES_URL."
        : "Start it (Debian: sudo pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n 1) main start, as .ci/run does),\n" +
          "let `postgres` in from 127.0.0.1 without a password (a `host all postgres 127.0.0.1/32 trust` line in pg_hba.conf),\n" +
          "or point the tests at another server: TEST_POSTGRES_URL=postgres://user:password@host:5432/postgres npm test"),
  );
  process.exit(1);
} finally {
  await client.end().catch(() => undefined);
}

// The real agent CLIs the preset tests run (test/integration/real-agents.test.ts), at the versions
// pinned in agent-clis/ — installed here, not by the app's `npm ci`: they are about 1.2 GB of
// native binaries that only these tests and the worker images need. AGENT_CLIS_DIR points the tests
// at an install elsewhere.

const clis = fileURLToPath(new URL("../agent-clis/", import.meta.url));
const pinned = JSON.parse(readFileSync(path.join(clis, "package.json"), "utf8")).dependencies;
const modules = process.env.AGENT_CLIS_DIR ?? path.join(clis, "node_modules");
const stale = Object.entries(pinned).filter(([pkg, version]) => {
  const file = path.join(modules, pkg, "package.json");
  return !existsSync(file) || JSON.parse(readFileSync(file, "utf8")).version !== version;
});
if (stale.length > 0) {
  if (process.env.AGENT_CLIS_DIR) {
    console.error(`AGENT_CLIS_DIR=${modules} lacks ${stale.map(([p, v]) => `${p}@${v}`).join(", ")}; unset it or install them there`);
    process.exit(1);
  }
  // `npm install --no-save`, not `npm ci`: npm writes a lock with only this platform's optional
  // binaries (opencode ships one package per platform), which `npm ci` then refuses as out of sync.
  // The versions are pinned exactly in package.json either way.
  console.error(`Installing the agent CLIs the tests run (${stale.map(([p, v]) => `${p}@${v}`).join(", ")}): npm install --no-save --prefix agent-clis`);
  const r = spawnSync("npm", ["install", "--no-save", "--prefix", clis, "--no-audit", "--no-fund"], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
