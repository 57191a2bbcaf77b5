import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseEnv } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import {
  CONTROLLER_ENV_VARS,
  describeControllerConfig,
  loadControllerConfig,
  secretValues,
  type ControllerConfig,
  type LoadControllerConfigResult,
} from "../../src/config/env.js";

const { privateKey: PEM } = generateKeyPairSync("rsa", {
  modulusLength: 1024,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});
const WEBHOOK_SECRET = "0123456789abcdef0123456789abcdef-webhook";
const tempDir = mkdtempSync(join(tmpdir(), "agent-work-env-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

function ok(result: LoadControllerConfigResult): { config: ControllerConfig; warnings: string[] } {
  if (!result.ok) throw new Error(`expected a config, got errors:\n${result.errors.join("\n")}`);
  return result;
}

function errors(result: LoadControllerConfigResult): string[] {
  if (result.ok) throw new Error("expected errors, got a config");
  return result.errors;
}

describe(".env.example", () => {
  const example = readFileSync(resolve(import.meta.dirname, "../../.env.example"), "utf8");
  const lines = example.split("\n");

  it("names exactly the variables the controller reads, each once", () => {
    const named = lines.flatMap((line) => /^#?\s*([A-Z][A-Z0-9_]*)=/.exec(line)?.[1] ?? []);
    expect([...named].sort()).toEqual(CONTROLLER_ENV_VARS.map((v) => v.name).sort());
  });

  it("describes each variable in a comment above it, with its default", () => {
    for (const variable of CONTROLLER_ENV_VARS) {
      const index = lines.findIndex((line) => new RegExp(`^#?\\s*${variable.name}=`).test(line));
      const comments: string[] = [];
      for (let i = index - 1; i >= 0 && lines[i]!.startsWith("# "); i--) comments.unshift(lines[i]!);
      const block = comments.join("\n");
      expect(block, variable.name).toContain(variable.description.split(";")[0]!.split(",")[0]!.slice(0, 30));
      expect(block, variable.name).toMatch(
        variable.default === undefined ? /Default: unset/ : new RegExp(`Default: ${variable.default.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"),
      );
    }
  });

  it("keeps every default when copied to .env as it is", () => {
    const env = parseEnv(example) as Record<string, string>;
    expect(Object.values(env).every((value) => value === "")).toBe(true);
    expect(ok(loadControllerConfig(env)).config).toEqual(ok(loadControllerConfig({})).config);
  });
});

describe("loadControllerConfig", () => {
  it("needs nothing: an empty environment gives the documented defaults", () => {
    const { config, warnings } = ok(loadControllerConfig({}));
    expect(config).toEqual({
      gheProtocol: "https",
      port: 3000,
      host: "0.0.0.0",
      requestTimeoutSeconds: 15,
      webhookThread: true,
      metrics: { host: "127.0.0.1", port: 9464, repoLabels: false },
      logLevel: "info",
      production: false,
      dataDir: resolve("./data"),
      triggerLabel: "agent-work",
      maxConcurrentJobs: 2,
      defaultAgent: "claude-code",
      defaultMaxMinutes: 30,
      maxMinutesCeiling: 55,
      leaseSeconds: 60,
      statusUpdateIntervalSeconds: 30,
      schedulerIntervalMs: 1000,
      localBackend: true,
      localSandbox: "bwrap",
      sandboxRoBinds: [],
      networkDefault: "full",
      egressCredentials: [],
      networkAllowDefault: [],
      sandboxCeilings: { memoryMb: 4096, maxProcesses: 512, maxDiskMb: 10240 },
      dependencyCacheMaxMb: 2048,
      agentEnv: {},
      requiredPermission: "write",
      gitAuthor: { name: "agent-work[bot]", email: "agent-work[bot]@users.noreply.github.com" },
      logRetentionDays: 14,
      redeliveryIntervalSeconds: 300,
      labelScanMaxAgeDays: 30,
      logStreamRecheckSeconds: 120,
      budgets: { jobUsd: 1, repoMonthlyUsd: 20, globalHourlyUsd: 5 },
      backendOrder: [],
    });
    expect(warnings).toEqual([]);
    for (const variable of CONTROLLER_ENV_VARS) {
      expect(variable.description.length, variable.name).toBeGreaterThan(10);
      expect(variable.description, variable.name).not.toContain("\n");
    }
  });

  it("treats an empty value like an absent one", () => {
    expect(ok(loadControllerConfig({ PORT: "", LOG_LEVEL: " ", APP_ID: "" })).config.port).toBe(3000);
  });

  it("reads a full GitHub App configuration", () => {
    const { config, warnings } = ok(
      loadControllerConfig({
        APP_ID: "1234",
        PRIVATE_KEY: PEM,
        WEBHOOK_SECRET,
        GHE_HOST: "github.example.com",
        GHE_PROTOCOL: "http",
        PORT: "8080",
        HOST: "127.0.0.1",
        LOG_LEVEL: "debug",
        NODE_ENV: "production",
        DATA_DIR: "/var/lib/agent-work",
        PUBLIC_URL: "https://agent-work.example.com/",
        TRIGGER_LABEL: "ai",
        MAX_CONCURRENT_JOBS: "5",
        DEFAULT_AGENT: "aider",
        DEFAULT_MAX_MINUTES: "20",
        MAX_MINUTES_CEILING: "40",
        LEASE_SECONDS: "30",
        STATUS_UPDATE_INTERVAL_SECONDS: "5",
        SCHEDULER_INTERVAL_MS: "250",
        SANDBOX_RO_BINDS: "/opt/agents, /usr/lib/node_modules,/opt/agents",
        REQUIRED_PERMISSION: "maintain",
        GIT_AUTHOR_NAME: "Robot",
        GIT_AUTHOR_EMAIL: "123+robot[bot]@users.noreply.github.com",
        GITHUB_CLIENT_ID: "Iv23liAbCdEf0123456789",
        GITHUB_CLIENT_SECRET: "0123456789abcdef0123456789abcdef01234567",
        LOG_RETENTION_DAYS: "30",
        REDELIVERY_INTERVAL_SECONDS: "0",
        LABEL_SCAN_MAX_AGE_DAYS: "7",
      }),
    );
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      appId: 1234,
      privateKey: PEM.trim(),
      webhookSecret: WEBHOOK_SECRET,
      gheHost: "github.example.com",
      gheProtocol: "http",
      port: 8080,
      host: "127.0.0.1",
      logLevel: "debug",
      production: true,
      dataDir: "/var/lib/agent-work",
      publicUrl: "https://agent-work.example.com",
      triggerLabel: "ai",
      maxConcurrentJobs: 5,
      defaultAgent: "aider",
      defaultMaxMinutes: 20,
      maxMinutesCeiling: 40,
      leaseSeconds: 30,
      statusUpdateIntervalSeconds: 5,
      schedulerIntervalMs: 250,
      sandboxRoBinds: ["/opt/agents", "/usr/lib/node_modules"],
      requiredPermission: "maintain",
      gitAuthor: { name: "Robot", email: "123+robot[bot]@users.noreply.github.com" },
      signIn: {
        clientId: "Iv23liAbCdEf0123456789",
        clientSecret: "0123456789abcdef0123456789abcdef01234567",
        webUrl: "http://github.example.com",
        apiUrl: "http://github.example.com/api/v3",
      },
      logRetentionDays: 30,
      redeliveryIntervalSeconds: 0,
      labelScanMaxAgeDays: 7,
    });
  });

  it("reports every bad value together, naming the variable, the value and what is valid", () => {
    const list = errors(
      loadControllerConfig({
        APP_ID: "abc",
        PORT: "99999",
        LOG_LEVEL: "verbose",
        GHE_HOST: "https://github.example.com/",
        GHE_PROTOCOL: "ftp",
        PUBLIC_URL: "not a url",
        MAX_CONCURRENT_JOBS: "0",
        DEFAULT_AGENT: "copilot",
        MAX_MINUTES_CEILING: "90",
        LEASE_SECONDS: "1.5",
        LOCAL_SANDBOX: "docker",
        SANDBOX_RO_BINDS: "/ok,relative/path",
        AGENT_ENV_PASSTHROUGH: "GOOD_NAME,bad-name",
        REQUIRED_PERMISSION: "triage",
        GIT_AUTHOR_EMAIL: "nobody",
      }),
    );
    const expected: Record<string, RegExp> = {
      APP_ID: /^APP_ID="abc": expected a positive whole number/,
      PORT: /^PORT="99999": expected a whole number from 1 to 65535 \(default 3000\)/,
      LOG_LEVEL: /^LOG_LEVEL="verbose": expected one of trace, debug, info, warn, error, fatal \(default info\)/,
      GHE_HOST: /^GHE_HOST="https:\/\/github.example.com\/": expected a host name/,
      GHE_PROTOCOL: /^GHE_PROTOCOL="ftp": expected one of https, http/,
      PUBLIC_URL: /^PUBLIC_URL="not a url": expected an http\(s\) URL/,
      MAX_CONCURRENT_JOBS: /^MAX_CONCURRENT_JOBS="0": expected a whole number from 1 to 1000/,
      DEFAULT_AGENT: /^DEFAULT_AGENT="copilot": expected one of opencode, claude-code, aider, codex, command/,
      MAX_MINUTES_CEILING: /^MAX_MINUTES_CEILING="90": expected a whole number from 1 to 55, because the installation token a job pushes with lives one hour/,
      LEASE_SECONDS: /^LEASE_SECONDS="1.5": expected a whole number/,
      LOCAL_SANDBOX: /^LOCAL_SANDBOX="docker": expected one of bwrap, none/,
      SANDBOX_RO_BINDS: /^SANDBOX_RO_BINDS="\/ok,relative\/path": .*not absolute: "relative\/path"/,
      AGENT_ENV_PASSTHROUGH: /^AGENT_ENV_PASSTHROUGH=.*not a name: "bad-name"/,
      REQUIRED_PERMISSION: /^REQUIRED_PERMISSION="triage": expected one of write, maintain, admin/,
      GIT_AUTHOR_EMAIL: /^GIT_AUTHOR_EMAIL="nobody": expected an email address/,
    };
    for (const [name, pattern] of Object.entries(expected)) {
      expect(
        list.filter((e) => e.startsWith(`${name}=`)),
        name,
      ).toHaveLength(1);
      expect(
        list.find((e) => e.startsWith(`${name}=`)),
        name,
      ).toMatch(pattern);
    }
    expect(list).toHaveLength(Object.keys(expected).length);
  });

  it("checks the rules that span variables, alongside the single ones", () => {
    const list = errors(loadControllerConfig({ APP_ID: "12", DEFAULT_MAX_MINUTES: "50", MAX_MINUTES_CEILING: "40", PORT: "x" }));
    expect(list).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT="x"/),
        expect.stringMatching(/^WEBHOOK_SECRET: required when APP_ID is set/),
        expect.stringMatching(/^PRIVATE_KEY: PRIVATE_KEY or PRIVATE_KEY_PATH is required when APP_ID is set/),
        expect.stringMatching(/^DEFAULT_MAX_MINUTES="50": must not exceed MAX_MINUTES_CEILING \(40\)/),
      ]),
    );
    expect(list).toHaveLength(4);
  });

  it("requires APP_ID in production", () => {
    expect(errors(loadControllerConfig({ NODE_ENV: "production" }))).toEqual([expect.stringMatching(/^APP_ID: required when NODE_ENV=production/)]);
  });

  it("unescapes \\n in PRIVATE_KEY", () => {
    const oneLine = PEM.trim().replace(/\n/g, "\\n");
    expect(oneLine).not.toContain("\n");
    const { config } = ok(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY: oneLine, WEBHOOK_SECRET }));
    expect(config.privateKey).toBe(PEM.trim());
  });

  it("masks a bad PRIVATE_KEY in its error", () => {
    const [error] = errors(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY: "not-a-key-but-secret", WEBHOOK_SECRET }));
    expect(error).toBe(
      "PRIVATE_KEY=**** (20 chars): expected a PEM private key from -----BEGIN RSA PRIVATE KEY----- to -----END RSA PRIVATE KEY----- (the .pem file GitHub gave you; newlines may be written as \\n)",
    );
    expect(error).not.toContain("not-a-key");
  });

  it("reads the key from PRIVATE_KEY_PATH, and says when it cannot", () => {
    const keyFile = join(tempDir, "app.pem");
    writeFileSync(keyFile, PEM);
    expect(ok(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY_PATH: keyFile, WEBHOOK_SECRET })).config.privateKey).toBe(PEM.trim());

    const missing = join(tempDir, "missing.pem");
    expect(errors(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY_PATH: missing, WEBHOOK_SECRET }))).toEqual([
      `PRIVATE_KEY_PATH=${JSON.stringify(missing)}: cannot read ${missing} (ENOENT); expected a readable file holding the GitHub App's private key`,
    ]);

    const notAKey = join(tempDir, "notes.txt");
    writeFileSync(notAKey, "hello");
    expect(errors(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY_PATH: notAKey, WEBHOOK_SECRET }))[0]).toMatch(/does not hold a PEM private key/);
  });

  it("refuses PRIVATE_KEY and PRIVATE_KEY_PATH together", () => {
    expect(errors(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY: PEM, PRIVATE_KEY_PATH: "/x.pem", WEBHOOK_SECRET }))).toEqual([
      'PRIVATE_KEY_PATH="/x.pem": set either PRIVATE_KEY or PRIVATE_KEY_PATH, not both',
    ]);
  });

  it("warns about a short webhook secret and an unsandboxed agent", () => {
    const { warnings } = ok(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY: PEM, WEBHOOK_SECRET: "short", LOCAL_SANDBOX: "none" }));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^WEBHOOK_SECRET is 5 characters long; use at least 32/);
    expect(warnings[1]).toMatch(/^LOCAL_SANDBOX=none: .*runs UNSANDBOXED as the worker's user .*every job's log says so/);
    expect(warnings.join("\n")).not.toContain("short");
  });

  it("refuses a ceiling that would leave no time to push before the token expires", () => {
    const bad = loadControllerConfig({ MAX_MINUTES_CEILING: "60" });
    expect(!bad.ok && bad.errors[0]).toMatch(/^MAX_MINUTES_CEILING="60": expected a whole number from 1 to 55/);
  });

  describe("the gce backend", () => {
    const sshKey = join(tempDir, "worker_ed25519");
    writeFileSync(sshKey, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n");

    it("is off unless GCE_PROJECT is set, and says so when other GCE_ variables are", () => {
      expect(ok(loadControllerConfig({})).config.gce).toBeUndefined();
      const { config, warnings } = ok(loadControllerConfig({ GCE_ZONES: "europe-west1-b" }));
      expect(config.gce).toBeUndefined();
      expect(warnings).toEqual([expect.stringMatching(/^GCE_ZONES is set but GCE_PROJECT is not/)]);
    });

    it("takes its defaults from the project: image family, role-less worker account, zones", () => {
      const { config, warnings } = ok(loadControllerConfig({ GCE_PROJECT: "my-project-123", GCE_SSH_PRIVATE_KEY_PATH: sshKey }));
      expect(warnings).toEqual([]);
      expect(config.gce).toEqual({
        project: "my-project-123",
        zones: ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"],
        machineType: "e2-standard-2",
        image: "projects/my-project-123/global/images/family/agent-work-worker",
        serviceAccount: "agent-work-worker@my-project-123.iam.gserviceaccount.com",
        spot: true,
        onDemandFallback: true,
        network: "default",
        externalIp: false,
        networkTags: ["agent-work-worker"],
        diskGb: 20,
        diskType: "pd-balanced",
        envLabel: "default",
        maxVms: 4,
        sshUser: "agent-work",
        sshPrivateKey: readFileSync(sshKey, "utf8"),
        bootTimeoutSeconds: 300,
      });
      expect(secretValues(config)).toContain(readFileSync(sshKey, "utf8"));
      expect(describeControllerConfig(config).gce).not.toContain("BEGIN");
    });

    it("needs the SSH key, and refuses the default compute service account and malformed values", () => {
      const list = errors(
        loadControllerConfig({
          GCE_PROJECT: "my-project-123",
          GCE_ZONES: "us-central1-a,us-central1",
          GCE_WORKER_SERVICE_ACCOUNT: "123456-compute@developer.gserviceaccount.com",
          GCE_SPOT: "yes",
          GCE_DISK_GB: "5",
        }),
      );
      expect(list).toEqual([
        expect.stringMatching(/^GCE_ZONES="us-central1-a,us-central1": expected comma-separated zones .*not a zone: "us-central1"/),
        expect.stringMatching(/^GCE_WORKER_SERVICE_ACCOUNT=.*default compute service account usually has Editor/),
        expect.stringMatching(/^GCE_SPOT="yes": expected true or false \(default true\)/),
        expect.stringMatching(/^GCE_DISK_GB="5": expected a whole number from 10/),
        expect.stringMatching(/^GCE_SSH_PRIVATE_KEY_PATH: required with GCE_PROJECT/),
      ]);
    });

    it("reads a startup script, and refuses one that holds a credential", () => {
      const script = join(tempDir, "startup.sh");
      writeFileSync(script, "#!/bin/sh\napt-get install -y git\n");
      expect(
        ok(loadControllerConfig({ GCE_PROJECT: "my-project-123", GCE_SSH_PRIVATE_KEY_PATH: sshKey, GCE_STARTUP_SCRIPT_PATH: script })).config.gce
          ?.startupScript,
      ).toBe("#!/bin/sh\napt-get install -y git\n");
      writeFileSync(script, "git clone https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r\n");
      expect(errors(loadControllerConfig({ GCE_PROJECT: "my-project-123", GCE_SSH_PRIVATE_KEY_PATH: sshKey, GCE_STARTUP_SCRIPT_PATH: script }))).toEqual([
        expect.stringMatching(/^GCE_STARTUP_SCRIPT_PATH=.*holds something shaped like a credential/),
      ]);
    });

    it("warns about an external IP", () => {
      const { config, warnings } = ok(
        loadControllerConfig({ GCE_PROJECT: "my-project-123", GCE_SSH_PRIVATE_KEY_PATH: sshKey, GCE_EXTERNAL_IP: "true", GCE_SPOT: "false" }),
      );
      expect(config.gce).toMatchObject({ externalIp: true, spot: false });
      expect(warnings).toEqual([expect.stringMatching(/^GCE_EXTERNAL_IP=true: worker VMs get a public address/)]);
    });
  });

  describe("SSH_HOSTS_FILE", () => {
    it("is off unless set; set, it is resolved and its hosts are checked at start", () => {
      expect(ok(loadControllerConfig({})).config.sshHostsFile).toBeUndefined();
      const hostsFile = join(tempDir, "ssh-hosts.yml");
      writeFileSync(hostsFile, `hosts:\n  - { name: b1, address: 10.0.0.5, user: agent-work, slots: 2, privateKey: "${PEM.replaceAll("\n", "\\n")}" }\n`);
      const { config } = ok(loadControllerConfig({ SSH_HOSTS_FILE: hostsFile }));
      expect(config.sshHostsFile).toBe(hostsFile);
      expect(describeControllerConfig(config).sshHostsFile).toBe(hostsFile);
    });

    it("names the bad key inside the hosts file", () => {
      const hostsFile = join(tempDir, "ssh-hosts-bad.yml");
      writeFileSync(hostsFile, "hosts:\n  - { name: b1, address: 10.0.0.5, user: agent-work, slot: 2 }\n");
      expect(errors(loadControllerConfig({ SSH_HOSTS_FILE: hostsFile })).sort()).toEqual([
        expect.stringMatching(/^SSH_HOSTS_FILE=".*ssh-hosts-bad.yml": hosts\[0\]\.slot: unknown key/),
        expect.stringMatching(/^SSH_HOSTS_FILE=".*": hosts\[0\]\.slots: required/),
      ]);
    });
  });

  describe("the k8s backend", () => {
    it("is off unless K8S_NAMESPACE is set, and says so when other K8S_ variables are", () => {
      expect(ok(loadControllerConfig({})).config.k8s).toBeUndefined();
      const { config, warnings } = ok(loadControllerConfig({ K8S_IMAGE: "ghcr.io/acme/worker:1" }));
      expect(config.k8s).toBeUndefined();
      expect(warnings).toEqual([expect.stringMatching(/^K8S_IMAGE is set but K8S_NAMESPACE is not/)]);
      expect(describeControllerConfig(config).k8s).toBe("(off: K8S_NAMESPACE not set)");
    });

    it("runs in-cluster with the documented defaults when only the namespace and image are given", () => {
      const image = `ghcr.io/acme/worker@sha256:${"a".repeat(64)}`;
      const { config, warnings } = ok(
        loadControllerConfig({
          K8S_NAMESPACE: "agent-work",
          K8S_IMAGE: image,
          K8S_USER_NAMESPACE: "true",
          K8S_SECCOMP_PROFILE: "localhost/agent-work-bwrap.json",
        }),
      );
      expect(config.k8s).toEqual({
        namespace: "agent-work",
        image,
        cpu: "1",
        memory: "2Gi",
        ephemeralStorage: "10Gi",
        maxJobs: 4,
        ttlSecondsAfterFinished: 600,
        runAsUser: 1000,
        agentSandbox: "bwrap",
        isolation: { userNamespace: true, seccompProfile: { type: "Localhost", localhostProfile: "agent-work-bwrap.json" } },
      });
      expect(warnings).toEqual([]);
    });

    it("warns that bwrap cannot work in a pod with the defaults, and that a tag is not a pinned image", () => {
      const { config, warnings } = ok(loadControllerConfig({ K8S_NAMESPACE: "agent-work", K8S_IMAGE: "ghcr.io/acme/worker:1" }));
      expect(config.k8s?.isolation).toEqual({ userNamespace: false, seccompProfile: { type: "RuntimeDefault" } });
      expect(warnings).toEqual([
        expect.stringMatching(
          /^K8S_AGENT_SANDBOX=bwrap with RuntimeDefault seccomp and no user namespace: bubblewrap cannot build .* K8S_USER_NAMESPACE=true and K8S_SECCOMP_PROFILE=localhost\/agent-work-bwrap\.json/,
        ),
        expect.stringMatching(/^K8S_IMAGE=ghcr\.io\/acme\/worker:1 is not pinned by digest/),
      ]);
    });

    it("reads the pod isolation settings, and refuses a profile outside the kubelet's folder", () => {
      const { config } = ok(
        loadControllerConfig({
          K8S_NAMESPACE: "a",
          K8S_IMAGE: "i",
          K8S_AGENT_SANDBOX: "none",
          K8S_APPARMOR_PROFILE: "localhost/agent-work-bwrap",
          K8S_RUNTIME_CLASS: "gvisor",
        }),
      );
      expect(config.k8s?.isolation).toEqual({
        userNamespace: false,
        seccompProfile: { type: "RuntimeDefault" },
        appArmorProfile: { type: "Localhost", localhostProfile: "agent-work-bwrap" },
        runtimeClassName: "gvisor",
      });
      const bad = loadControllerConfig({
        K8S_NAMESPACE: "a",
        K8S_IMAGE: "i",
        K8S_SECCOMP_PROFILE: "localhost/../../etc/x.json",
        K8S_APPARMOR_PROFILE: "Unconfined",
        K8S_USER_NAMESPACE: "yes",
      });
      expect(bad.ok ? [] : bad.errors).toEqual([
        expect.stringMatching(/^K8S_USER_NAMESPACE=.*expected true or false/),
        expect.stringMatching(/^K8S_SECCOMP_PROFILE=.*expected RuntimeDefault or localhost\/<name>/),
        expect.stringMatching(/^K8S_APPARMOR_PROFILE=.*expected RuntimeDefault or localhost\/<name>/),
      ]);
    });

    it("reads a kubeconfig path, resources and the sandbox, and warns that without bwrap the agent can read the token", () => {
      const kubeconfig = join(tempDir, "kubeconfig.yaml");
      writeFileSync(kubeconfig, "apiVersion: v1\nkind: Config\n");
      const { config, warnings } = ok(
        loadControllerConfig({
          K8S_NAMESPACE: "ci-workers",
          K8S_IMAGE: "registry.example.com/agent-work-worker@sha256:abc",
          K8S_KUBECONFIG: kubeconfig,
          K8S_CPU: "500m",
          K8S_MEMORY: "1.5Gi",
          K8S_EPHEMERAL_STORAGE: "20Gi",
          K8S_MAX_JOBS: "20",
          K8S_TTL_SECONDS_AFTER_FINISHED: "0",
          K8S_RUN_AS_USER: "65532",
          K8S_AGENT_SANDBOX: "none",
        }),
      );
      expect(config.k8s).toMatchObject({
        kubeconfig,
        cpu: "500m",
        memory: "1.5Gi",
        ephemeralStorage: "20Gi",
        maxJobs: 20,
        ttlSecondsAfterFinished: 0,
        runAsUser: 65532,
        agentSandbox: "none",
      });
      expect(warnings).toEqual([
        expect.stringMatching(/^K8S_IMAGE=.* is not pinned by digest/),
        expect.stringMatching(/^K8S_AGENT_SANDBOX=none: .*can read the job's mounted input, which holds the repository token/),
      ]);
      expect(JSON.parse(describeControllerConfig(config).k8s!)).toMatchObject({ namespace: "ci-workers", kubeconfig });
    });

    it("needs an image, a readable kubeconfig, Kubernetes quantities and a non-root user", () => {
      expect(
        errors(
          loadControllerConfig({
            K8S_NAMESPACE: "Agent_Work",
            K8S_KUBECONFIG: join(tempDir, "missing-kubeconfig"),
            K8S_CPU: "two",
            K8S_MEMORY: "2 GB",
            K8S_RUN_AS_USER: "0",
            K8S_AGENT_SANDBOX: "gvisor",
          }),
        ).sort(),
      ).toEqual([
        expect.stringMatching(/^K8S_AGENT_SANDBOX="gvisor": expected one of bwrap, none/),
        expect.stringMatching(/^K8S_CPU="two": expected a CPU quantity/),
        expect.stringMatching(/^K8S_MEMORY="2 GB": expected a memory quantity/),
        expect.stringMatching(/^K8S_NAMESPACE="Agent_Work": expected a namespace name/),
        expect.stringMatching(/^K8S_RUN_AS_USER="0": .*0 is root/),
      ]);
      expect(errors(loadControllerConfig({ K8S_NAMESPACE: "agent-work", K8S_KUBECONFIG: join(tempDir, "missing-kubeconfig") })).sort()).toEqual([
        expect.stringMatching(/^K8S_IMAGE: required with K8S_NAMESPACE/),
        expect.stringMatching(/^K8S_KUBECONFIG=".*missing-kubeconfig": cannot read .* \(ENOENT\)/),
      ]);
    });
  });

  describe("sign-in to the job pages", () => {
    const client = { GITHUB_CLIENT_ID: "Iv23liAbCdEf0123456789", GITHUB_CLIENT_SECRET: "client-secret-0123456789abcdef" };

    it("is off without a client id, and warns when PUBLIC_URL sends people to pages they cannot sign in to", () => {
      expect(ok(loadControllerConfig({})).config.signIn).toBeUndefined();
      expect(ok(loadControllerConfig({ PUBLIC_URL: "https://aw.example.com" })).warnings).toEqual([
        expect.stringMatching(/^PUBLIC_URL is set but GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET are not/),
      ]);
    });

    it("talks to github.com by default, to GHE_HOST when set, and to given URLs for tests", () => {
      expect(ok(loadControllerConfig(client)).config.signIn).toMatchObject({ webUrl: "https://github.com", apiUrl: "https://api.github.com" });
      expect(ok(loadControllerConfig({ ...client, GHE_HOST: "ghe.example.com" })).config.signIn).toMatchObject({
        webUrl: "https://ghe.example.com",
        apiUrl: "https://ghe.example.com/api/v3",
      });
      expect(
        ok(loadControllerConfig({ ...client, GITHUB_OAUTH_URL: "http://127.0.0.1:9/", GITHUB_OAUTH_API_URL: "http://127.0.0.1:9/api/v3/" })).config.signIn,
      ).toMatchObject({ webUrl: "http://127.0.0.1:9", apiUrl: "http://127.0.0.1:9/api/v3" });
    });

    it("needs the client id and secret together, a long session secret, and sane retention", () => {
      expect(errors(loadControllerConfig({ GITHUB_CLIENT_ID: client.GITHUB_CLIENT_ID }))).toEqual([
        expect.stringMatching(/^GITHUB_CLIENT_SECRET: required with GITHUB_CLIENT_ID/),
      ]);
      expect(errors(loadControllerConfig({ GITHUB_CLIENT_SECRET: "x" }))).toEqual([
        expect.stringMatching(/^GITHUB_CLIENT_ID: required with GITHUB_CLIENT_SECRET/),
      ]);
      const list = errors(loadControllerConfig({ SESSION_SECRET: "too-short-secret", LOG_RETENTION_DAYS: "0", GITHUB_OAUTH_URL: "ftp://x" }));
      expect(list).toEqual([
        "SESSION_SECRET=**** (16 chars): expected at least 32 random characters (for example `openssl rand -hex 32`); a short key lets someone forge a sign-in",
        expect.stringMatching(/^LOG_RETENTION_DAYS="0": expected a whole number from 1 to 3650 \(default 14\)/),
        expect.stringMatching(/^GITHUB_OAUTH_URL="ftp:\/\/x": expected an http\(s\) URL/),
      ]);
    });

    it("treats the client secret and session secret as secrets", () => {
      const sessionSecret = "s".repeat(40);
      const { config } = ok(loadControllerConfig({ ...client, SESSION_SECRET: sessionSecret }));
      expect(config.sessionSecret).toBe(sessionSecret);
      expect(secretValues(config)).toEqual(expect.arrayContaining([client.GITHUB_CLIENT_SECRET, sessionSecret]));
      const described = JSON.stringify(describeControllerConfig(config));
      expect(described).not.toContain(client.GITHUB_CLIENT_SECRET);
      expect(described).not.toContain(sessionSecret);
      expect(described).toContain(client.GITHUB_CLIENT_ID);
    });
  });

  describe("AGENT_ENV_FROM_SECRET_MANAGER", () => {
    it("reads NAME=secret pairs, and refuses the app's own secrets and a name with two sources", () => {
      const { config } = ok(loadControllerConfig({ AGENT_ENV_FROM_SECRET_MANAGER: "ANTHROPIC_API_KEY=projects/p-1/secrets/model-key" }));
      expect(config.agentEnvSecrets).toEqual({ ANTHROPIC_API_KEY: "projects/p-1/secrets/model-key" });
      expect(
        errors(
          loadControllerConfig({
            AGENT_ENV_FROM_SECRET_MANAGER: "WEBHOOK_SECRET=projects/p/secrets/w,OPENAI_API_KEY=projects/p/secrets/o",
            AGENT_ENV_PASSTHROUGH: "OPENAI_API_KEY",
            OPENAI_API_KEY: "sk-x",
          }),
        ),
      ).toEqual([
        expect.stringMatching(/^AGENT_ENV_FROM_SECRET_MANAGER=.*WEBHOOK_SECRET must never reach the agent/),
        expect.stringMatching(/^AGENT_ENV_FROM_SECRET_MANAGER=.*OPENAI_API_KEY is also in AGENT_ENV_PASSTHROUGH/),
      ]);
      expect(errors(loadControllerConfig({ AGENT_ENV_FROM_SECRET_MANAGER: "KEY=not-a-secret" }))[0]).toMatch(/not one: "KEY=not-a-secret"/);
    });
  });

  describe("AGENT_ENV_PASSTHROUGH", () => {
    it("hands the listed variables' values to the agent", () => {
      const { config } = ok(
        loadControllerConfig({
          AGENT_ENV_PASSTHROUGH: "ANTHROPIC_API_KEY, OPENAI_API_KEY",
          ANTHROPIC_API_KEY: "sk-ant-xyz-123456",
          OPENAI_API_KEY: "sk-openai-987654",
        }),
      );
      expect(config.agentEnv).toEqual({ ANTHROPIC_API_KEY: "sk-ant-xyz-123456", OPENAI_API_KEY: "sk-openai-987654" });
    });

    it("refuses a listed variable that is not set", () => {
      expect(errors(loadControllerConfig({ AGENT_ENV_PASSTHROUGH: "ANTHROPIC_API_KEY" }))).toEqual([
        'AGENT_ENV_PASSTHROUGH="ANTHROPIC_API_KEY": ANTHROPIC_API_KEY is listed but not set in the controller\'s environment; set it or remove it from the list',
      ]);
    });

    it("never hands the app's own secrets to the agent, even when they are set", () => {
      for (const name of ["APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET", "DATABASE_URL"]) {
        const list = errors(loadControllerConfig({ APP_ID: "1", PRIVATE_KEY: PEM, WEBHOOK_SECRET, DATABASE_URL: "postgres://x", AGENT_ENV_PASSTHROUGH: name }));
        expect(list, name).toHaveLength(1);
        expect(list[0], name).toMatch(new RegExp(`^AGENT_ENV_PASSTHROUGH="${name}": ${name} must never reach the agent`));
      }
    });
  });

  describe("the store", () => {
    it("is PostgreSQL when DATABASE_URL is set, and embedded SQLite in DATA_DIR otherwise", () => {
      expect(ok(loadControllerConfig({})).config.databaseUrl).toBeUndefined();
      const url = "postgres://agent_work:s3cret-db-password@db.example.com:5432/agent_work";
      expect(ok(loadControllerConfig({ DATABASE_URL: url })).config.databaseUrl).toBe(url);
      expect(ok(loadControllerConfig({ DATABASE_URL: "postgresql:///agent_work?host=/var/run/postgresql" })).config.databaseUrl).toBe(
        "postgresql:///agent_work?host=/var/run/postgresql",
      );
    });

    it("refuses a URL that is not PostgreSQL without printing it, since it may hold a password", () => {
      const [error] = errors(loadControllerConfig({ DATABASE_URL: "mysql://root:hunter2-password@db/x" }));
      expect(error).toBe(
        "DATABASE_URL=**** (34 chars): expected a PostgreSQL URL such as postgres://agent_work:password@db.example.com:5432/agent_work (unset keeps the embedded SQLite store in DATA_DIR)",
      );
    });

    it("hides the URL and its password from every sink, and logs only where the database is", () => {
      const { config } = ok(loadControllerConfig({ DATABASE_URL: "postgres://agent_work:s3cret%2Fdb-password@db.example.com:5432/agent_work" }));
      expect(secretValues(config)).toEqual(["postgres://agent_work:s3cret%2Fdb-password@db.example.com:5432/agent_work", "s3cret/db-password"]);
      const described = describeControllerConfig(config);
      expect(described.databaseUrl).toBe("PostgreSQL at db.example.com:5432/agent_work");
      expect(JSON.stringify(described)).not.toContain("s3cret");
      expect(describeControllerConfig(ok(loadControllerConfig({ DATA_DIR: "/var/lib/aw" })).config).databaseUrl).toBe(
        "(not set: embedded SQLite in /var/lib/aw)",
      );
    });
  });

  describe("secrets", () => {
    const loaded = ok(
      loadControllerConfig({
        APP_ID: "42",
        PRIVATE_KEY: PEM,
        WEBHOOK_SECRET,
        AGENT_ENV_PASSTHROUGH: "ANTHROPIC_API_KEY",
        ANTHROPIC_API_KEY: "sk-ant-canary-0123456789",
      }),
    ).config;

    it("lists every secret value for the redactor", () => {
      expect(secretValues(loaded).sort()).toEqual([PEM.trim(), WEBHOOK_SECRET, "sk-ant-canary-0123456789"].sort());
      expect(secretValues(ok(loadControllerConfig({})).config)).toEqual([]);
    });

    it("describes the configuration for the start-up log with every secret masked", () => {
      const described = describeControllerConfig(loaded);
      const text = JSON.stringify(described);
      for (const secret of secretValues(loaded)) expect(text).not.toContain(secret.slice(0, 30));
      expect(text).not.toContain("BEGIN");
      expect(described.privateKey).toBe(`**** (${PEM.trim().length} chars)`);
      expect(described.webhookSecret).toBe(`**** (${WEBHOOK_SECRET.length} chars)`);
      expect(described.agentEnv).toBe("ANTHROPIC_API_KEY=**** (24 chars)");
      expect(described.appId).toBe("42");
      expect(described.port).toBe("3000");
      expect(described.publicUrl).toBe("(not set)");
      expect(Object.keys(described)).toEqual(expect.arrayContaining(Object.keys(loaded)));
    });
  });
});

