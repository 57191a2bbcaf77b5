/**
 * terraform/ parsed offline with @cdktf/hcl2json (no terraform binary or provider is needed), and
 * checked for the promises the docs make: nothing opens SSH to the internet and SSH from elsewhere
 * is denied, the worker account holds no role, the controller holds no primitive role and touches
 * only per-job secrets' IAM, every API is on before anything uses it, inputs are validated, NAT
 * covers every worker region, and the budget backstop defaults to $5.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { parse } from "@cdktf/hcl2json";
import { parse as parse_yaml } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { CONTROLLER_ENV_VARS } from "../../src/config/env.js";

const DIR = path.resolve(import.meta.dirname, "../../terraform");
type Block = Record<string, any>;
let tf: {
  resource: Record<string, Record<string, Block[]>>;
  data: Record<string, Record<string, Block[]>>;
  variable: Record<string, Block[]>;
  locals: Block[];
  output: Record<string, Block[]>;
  terraform: Block[];
};

beforeAll(async () => {
  const merged = { resource: {}, data: {}, variable: {}, locals: [], output: {}, terraform: [] } as typeof tf;
  for (const file of readdirSync(DIR).filter((f) => f.endsWith(".tf"))) {
    const parsed = await parse(file, readFileSync(path.join(DIR, file), "utf8"));
    for (const [type, byName] of Object.entries((parsed.resource ?? {}) as Record<string, Record<string, Block[]>>))
      merged.resource[type] = { ...merged.resource[type], ...byName };
    for (const [type, byName] of Object.entries((parsed.data ?? {}) as Record<string, Record<string, Block[]>>))
      merged.data[type] = { ...merged.data[type], ...byName };
    merged.terraform.push(...((parsed.terraform ?? []) as Block[]));
    Object.assign(merged.variable, parsed.variable ?? {});
    Object.assign(merged.output, parsed.output ?? {});
    merged.locals.push(...((parsed.locals ?? []) as Block[]));
  }
  tf = merged;
});

/** Every value an expression in a list can take: literals, locals, and variables' defaults. */
function resolve(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(resolve);
  if (typeof value !== "string") return [String(value)];
  let m = /^\$\{local\.([a-z_]+)\}$/.exec(value);
  if (m) return resolve(tf.locals.find((l) => m![1]! in l)?.[m[1]!]);
  m = /^\$\{var\.([a-z_]+)\}$/.exec(value);
  if (m) return resolve(tf.variable[m[1]!]?.[0]?.default ?? []);
  return [value];
}

/** The blocks of one resource type, each with its Terraform address name as `key`. */
const resources = (type: string): Block[] => Object.entries(tf.resource[type] ?? {}).map(([key, [block]]) => ({ ...block!, key }));

