/**
 * Validates Kubernetes objects against the Kubernetes OpenAPI schema, offline: the schema as
 * @kubernetes/client-node carries it (its models are generated from Kubernetes' OpenAPI spec, the
 * version named at the top of each model file). Like `kubeconform -strict` (not on this machine):
 *
 * - every field must be one the schema defines for that object (a misspelt or misplaced field is
 *   an error, as with `kubectl apply --validate=strict`);
 * - every value must have the field's type (string, boolean, integer within int32/int64, number,
 *   int-or-string, RFC 3339 date, base64 bytes, list, map, nested object);
 * - every field the schema requires must be there (read from the models' declarations, where a
 *   required field is the one without `?`);
 * - `apiVersion` must be the API group and version that serve the kind.
 *
 * What it cannot check: enumerations (the spec states most of them only in prose) and the
 * server-side validation rules (name formats, cross-field rules), which only an API server runs.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import * as k8s from "@kubernetes/client-node";

const MODELS = path.resolve(import.meta.dirname, "../../node_modules/@kubernetes/client-node/dist/gen/models");

/** The API group/version that serves each kind these tests meet; another kind must be added here. */
const API_VERSION: Record<string, string> = {
  Namespace: "v1",
  ServiceAccount: "v1",
  Service: "v1",
  ConfigMap: "v1",
  Secret: "v1",
  ResourceQuota: "v1",
  Pod: "v1",
  Deployment: "apps/v1",
  Job: "batch/v1",
  Role: "rbac.authorization.k8s.io/v1",
  RoleBinding: "rbac.authorization.k8s.io/v1",
  NetworkPolicy: "networking.k8s.io/v1",
  Ingress: "networking.k8s.io/v1",
  PodDisruptionBudget: "policy/v1",
  RuntimeClass: "node.k8s.io/v1",
};

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

type Model = { getAttributeTypeMap(): Attribute[] };

/** The version of the Kubernetes OpenAPI spec the models were generated from ("v1.34.0"). */
export function schemaVersion(): string {
  return /OpenAPI spec version: (\S+)/.exec(readFileSync(path.join(MODELS, "V1Pod.d.ts"), "utf8"))?.[1] ?? "unknown";
}

const requiredCache = new Map<string, Set<string>>();
function requiredFields(type: string): Set<string> {
  let found = requiredCache.get(type);
  if (!found) {
    const declaration = readFileSync(path.join(MODELS, `${type}.d.ts`), "utf8");
    found = new Set([...declaration.matchAll(/^ {4}'([^']+)': /gm)].map((m) => m[1]!));
    requiredCache.set(type, found);
  }
  return found;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "a list" : typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value)}`;
}

function checkValue(value: unknown, type: string, format: string, at: string, errors: string[]): void {
  // null is what an absent optional field reads as in YAML (`field:` or `~`); the server drops it.
  if (value === null || value === undefined) return;
  const list = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (list) {
    if (!Array.isArray(value)) return void errors.push(`${at}: expected a list, found ${describe(value)}`);
    value.forEach((item, i) => checkValue(item, list[1]!, format, `${at}[${i}]`, errors));
  } else if (map) {
    if (typeof value !== "object" || Array.isArray(value)) return void errors.push(`${at}: expected a map, found ${describe(value)}`);
    for (const [key, item] of Object.entries(value)) checkValue(item, map[1]!, format, `${at}.${key}`, errors);
  } else if (type === "string") {
    if (typeof value !== "string") return void errors.push(`${at}: expected a string, found ${describe(value)}`);
    if (format === "byte" && !BASE64.test(value.replace(/\s/g, ""))) errors.push(`${at}: expected base64 data`);
    if (format.startsWith("date-time") && !RFC3339.test(value)) errors.push(`${at}: expected an RFC 3339 time, found ${JSON.stringify(value)}`);
  } else if (type === "Date") {
    if (!(value instanceof Date) && !(typeof value === "string" && RFC3339.test(value)))
      errors.push(`${at}: expected an RFC 3339 time, found ${describe(value)}`);
  } else if (type === "boolean") {
    if (typeof value !== "boolean") errors.push(`${at}: expected true or false, found ${describe(value)}`);
  } else if (type === "number") {
    if (typeof value !== "number" || !Number.isFinite(value)) return void errors.push(`${at}: expected a number, found ${describe(value)}`);
    if ((format === "int32" || format === "int64") && !Number.isInteger(value)) errors.push(`${at}: expected a whole number, found ${value}`);
    if (format === "int32" && (value < -(2 ** 31) || value >= 2 ** 31)) errors.push(`${at}: ${value} does not fit in int32`);
  } else if (type === "IntOrString") {
    if (!(typeof value === "string" || (typeof value === "number" && Number.isInteger(value))))
      errors.push(`${at}: expected a whole number or a string, found ${describe(value)}`);
  } else if (type === "any") {
    // Free-form (e.g. a CRD's schema): anything goes.
  } else {
    checkObject(value, type, at, errors);
  }
}

function checkObject(value: unknown, type: string, at: string, errors: string[]): void {
  const model = (k8s as unknown as Record<string, Model | undefined>)[type];
  if (!model || typeof model.getAttributeTypeMap !== "function") throw new Error(`no model ${type} in @kubernetes/client-node`);
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return void errors.push(`${at}: expected an object (${type}), found ${describe(value)}`);
  const attributes = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a]));
  for (const [key, item] of Object.entries(value)) {
    const attribute = attributes.get(key);
    if (!attribute) {
      errors.push(`${at}.${key}: no such field in ${type} (fields: ${[...attributes.keys()].join(", ")})`);
      continue;
    }
    checkValue(item, attribute.type, attribute.format, `${at}.${key}`, errors);
  }
  for (const name of requiredFields(type)) {
    const attribute = model.getAttributeTypeMap().find((a) => a.name === name)!;
    const present = (value as Record<string, unknown>)[attribute.baseName];
    if (present === undefined || present === null) errors.push(`${at}.${attribute.baseName}: required in ${type}, missing`);
  }
}

/** The schema errors of one object (empty when it is valid), each with the path of the bad field. */
export function validateK8sObject(object: Record<string, unknown>): string[] {
  const kind = object.kind;
  const name = `${String(kind)}/${String((object.metadata as { name?: string } | undefined)?.name)}`;
  if (typeof kind !== "string" || !API_VERSION[kind])
    return [`${name}: kind ${JSON.stringify(kind)} is not one these tests know (add it to API_VERSION in test/support/k8s-openapi.ts)`];
  if (object.apiVersion !== API_VERSION[kind])
    return [`${name}: apiVersion ${JSON.stringify(object.apiVersion)}, but ${kind} is served as ${API_VERSION[kind]}`];
  const version = API_VERSION[kind]!.split("/").at(-1)!;
  const errors: string[] = [];
  checkObject(object, `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`, name, errors);
  return errors;
}