describe("the metrics server", () => {
  it("listens on loopback by default, apart from the webhook port, with no token and no repository labels", () => {
    const { config, warnings } = ok(loadControllerConfig({}));
    expect(config.metrics).toEqual({ host: "127.0.0.1", port: 9464, repoLabels: false });
    expect(warnings).toEqual([]);
    expect(describeControllerConfig(config).metrics).toBe("127.0.0.1:9464, no token, without repository labels");
  });

  it("is off with METRICS_PORT=0, and says so if a token was set for it", () => {
    const { config, warnings } = ok(loadControllerConfig({ METRICS_PORT: "0", METRICS_TOKEN: "0123456789abcdef0123" }));
    expect(config.metrics).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining("METRICS_TOKEN is set but METRICS_PORT=0")]);
    expect(describeControllerConfig(config).metrics).toBe("(off: METRICS_PORT=0)");
  });

  it("keeps the token secret: for the redactor, masked when printed and in errors", () => {
    const token = "metrics-canary-0123456789abcdef";
    const { config } = ok(loadControllerConfig({ METRICS_TOKEN: token, METRICS_REPO_LABELS: "true", METRICS_PORT: "9100" }));
    expect(config.metrics).toEqual({ host: "127.0.0.1", port: 9100, token, repoLabels: true });
    expect(secretValues(config)).toContain(token);
    const described = describeControllerConfig(config).metrics!;
    expect(described).toBe(`127.0.0.1:9100, bearer token **** (${token.length} chars), with repository labels`);
    const short = errors(loadControllerConfig({ METRICS_TOKEN: "short secret" }));
    expect(short).toEqual([expect.stringMatching(/^METRICS_TOKEN=\*\*\*\* \(12 chars\): expected at least 16 printable characters without spaces/)]);
    expect(short.join()).not.toContain("short secret");
  });

  it("refuses the webhook port, and warns when it is reachable from elsewhere without a token", () => {
    expect(errors(loadControllerConfig({ PORT: "8080", METRICS_PORT: "8080" }))).toEqual([
      expect.stringMatching(/^METRICS_PORT="8080": the webhook server already listens on 8080 \(PORT\)/),
    ]);
    expect(errors(loadControllerConfig({ METRICS_PORT: "70000" }))).toEqual([
      expect.stringMatching(/^METRICS_PORT="70000": expected a whole number from 0 to 65535 \(0 turns the metrics server off\)/),
    ]);
    expect(ok(loadControllerConfig({ METRICS_HOST: "0.0.0.0" })).warnings).toEqual([
      expect.stringMatching(/^METRICS_HOST=0\.0\.0\.0 lets anyone who can reach port 9464 read \/metrics without a token; set METRICS_TOKEN/),
    ]);
    expect(ok(loadControllerConfig({ METRICS_HOST: "0.0.0.0", METRICS_TOKEN: "0123456789abcdef0123" })).warnings).toEqual([]);
    expect(ok(loadControllerConfig({ METRICS_HOST: "::1" })).warnings).toEqual([]);
  });
});

