/**
 * terraform/ parsed offline with @cdktf/hcl2json (no terraform binary here), and checked for the
 * promises the docs make: nothing opens SSH to the internet, the worker account holds no role,
 * the controller holds no primitive role, the budget backstop defaults to $5.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "@cdktf/hcl2json";
import { beforeAll, describe, expect, it } from "vitest";

const DIR = path.resolve(import.meta.dirname, "../../terraform");
type Block = Record<string, any>;
let tf: { resource: Record<string, Record<string, Block[]>>; variable: Record<string, Block[]>; locals: Block[]; output: Record<string, Block[]> };

beforeAll(async () => {
  const merged = { resource: {}, variable: {}, locals: [], output: {} } as typeof tf;
  for (const file of readdirSync(DIR).filter((f) => f.endsWith(".tf"))) {
    const parsed = await parse(file, readFileSync(path.join(DIR, file), "utf8"));
    for (const [type, byName] of Object.entries((parsed.resource ?? {}) as Record<string, Record<string, Block[]>>)) merged.resource[type] = { ...merged.resource[type], ...byName };
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

describe("terraform/", () => {
  it("declares the worker and controller accounts, the firewall, secrets, the budget and the image family", () => {
    expect(Object.keys(tf.resource)).toEqual(
      expect.arrayContaining(["google_service_account", "google_compute_firewall", "google_secret_manager_secret", "google_billing_budget", "google_project_iam_custom_role", "google_compute_router_nat"]),
    );
    expect(resources("google_service_account").map((a) => a.account_id).sort()).toEqual(["agent-work-controller", "agent-work-worker"]);
    expect(tf.output.worker_image?.[0]?.value).toContain("/global/images/family/${var.image_family}");
    for (const [name, [v]] of Object.entries(tf.variable)) expect(String(v!.description).length, name).toBeGreaterThan(20);
  });

  it("never opens a firewall to 0.0.0.0/0, and admits only SSH to the worker account", () => {
    const rules = resources("google_compute_firewall");
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
    expect(JSON.stringify(cidrs.validation)).toContain('0.0.0.0/0');
    expect(resolve(rules.find((r) => r.key === "worker_ssh_from_iap")!.source_ranges)).toEqual(["35.235.240.0/20"]);
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

  it("gives the controller one custom role with named permissions, no primitive role, and the worker account only to attach", () => {
    const roles = Object.keys(tf.resource)
      .filter((type) => /_iam_(member|binding)$/.test(type))
      .flatMap((type) => resources(type).map((b) => String(b.role)));
    for (const role of roles) expect(["roles/owner", "roles/editor", "roles/viewer"]).not.toContain(role);
    const [projectRole] = resources("google_project_iam_member");
    expect(projectRole!.role).toBe("${google_project_iam_custom_role.controller.name}");
    const permissions: string[] = resources("google_project_iam_custom_role")[0]!.permissions;
    expect(permissions).toEqual(expect.arrayContaining(["compute.instances.create", "compute.instances.delete", "compute.instances.getGuestAttributes", "secretmanager.secrets.setIamPolicy"]));
    expect(permissions.filter((p) => p.includes("*"))).toEqual([]);
    expect(resources("google_service_account_iam_member")).toEqual([
      expect.objectContaining({ service_account_id: "${google_service_account.worker.name}", role: "roles/iam.serviceAccountUser", member: "serviceAccount:${google_service_account.controller.email}" }),
    ]);
  });

  it("alerts on a $5 budget by default", () => {
    expect(tf.variable.budget_usd![0]!.default).toBe(5);
    expect(resources("google_billing_budget")[0]!.amount[0].specified_amount[0].units).toBe("${tostring(var.budget_usd)}");
  });
});