describe("terraform/, the controller as an option (controller.tf)", () => {
  const TEMPLATE = readFileSync(path.join(DIR, "controller-cloud-init.yaml"), "utf8");
  /** The cloud-init as templatefile() renders it, with example values. */
  const rendered = () =>
    TEMPLATE.replace(
      /\$\{(controller_image|caddy_image|domain|env_secret|ssh_key_secret)\}/g,
      (_, name: string) =>
        ({
          controller_image: `ghcr.io/acme/agent-work@sha256:${"a".repeat(64)}`,
          caddy_image: "caddy:2",
          domain: "agent-work.example.com",
          env_secret: "projects/p/secrets/agent-work-controller-env",
          ssh_key_secret: "projects/p/secrets/agent-work-controller-ssh-key",
        })[name]!,
    ).replaceAll("$${", "${");

  it("makes nothing unless controller_vm is set, and then needs an image pinned by digest and a domain", () => {
    expect(tf.variable.controller_vm![0]!.default).toBe(false);
    for (const type of ["google_compute_instance", "google_compute_address", "google_compute_firewall"]) {
      for (const r of resources(type).filter((r) => r.key.startsWith("controller"))) expect(r.count, `${type}.${r.key}`).toBe("${var.controller_vm ? 1 : 0}");
    }
    expect(resources("google_secret_manager_secret").find((r) => r.key === "controller")!.for_each).toBe("${local.controller_secrets}");
    expect(tf.locals.find((l) => "controller_secrets" in l)!.controller_secrets).toMatch(/^\$\{var\.controller_vm \? toset\(/);
    const vm = resources("google_compute_instance").find((r) => r.key === "controller")!;
    expect(JSON.stringify(vm.lifecycle)).toContain('var.controller_image != \\"\\" && var.controller_domain != \\"\\"');
    expect(JSON.stringify(tf.variable.controller_image![0]!.validation)).toContain("@sha256:[0-9a-f]{64}$");
  });

  it("runs the VM as the controller account, shielded, OS Login on, and puts no secret in its metadata", () => {
    const vm = resources("google_compute_instance").find((r) => r.key === "controller")!;
    expect(vm.service_account).toEqual([{ email: "${google_service_account.controller.email}", scopes: ["cloud-platform"] }]);
    expect(vm.shielded_instance_config).toEqual([{ enable_secure_boot: true, enable_vtpm: true, enable_integrity_monitoring: true }]);
    const metadata = vm.metadata as Record<string, string>;
    expect(metadata).toMatchObject({ "enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE" });
    // The template gets names and images, never a secret's value.
    const passed = [...metadata["user-data"]!.matchAll(/^\s*([a-z_]+)\s*=/gm)].map((m) => m[1]).sort();
    expect(passed).toEqual(["caddy_image", "controller_image", "domain", "env_secret", "ssh_key_secret"]);
    expect(metadata["user-data"]).toContain("controller-cloud-init.yaml");
  });

  it("lets the controller read only its own two secrets, which the VM fetches into memory at boot", () => {
    const binding = resources("google_secret_manager_secret_iam_member").find((r) => r.key === "controller_reads_own_secrets")!;
    expect(binding).toMatchObject({
      for_each: "${google_secret_manager_secret.controller}",
      role: "roles/secretmanager.secretAccessor",
      member: "serviceAccount:${google_service_account.controller.email}",
    });
    const cloudInit = parse_yaml(rendered());
    const files = Object.fromEntries((cloudInit.write_files as { path: string; content: string }[]).map((f) => [f.path, f.content]));
    const fetch = files["/etc/agent-work/fetch-secrets.sh"]!;
    expect(fetch).toContain("umask 077");
    expect(fetch).toMatch(/^fetch '[^']+' \/run\/agent-work\/controller\.env$/m);
    // The script is valid bash once rendered.
    execFileSync("bash", ["-n"], { input: fetch });
    const service = files["/etc/systemd/system/agent-work.service"]!;
    expect(service).toContain("--env-file /run/agent-work/controller.env");
    expect(service).toContain("-e LOCAL_BACKEND=false");
    expect(service).toContain(`ghcr.io/acme/agent-work@sha256:${"a".repeat(64)}`);
    expect(files["/etc/systemd/system/caddy.service"]).toContain("caddy reverse-proxy --from agent-work.example.com --to 127.0.0.1:3000");
    // Only /run (a tmpfs) holds the secrets; the data disk holds the store.
    expect(service).not.toMatch(/-v \/var\/lib\/agent-work\/[^ ]*\.env/);
  });
});

describe("terraform/", () => {
  it("declares the worker and controller accounts, the firewall, secrets, the budget and the image family", () => {
    expect(Object.keys(tf.resource)).toEqual(
      expect.arrayContaining([
        "google_service_account",
        "google_compute_firewall",
        "google_secret_manager_secret",
        "google_billing_budget",
        "google_project_iam_custom_role",
        "google_compute_router_nat",
      ]),
    );
    expect(
      resources("google_service_account")
        .map((a) => a.account_id)
        .sort(),
    ).toEqual(["agent-work-controller", "agent-work-worker"]);
    expect(tf.output.worker_image?.[0]?.value).toContain("/global/images/family/${var.image_family}");
    for (const [name, [v]] of Object.entries(tf.variable)) expect(String(v!.description).length, name).toBeGreaterThan(20);
  });

  it("never opens a firewall to 0.0.0.0/0 but the controller's HTTPS, and admits only SSH to the worker account", () => {
    const https = resources("google_compute_firewall").filter((r) => r.key === "controller_https");
    expect(https).toEqual([
      expect.objectContaining({
        count: "${var.controller_vm ? 1 : 0}",
        target_tags: ["agent-work-controller"],
        allow: [{ protocol: "tcp", ports: ["80", "443"] }],
      }),
    ]);
    expect(https[0]!.target_service_accounts).toBeUndefined();
    const rules = resources("google_compute_firewall").filter((r) => r.allow && r.key !== "controller_https");
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(rule.direction, rule.name).toBe("INGRESS");
      expect(rule.target_service_accounts, rule.name).toEqual(["${google_service_account.worker.email}"]);
      expect(rule.allow, rule.name).toEqual([{ protocol: "tcp", ports: ["22"] }]);
      const sources = resolve(rule.source_ranges ?? []);
      const fromVariable = /^\$\{var\.([a-z_]+)\}$/.exec(String(rule.source_ranges))?.[1];
      // A rule with no source would admit everyone: it must name sources, or not exist without them.
      if (sources.length === 0 && (rule.source_service_accounts ?? []).length === 0) {
        expect(rule.count, `${rule.name} exists only when its sources are given`).toBe(`\${length(var.${fromVariable}) > 0 ? 1 : 0}`);
      }
      for (const range of sources) expect(["0.0.0.0/0", "::/0"], rule.name).not.toContain(range);
    }
    // A rule fed by a variable is only as closed as the variable's validation.
    const cidrs = tf.variable.controller_cidrs![0]!;
    expect(cidrs.default).toEqual([]);
    expect(JSON.stringify(cidrs.validation)).toContain("0.0.0.0/0");
    expect(resolve(rules.find((r) => r.key === "worker_ssh_from_iap")!.source_ranges)).toEqual(["35.235.240.0/20"]);
  });

  it("denies SSH to workers from anywhere else, ahead of the default VPC's default-allow-ssh (0.0.0.0/0, priority 65534)", () => {
    const rules = resources("google_compute_firewall");
    const allows = rules.filter((r) => r.allow);
    const denies = rules.filter((r) => r.deny);
    expect(denies).toHaveLength(1);
    const [deny] = denies;
    expect(deny!.direction).toBe("INGRESS");
    expect(deny!.deny).toEqual([{ protocol: "tcp", ports: ["22"] }]);
    expect(resolve(deny!.source_ranges)).toEqual(["0.0.0.0/0"]);
    expect(deny!.count, "the deny rule is never optional").toBeUndefined();
    expect(deny!.target_service_accounts).toEqual(["${google_service_account.worker.email}"]);
    // Lower number wins: below 65534 beats default-allow-ssh; above every allow keeps the controller and IAP in.
    expect(deny!.priority).toBeLessThan(65534);
    for (const allow of allows) expect(allow.priority, allow.name).toBeLessThan(deny!.priority);
  });

  it("gives the worker account no role, anywhere", () => {
    const iam = Object.keys(tf.resource).filter((type) => /_iam_(member|binding|policy)$/.test(type));
    for (const type of iam) {
      for (const binding of resources(type)) {
        const members = [binding.member, ...(binding.members ?? []), binding.policy_data].filter(Boolean).map(String);
        for (const member of members) expect(member, `${type}.${binding.key}`).not.toMatch(/google_service_account\.worker\b/);
      }
    }
  });

  it("gives the controller custom roles with named permissions, no primitive role, and the worker account only to attach", () => {
    const roles = Object.keys(tf.resource)
      .filter((type) => /_iam_(member|binding)$/.test(type))
      .flatMap((type) => resources(type).map((b) => String(b.role)));
    for (const role of roles) expect(["roles/owner", "roles/editor", "roles/viewer"]).not.toContain(role);
    const projectRoles = resources("google_project_iam_member").map((b) => b.role);
    expect(projectRoles.sort()).toEqual(["${google_project_iam_custom_role.controller.name}", "${google_project_iam_custom_role.controller_job_secrets.name}"]);
    const permissions: string[] = resources("google_project_iam_custom_role").flatMap((r) => r.permissions);
    expect(permissions).toEqual(
      expect.arrayContaining([
        "compute.instances.create",
        "compute.instances.delete",
        "compute.instances.getGuestAttributes",
        "secretmanager.secrets.setIamPolicy",
      ]),
    );
    expect(permissions.filter((p) => p.includes("*"))).toEqual([]);
    expect(resources("google_service_account_iam_member")).toEqual([
      expect.objectContaining({
        service_account_id: "${google_service_account.worker.name}",
        role: "roles/iam.serviceAccountUser",
        member: "serviceAccount:${google_service_account.controller.email}",
      }),
    ]);
  });

  it("lets the controller delete secrets or change who reads them only on agent-work-job-* secrets (an IAM condition)", () => {
    const risky = ["secretmanager.secrets.setIamPolicy", "secretmanager.secrets.delete", "secretmanager.secrets.getIamPolicy", "secretmanager.versions.add"];
    const customRoles = resources("google_project_iam_custom_role");
    for (const role of customRoles) {
      const held = (role.permissions as string[]).filter((p) => risky.includes(p));
      if (held.length === 0) continue;
      // Every binding of a role holding a risky permission carries the name-prefix condition.
      const bindings = resources("google_project_iam_member").filter((b) => b.role === `\${google_project_iam_custom_role.${role.key}.name}`);
      expect(bindings.length, role.key).toBeGreaterThan(0);
      for (const binding of bindings) {
        const expression = String(binding.condition?.[0]?.expression);
        expect(expression, binding.key).toBe('resource.name.startsWith("${local.job_secret_prefix}")');
      }
    }
    expect(customRoles.flatMap((r) => r.permissions)).toEqual(expect.arrayContaining(risky));
    // The prefix is what src/backends/gce/gce-names.ts names a job's secret, under the project number.
    const prefix = String(tf.locals.find((l) => "job_secret_prefix" in l)!.job_secret_prefix);
    expect(prefix).toBe("projects/${data.google_project.this.number}/secrets/agent-work-job-");
    const names = readFileSync(path.resolve(DIR, "../src/backends/gce/gce-names.ts"), "utf8");
    expect(names).toContain("return `agent-work-job-${jobId}`;");
  });

  it("enables every API the resources use, and every resource waits for them", () => {
    const apis = resolve("${local.apis}");
    for (const api of ["compute", "secretmanager", "iap", "billingbudgets", "iam", "cloudresourcemanager", "monitoring"])
      expect(apis).toContain(`${api}.googleapis.com`);
    for (const [type, byName] of Object.entries({ ...tf.resource, ...Object.fromEntries(Object.entries(tf.data).map(([t, b]) => [`data.${t}`, b])) })) {
      if (type === "google_project_service") continue;
      for (const [name, [block]] of Object.entries(byName)) expect(block!.depends_on, `${type}.${name}`).toContain("${google_project_service.apis}");
    }
  });

  it("pins the Google provider to a range that includes the current major", () => {
    const google = tf.terraform.flatMap((t) => t.required_providers ?? []).find((p) => p.google)?.google;
    expect(google.source).toBe("hashicorp/google");
    expect(google.version).toBe(">= 6.0, < 8.0");
    // No lock file can be made offline (providers are downloaded to hash them); the README says so.
    expect(readFileSync(path.join(DIR, "README.md"), "utf8")).toMatch(/## Provider lock[\s\S]*terraform providers lock/);
  });

  it("refuses bad project ids, regions, billing accounts and fractional budgets before any call", () => {
    /** The RE2 pattern inside `can(regex("…", var.NAME))`, as a JS RegExp (these patterns mean the same in both). */
    const patternOf = (name: string): RegExp => {
      const condition = String(tf.variable[name]![0]!.validation[0].condition);
      const m = /regex\("((?:[^"\\]|\\.)*)", (?:var\.[a-z_]+|r)\)/.exec(condition);
      expect(m, `${name} has a regex validation`).not.toBeNull();
      return new RegExp(JSON.parse(`"${m![1]}"`));
    };
    const cases: Record<string, [string[], string[]]> = {
      project_id: [
        ["my-project-123", "agent-work-prod"],
        ["My Project", "my_project_1", "123456789012", "ab", "my-project-", "x".repeat(31)],
      ],
      region: [
        ["us-central1", "europe-west1", "asia-northeast3"],
        ["us-central1-a", "US-CENTRAL1", "central"],
      ],
      worker_regions: [["us-central1", "europe-west4"], ["us-central1-a"]],
      billing_account: [["012345-6789AB-CDEF01"], ["012345-6789ab-cdef01", "billingAccounts/012345-6789AB-CDEF01", "abc"]],
    };
    for (const [name, [good, bad]] of Object.entries(cases)) {
      const re = patternOf(name);
      for (const value of good) expect(re.test(value), `${name} = ${value}`).toBe(true);
      for (const value of bad) expect(re.test(value), `${name} = ${value}`).toBe(false);
      expect(String(tf.variable[name]![0]!.validation[0].error_message).length, name).toBeGreaterThan(30);
    }
    expect(String(tf.variable.billing_account![0]!.validation[0].condition)).toMatch(/^\$\{var\.billing_account == null \|\| /);
    expect(String(tf.variable.budget_usd![0]!.validation[0].condition)).toContain("floor(var.budget_usd) == var.budget_usd");
  });

  it("puts a Cloud NAT in every region the workers may start in", () => {
    expect(tf.variable.worker_regions![0]!.type).toBe("${list(string)}");
    const router = resources("google_compute_router")[0]!;
    expect(router.for_each).toBe("${toset(var.worker_regions)}");
    expect(router.region).toBe("${each.value}");
    const nat = resources("google_compute_router_nat")[0]!;
    expect(nat.for_each).toBe("${google_compute_router.nat}");
    expect(nat.region).toBe("${each.value.region}");
    // The default covers the regions of GCE_ZONES's default (src/config/env.ts).
    const zones = CONTROLLER_ENV_VARS.find((v) => v.name === "GCE_ZONES")!.default!.split(",");
    const regions = [...new Set(zones.map((z) => z.replace(/-[a-z]$/, "")))];
    expect(tf.variable.worker_regions![0]!.default).toEqual(expect.arrayContaining(regions));
  });

  it("makes only secrets the app reads, and tells the operator their names", () => {
    expect(tf.resource.google_secret_manager_secret!.app![0]!.for_each).toBe('${toset(["agent-work-model-key"])}');
    expect(tf.output.env![0]!.value).toContain(
      'AGENT_ENV_FROM_SECRET_MANAGER=ANTHROPIC_API_KEY=${google_secret_manager_secret.app["agent-work-model-key"].id}',
    );
    const readme = readFileSync(path.join(DIR, "README.md"), "utf8");
    expect(readme).not.toMatch(/agent-work-webhook-secret|agent-work-private-key/);
    expect(readme).toContain("gcloud secrets versions add agent-work-model-key");
  });

  it("alerts on a $5 budget by default", () => {
    expect(tf.variable.budget_usd![0]!.default).toBe(5);
    expect(resources("google_billing_budget")[0]!.amount[0].specified_amount[0].units).toBe("${tostring(var.budget_usd)}");
  });
});