describe("the agent's sandbox", () => {
  it("reads the ceilings a repository may ask below, and names a bad one with its range", () => {
    const { config } = ok(loadControllerConfig({ SANDBOX_MAX_MEMORY_MB: "1024", SANDBOX_MAX_PROCESSES: "128", SANDBOX_MAX_DISK_MB: "2048" }));
    expect(config.sandboxCeilings).toEqual({ memoryMb: 1024, maxProcesses: 128, maxDiskMb: 2048 });
    expect(describeControllerConfig(config).sandboxCeilings).toBe("memory 1024 MB, 128 processes, disk 2048 MB");
    const list = errors(loadControllerConfig({ SANDBOX_MAX_MEMORY_MB: "32", SANDBOX_MAX_PROCESSES: "lots", SANDBOX_MAX_DISK_MB: "-1" }));
    expect(list).toEqual([
      'SANDBOX_MAX_MEMORY_MB="32": expected a whole number from 64 to 1048576 (default 4096)',
      'SANDBOX_MAX_PROCESSES="lots": expected a whole number from 16 to 65536 (default 512)',
      'SANDBOX_MAX_DISK_MB="-1": expected a whole number from 16 to 10485760 (default 10240)',
    ]);
  });

  it("reads the allow-list's settings: NETWORK_DEFAULT, MODEL_PROXY and EGRESS_CREDENTIALS, whose values are secrets", () => {
    const token = "Bearer npm_0123456789abcdefghijklmnopqrstuvwxyz";
    const loaded = ok(
      loadControllerConfig({
        NETWORK_DEFAULT: "allowlist",
        NETWORK_ALLOW_DEFAULT: "registry.npmjs.org,*.pypi.org",
        ANTHROPIC_API_KEY: "sk-ant-secret-0123456789",
        MODEL_PROXY: "api.anthropic.com,x-api-key,ANTHROPIC_API_KEY",
        REGISTRY_AUTH: token,
        EGRESS_CREDENTIALS: "registry.example.com,authorization,REGISTRY_AUTH ; npm.example.com:8443,authorization,REGISTRY_AUTH,https://npm.example.com:8443/",
      }),
    );
    expect(loaded.warnings).toEqual([]);
    expect(loaded.config).toMatchObject({
      networkDefault: "allowlist",
      networkAllowDefault: ["registry.npmjs.org", "*.pypi.org"],
      modelProxy: {
        host: "api.anthropic.com",
        header: "x-api-key",
        variable: "ANTHROPIC_API_KEY",
        upstream: "https://api.anthropic.com",
        value: "sk-ant-secret-0123456789",
      },
      egressCredentials: [
        { host: "registry.example.com", header: "authorization", variable: "REGISTRY_AUTH", upstream: "https://registry.example.com", value: token },
        { host: "npm.example.com:8443", header: "authorization", variable: "REGISTRY_AUTH", upstream: "https://npm.example.com:8443/", value: token },
      ],
    });
    expect(secretValues(loaded.config)).toEqual(expect.arrayContaining(["sk-ant-secret-0123456789", token]));
    expect(JSON.stringify(describeControllerConfig(loaded.config))).not.toContain(token);
    expect(JSON.stringify(describeControllerConfig(loaded.config))).not.toContain("sk-ant-secret-0123456789");

    expect(errors(loadControllerConfig({ EGRESS_CREDENTIALS: "registry.example.com,authorization,REGISTRY_AUTH" })).join("\n")).toMatch(
      /EGRESS_CREDENTIALS.*REGISTRY_AUTH is named but not set/,
    );
    expect(errors(loadControllerConfig({ EGRESS_CREDENTIALS: "*.example.com,authorization,X", X: "y" })).join("\n")).toMatch(
      /EGRESS_CREDENTIALS.*expected host,header,VARIABLE\[,upstream URL\] rules separated by ;.*"\*\.example\.com"/,
    );
    expect(errors(loadControllerConfig({ EGRESS_CREDENTIALS: "a.example,authorization,WEBHOOK_SECRET", WEBHOOK_SECRET: "s" })).join("\n")).toMatch(
      /WEBHOOK_SECRET is one of the controller's own secrets/,
    );
    expect(errors(loadControllerConfig({ NETWORK_DEFAULT: "some" })).join("\n")).toMatch(/NETWORK_DEFAULT/);
    expect(ok(loadControllerConfig({ NETWORK_DEFAULT: "allowlist" })).warnings.join("\n")).toMatch(
      /NETWORK_DEFAULT=allowlist with neither MODEL_PROXY nor NETWORK_ALLOW_DEFAULT/,
    );
  });

  it("takes LOCAL_SANDBOX=none only as a loud, explicit opt-out", () => {
    expect(ok(loadControllerConfig({})).config.localSandbox).toBe("bwrap");
    const { config, warnings } = ok(loadControllerConfig({ LOCAL_SANDBOX: "none" }));
    expect(config.localSandbox).toBe("none");
    expect(warnings).toEqual([expect.stringMatching(/^LOCAL_SANDBOX=none: .*UNSANDBOXED.*\.env.*Use it only for trying agent-work out$/)]);
  });
});

