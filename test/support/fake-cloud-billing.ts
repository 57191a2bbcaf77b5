/**
 * The Cloud Billing Catalog API (v1), faked as an HTTP server on 127.0.0.1 for the real
 * `CloudCatalogClient` pointed at it with `fake.clientOptions()` (REST fallback, no credentials),
 * or for a process given `fake.url`.
 *
 * It answers what the client sends in fallback mode: `GET /v1/services` and
 * `GET /v1/services/{id}/skus?currencyCode=…&pageSize=…&pageToken=…&$alt=json;enum-encoding=int`,
 * with JSON as the real API writes it (int64 `units` as strings, numeric enums), pages capped at
 * `maxPageSize` and chained by an opaque `nextPageToken`. Every request is recorded with its query
 * and headers; `failNext` makes the next requests answer with a Google error body.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThroughClient } from "google-auth-library";
import type { CloudCatalogClient } from "@google-cloud/billing";

export const COMPUTE_ENGINE_ID = "6F81-5844-456A";

export interface RecordedBillingRequest {
  method: string;
  /** Path without the query string, e.g. `/v1/services/6F81-5844-456A/skus`. */
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
}

/** A SKU as the API writes it in JSON. */
export type FakeSku = Record<string, unknown> & { description: string };

export interface FakeCloudBilling {
  url: string;
  port: number;
  clientOptions(): NonNullable<ConstructorParameters<typeof CloudCatalogClient>[0]>;
  requests: RecordedBillingRequest[];
  /** Replaces the SKUs of one service (Compute Engine unless named). */
  setSkus(skus: FakeSku[], serviceId?: string): void;
  /** The next `times` requests answer `status` with a Google error body. */
  failNext(status: number, message: string, times?: number): void;
  close(): Promise<void>;
}

const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

export async function startFakeCloudBilling(opts: { skus?: FakeSku[]; maxPageSize?: number } = {}): Promise<FakeCloudBilling> {
  const maxPageSize = opts.maxPageSize ?? 5000;
  const services = new Map<string, FakeSku[]>([[COMPUTE_ENGINE_ID, opts.skus ?? []]]);
  const requests: RecordedBillingRequest[] = [];
  let failures: { status: number; message: string; times: number } | undefined;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    requests.push({ method: req.method ?? "", path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers });
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json; charset=UTF-8" });
      res.end(JSON.stringify(body));
    };
    const error = (status: number, message: string) => reply(status, { error: { code: status, message, status: STATUS_NAMES[status] ?? "UNKNOWN" } });

    if (failures && failures.times > 0) {
      failures.times--;
      return error(failures.status, failures.message);
    }
    if (req.method !== "GET") return error(404, `No ${req.method} route ${url.pathname}`);

    if (url.pathname === "/v1/services") {
      return reply(200, {
        services: [...services.keys()].map((id) => ({
          name: `services/${id}`,
          serviceId: id,
          displayName: id === COMPUTE_ENGINE_ID ? "Compute Engine" : id,
          businessEntityName: "businessEntities/GCP",
        })),
      });
    }
    const m = /^\/v1\/services\/([^/]+)\/skus$/.exec(url.pathname);
    if (!m) return error(404, `No route ${url.pathname}`);
    const skus = services.get(decodeURIComponent(m[1]!));
    if (!skus) return error(404, `Service ${m[1]} not found.`);
    const currency = url.searchParams.get("currencyCode");
    if (currency && currency !== "USD") return error(400, `The fake only prices in USD, not ${currency}.`);

    const asked = Number(url.searchParams.get("pageSize") ?? maxPageSize);
    const pageSize = Math.min(asked > 0 ? asked : maxPageSize, maxPageSize);
    const token = url.searchParams.get("pageToken");
    const start = token ? decodeToken(token) : 0;
    if (start === undefined || start > skus.length) return error(400, `Invalid page token ${token}.`);
    const page = skus.slice(start, start + pageSize);
    const next = start + pageSize < skus.length ? encodeToken(start + pageSize) : "";
    // The real API sends an empty nextPageToken on the last page.
    return reply(200, { skus: page, nextPageToken: next });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    clientOptions: () => ({
      apiEndpoint: "127.0.0.1",
      port,
      protocol: "http",
      fallback: true,
      // google-gax bundles its own copy of google-auth-library: the same class at run time, another type to tsc.
      authClient: new PassThroughClient() as unknown as NonNullable<ConstructorParameters<typeof CloudCatalogClient>[0]>["authClient"],
    }),
    requests,
    setSkus(skus, serviceId = COMPUTE_ENGINE_ID) {
      services.set(serviceId, skus);
    },
    failNext(status, message, times = 1) {
      failures = { status, message, times };
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

function encodeToken(offset: number): string {
  return Buffer.from(`offset:${offset}`).toString("base64url");
}

function decodeToken(token: string): number | undefined {
  const m = /^offset:(\d+)$/.exec(Buffer.from(token, "base64url").toString());
  return m ? Number(m[1]) : undefined;
}

let skuCounter = 0;

/**
 * A Compute Engine SKU shaped like the catalog's, priced at `nanos` (plus whole `units`) USD per
 * `usageUnit` in one tier starting at 0 unless `tiers` is given.
 */
export function computeSku(opts: {
  description: string;
  regions: string[];
  nanos: number;
  units?: number;
  resourceGroup?: string;
  usageType?: string;
  usageUnit?: string;
  currencyCode?: string;
  tiers?: { startUsageAmount: number; units?: number; nanos: number }[];
}): FakeSku {
  const id = `FAKE-${String(++skuCounter).padStart(4, "0")}-${(opts.nanos % 10000).toString().padStart(4, "0")}`;
  const spot = opts.description.startsWith("Spot Preemptible ");
  const ram = / Ram /.test(opts.description);
  const usageUnit = opts.usageUnit ?? (ram ? "GiBy.h" : "h");
  const currencyCode = opts.currencyCode ?? "USD";
  const tiers = opts.tiers ?? [{ startUsageAmount: 0, units: opts.units ?? 0, nanos: opts.nanos }];
  return {
    name: `services/${COMPUTE_ENGINE_ID}/skus/${id}`,
    skuId: id,
    description: opts.description,
    category: {
      serviceDisplayName: "Compute Engine",
      resourceFamily: "Compute",
      resourceGroup: opts.resourceGroup ?? (ram ? "RAM" : "CPU"),
      usageType: opts.usageType ?? (spot ? "Preemptible" : "OnDemand"),
    },
    serviceRegions: opts.regions,
    pricingInfo: [
      {
        summary: "",
        pricingExpression: {
          usageUnit,
          usageUnitDescription: usageUnit === "GiBy.h" ? "gibibyte hour" : "hour",
          baseUnit: usageUnit === "GiBy.h" ? "By.s" : "s",
          baseUnitDescription: usageUnit === "GiBy.h" ? "byte second" : "second",
          baseUnitConversionFactor: usageUnit === "GiBy.h" ? 3865470566400 : 3600,
          displayQuantity: 1,
          tieredRates: tiers.map((t) => ({
            startUsageAmount: t.startUsageAmount,
            // int64 on the wire as a string, as the real API writes it.
            unitPrice: { currencyCode, units: String(t.units ?? 0), nanos: t.nanos },
          })),
        },
        // Numeric enums, as asked by `$alt=json;enum-encoding=int`: ACCOUNT, DAILY.
        aggregationInfo: { aggregationLevel: 1, aggregationInterval: 1, aggregationCount: 1 },
        currencyConversionRate: 1,
        effectiveTime: "2026-07-30T05:00:00.000Z",
      },
    ],
    serviceProviderName: "Google",
    // REGIONAL
    geoTaxonomy: { type: 2, regions: opts.regions },
  };
}

/**
 * The four e2 SKUs (core and RAM, on-demand and spot) for regions priced alike, named as the
 * catalog names them ("E2 Instance Core running in Americas", "Spot Preemptible E2 Instance Ram
 * running in …").
 */
export function e2Skus(location: string, regions: string[], nanos: { core: number; ram: number; spotCore: number; spotRam: number }): FakeSku[] {
  return [
    computeSku({ description: `E2 Instance Core running in ${location}`, regions, nanos: nanos.core }),
    computeSku({ description: `E2 Instance Ram running in ${location}`, regions, nanos: nanos.ram }),
    computeSku({ description: `Spot Preemptible E2 Instance Core running in ${location}`, regions, nanos: nanos.spotCore }),
    computeSku({ description: `Spot Preemptible E2 Instance Ram running in ${location}`, regions, nanos: nanos.spotRam }),
  ];
}

/** SKUs a careless matcher would take for e2 core/RAM rates: each costs far more, to be noticed. */
export function decoySkus(regions: string[]): FakeSku[] {
  return [
    computeSku({ description: "E2 Custom Instance Core running in Americas", regions, nanos: 999_000_000 }),
    computeSku({ description: "Commitment v1: E2 Cpu in Americas for 1 Year", regions, nanos: 888_000_000, usageType: "Commit1Yr" }),
    computeSku({ description: "N2 Instance Core running in Americas", regions, nanos: 777_000_000 }),
    computeSku({ description: "Spot Preemptible N2 Instance Ram running in Americas", regions, nanos: 666_000_000 }),
    computeSku({ description: "E2 Sole Tenancy Instance Ram running in Americas", regions, nanos: 555_000_000 }),
    computeSku({ description: "Balanced PD Capacity in Iowa", regions, nanos: 100_000_000, resourceGroup: "SSD", usageUnit: "GiBy.mo" }),
  ];
}