describe("budgets", () => {
  it("reads dollar amounts and names a bad one", () => {
    const ok = loadControllerConfig({ BUDGET_JOB_USD: "2.50", BUDGET_REPO_MONTHLY_USD: "100", BUDGET_GLOBAL_HOURLY_USD: "0" });
    expect(ok.ok && ok.config.budgets).toEqual({ jobUsd: 2.5, repoMonthlyUsd: 100, globalHourlyUsd: 0 });
    const bad = loadControllerConfig({ BUDGET_JOB_USD: "$3", BUDGET_REPO_MONTHLY_USD: "-1" });
    expect(bad.ok).toBe(false);
    const errors = bad.ok ? [] : bad.errors;
    expect(errors.some((e) => e.startsWith('BUDGET_JOB_USD="$3"') && e.includes("US dollars"))).toBe(true);
    expect(errors.some((e) => e.startsWith('BUDGET_REPO_MONTHLY_USD="-1"'))).toBe(true);
  });
});

describe("BACKEND_ORDER", () => {
  it("reads the fallback order and names an unknown backend", () => {
    const ok = loadControllerConfig({ BACKEND_ORDER: "local, ssh,gce" });
    expect(ok.ok && ok.config.backendOrder).toEqual(["local", "ssh", "gce"]);
    const bad = loadControllerConfig({ BACKEND_ORDER: "local,cloud" });
    expect(!bad.ok && bad.errors.join("\n")).toContain('BACKEND_ORDER="local,cloud": unknown backend cloud');
  });
});

describe("LOCAL_BACKEND", () => {
  it("false turns the local backend off when another backend is on", () => {
    const loaded = loadControllerConfig({ LOCAL_BACKEND: "false", K8S_NAMESPACE: "agent-work", K8S_IMAGE: "ghcr.io/acme/agent-work-worker:1.0" });
    expect(loaded.ok && loaded.config.localBackend).toBe(false);
  });

  it("false with no other backend is refused, naming what to set", () => {
    const loaded = loadControllerConfig({ LOCAL_BACKEND: "false" });
    expect(loaded.ok).toBe(false);
    expect(!loaded.ok && loaded.errors.join("\n")).toMatch(/LOCAL_BACKEND.*no backend.*K8S_NAMESPACE, GCE_PROJECT or SSH_HOSTS_FILE/);
  });
});

describe("the cloudrun backend's configuration", () => {
  const on = {
    CLOUDRUN_PROJECT: "my-project-123",
    CLOUDRUN_IMAGE: "us-docker.pkg.dev/my-project-123/agent-work/worker:1",
    CLOUDRUN_SERVICE_ACCOUNT: "agent-work-worker@my-project-123.iam.gserviceaccount.com",
  };

  it("is on with a project, an image and a service account, with the documented defaults", () => {
    expect(ok(loadControllerConfig(on)).config.cloudrun).toEqual({
      project: "my-project-123",
      region: "us-central1",
      image: on.CLOUDRUN_IMAGE,
      serviceAccount: on.CLOUDRUN_SERVICE_ACCOUNT,
      cpu: "1",
      memory: "2Gi",
      maxJobs: 4,
      envLabel: "default",
      agentSandbox: "none",
    });
  });

  it("asks for the image and the service account a project needs, and refuses a CPU count Cloud Run does not offer", () => {
    expect(errors(loadControllerConfig({ CLOUDRUN_PROJECT: "my-project-123" })).join("\n")).toMatch(
      /CLOUDRUN_IMAGE[\s\S]*required with CLOUDRUN_PROJECT[\s\S]*CLOUDRUN_SERVICE_ACCOUNT/,
    );
    expect(errors(loadControllerConfig({ ...on, CLOUDRUN_CPU: "3" })).join("\n")).toMatch(/CLOUDRUN_CPU/);
  });

  it("is off unless CLOUDRUN_PROJECT is set, and says so when other CLOUDRUN_ variables are", () => {
    const { config, warnings } = ok(loadControllerConfig({ CLOUDRUN_REGION: "europe-west1" }));
    expect(config.cloudrun).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/^CLOUDRUN_REGION is set but CLOUDRUN_PROJECT is not/)]);
  });
});
