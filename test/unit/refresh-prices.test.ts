import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CloudCatalogClient } from "@google-cloud/billing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { estimate } from "../../src/cost/estimate.js";
import { bundledPriceTable as base, type PriceTable } from "../../src/cost/price-table.js";
import { refreshPriceTable, type CatalogSku, type CatalogSkuLister } from "../../src/cost/refresh-prices.js";
import { decoySkus, e2Skus, startFakeCloudBilling, type FakeCloudBilling, type FakeSku } from "../support/fake-cloud-billing.js";

const run = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const now = () => new Date("2026-08-02T09:30:00.123Z");

// Catalog rates in nanos of USD per vCPU-hour / GiB-hour; deliberately not the bundled table's.
const AMERICAS = { core: 22_500_000, ram: 3_015_000, spotCore: 6_540_000, spotRam: 876_000 };
const EMEA = { core: 24_000_000, ram: 3_200_000, spotCore: 7_100_000, spotRam: 950_000 };
const americasRegions = ["us-central1", "us-east1", "us-west1"];
const emeaRegions = ["europe-west1", "europe-north1"];

function catalog(): FakeSku[] {
  return [...decoySkus(americasRegions), ...e2Skus("Americas", americasRegions, AMERICAS), ...e2Skus("EMEA", emeaRegions, EMEA)];
}

const e2Types = Object.keys(base.machines).filter((t) => t.startsWith("e2-"));

describe("refreshing the price table from the Cloud Billing Catalog", () => {
  let fake: FakeCloudBilling;
  let client: CloudCatalogClient;
  beforeAll(async () => {
    fake = await startFakeCloudBilling({ skus: catalog() });
    client = new CloudCatalogClient(fake.clientOptions());
  });
  afterEach(() => {
    fake.setSkus(catalog());
    fake.requests.length = 0;
  });
  afterAll(async () => {
    await client.close();
    await fake.close();
  });

  it("prices a spot e2-small in us-central1 at exactly half a vCPU plus 2 GiB at the catalog's spot rates", async () => {
    const { table } = await refreshPriceTable(client, base, { now });

    const e2Small = table.machines["e2-small"]!["us-central1"]!;
    expect(e2Small.hourSpot).toBe((0.5 * AMERICAS.spotCore + 2 * AMERICAS.spotRam) / 1e9);
    expect(e2Small.hourSpot).toBe(0.005022);
    expect(e2Small.hour).toBe((0.5 * AMERICAS.core + 2 * AMERICAS.ram) / 1e9);
    expect(estimate({ machineType: "e2-small", region: "us-central1", spot: true, seconds: 600 }, table).usd).toBe((0.005022 * 600) / 3600);
    // The decoys (custom, commitment, n2, sole tenancy) cost far more: none of them leaked in.
    expect(table.machines["e2-standard-32"]!["us-east1"]!.hour).toBe((32 * AMERICAS.core + 128 * AMERICAS.ram) / 1e9);
    expect(table.machines["e2-highmem-2"]!["europe-west1"]!.hourSpot).toBe((2 * EMEA.spotCore + 16 * EMEA.spotRam) / 1e9);
    expect(table.machines["e2-highcpu-8"]!["europe-north1"]!.hour).toBe((8 * EMEA.core + 8 * EMEA.ram) / 1e9);
    expect(table.machines["e2-micro"]!["us-west1"]!.hour).toBe((0.25 * AMERICAS.core + 1 * AMERICAS.ram) / 1e9);
    expect(table.machines["e2-medium"]!["us-west1"]!.hourSpot).toBe((1 * AMERICAS.spotCore + 4 * AMERICAS.spotRam) / 1e9);
  });

  it("asks for the Compute Engine service's SKUs in USD, over REST", async () => {
    await refreshPriceTable(client, base, { now });

    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({
      method: "GET",
      path: "/v1/services/6F81-5844-456A/skus",
      query: { currencyCode: "USD", pageSize: "5000", $alt: "json;enum-encoding=int" },
    });
  });

  it("keeps the base table's shape, other families and disks, and names the catalog, the date and the base", async () => {
    const { table, notes } = await refreshPriceTable(client, base, { now });

    expect(Object.keys(table.machines).sort()).toEqual(Object.keys(base.machines).sort());
    for (const [type, regions] of Object.entries(base.machines)) {
      expect(Object.keys(table.machines[type]!).sort()).toEqual(Object.keys(regions).sort());
      if (!type.startsWith("e2-")) expect(table.machines[type]).toEqual(regions);
    }
    expect(table.disks).toEqual(base.disks);
    expect(table.source).toEqual({
      file: "Cloud Billing Catalog 2026-08-02 (e2) + gce-pricing-2026-07-30.yml",
      generated: "2026-08-02T09:30:00Z",
      url: "https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus",
      licence: "e2: Google Cloud list prices; the rest: Apache-2.0, Copyright 2022-2025 Nils Knieling",
      generatedBy: "src/cost/refresh-prices.ts",
      base: base.source,
    });
    expect(estimate({ machineType: "n2-standard-2", region: "us-central1", spot: false, seconds: 1 }, table).source).toBe(
      "GCE list prices from Cloud Billing Catalog 2026-08-02 (e2) + gce-pricing-2026-07-30.yml (generated 2026-08-02T09:30:00Z)",
    );
    expect(notes).toContainEqual(
      expect.stringMatching(/machine types of other families .* carried over from gce-pricing-2026-07-30\.yml unchanged; only e2 is refreshed/),
    );
  });

  it("counts what it recomputed and what it carried over, and leaves regions the catalog lacks as they were", async () => {
    const { table, updated, unchanged, notes } = await refreshPriceTable(client, base, { now });

    const covered = [...americasRegions, ...emeaRegions];
    let expectUpdated = 0;
    let all = 0;
    for (const [type, regions] of Object.entries(base.machines)) {
      for (const [region, price] of Object.entries(regions)) {
        const prices = (price.hour !== undefined ? 1 : 0) + (price.hourSpot !== undefined ? 1 : 0);
        all += prices;
        if (type.startsWith("e2-") && covered.includes(region)) expectUpdated += prices;
      }
    }
    expect(updated).toBe(expectUpdated);
    expect(updated).toBe(e2Types.length * covered.length * 2);
    expect(updated + unchanged).toBe(all);

    expect(table.machines["e2-small"]!["asia-east1"]).toEqual(base.machines["e2-small"]!["asia-east1"]);
    expect(notes).toContainEqual(expect.stringMatching(/^on-demand: the catalog has no e2 rates for .*asia-east1.*left at the base table's/));
    expect(notes).toContainEqual(expect.stringMatching(/^spot: the catalog has no e2 rates for .*asia-east1/));
  });

  it("follows nextPageToken through every page of SKUs", async () => {
    const paged = await startFakeCloudBilling({ skus: catalog(), maxPageSize: 3 });
    const pagedClient = new CloudCatalogClient(paged.clientOptions());
    try {
      const { table } = await refreshPriceTable(pagedClient, base, { now });

      const total = catalog().length;
      expect(paged.requests).toHaveLength(Math.ceil(total / 3));
      expect(paged.requests[0]!.query.pageToken).toBeUndefined();
      const tokens = paged.requests.slice(1).map((r) => r.query.pageToken);
      expect(tokens.every((t) => typeof t === "string" && t.length > 0)).toBe(true);
      expect(new Set(tokens).size).toBe(tokens.length);
      // The EMEA spot RAM SKU is the very last one listed, on the last page.
      expect(catalog().at(-1)!.description).toBe("Spot Preemptible E2 Instance Ram running in EMEA");
      expect(table.machines["e2-small"]!["europe-west1"]!.hourSpot).toBe((0.5 * EMEA.spotCore + 2 * EMEA.spotRam) / 1e9);
    } finally {
      await pagedClient.close();
      await paged.close();
    }
  });

  it("leaves a region as it was, and says so, when the catalog has its core rates but no RAM rates", async () => {
    fake.setSkus(catalog().filter((s) => !/E2 Instance Ram running in EMEA$/.test(s.description)));

    const { table, notes } = await refreshPriceTable(client, base, { now });

    for (const type of e2Types) {
      expect(table.machines[type]!["europe-west1"]).toEqual(base.machines[type]!["europe-west1"]);
    }
    expect(table.machines["e2-small"]!["us-central1"]!.hour).toBe((0.5 * AMERICAS.core + 2 * AMERICAS.ram) / 1e9);
    expect(notes).toContainEqual(
      'on-demand: the catalog has a core rate but no "E2 Instance Ram running in …" rate for europe-north1, europe-west1; their on-demand e2 prices are left at the base table\'s.',
    );
    expect(notes).toContainEqual(
      'spot: the catalog has a core rate but no "Spot Preemptible E2 Instance Ram running in …" rate for europe-north1, europe-west1; their spot e2 prices are left at the base table\'s.',
    );
  });

  it("still refreshes a region's on-demand prices when only its spot RAM rate is missing", async () => {
    fake.setSkus(catalog().filter((s) => s.description !== "Spot Preemptible E2 Instance Ram running in EMEA"));

    const { table, notes } = await refreshPriceTable(client, base, { now });

    const price = table.machines["e2-standard-2"]!["europe-west1"]!;
    expect(price.hour).toBe((2 * EMEA.core + 8 * EMEA.ram) / 1e9);
    expect(price.hourSpot).toBe(base.machines["e2-standard-2"]!["europe-west1"]!.hourSpot);
    expect(notes).toContainEqual(expect.stringMatching(/^spot: .*no "Spot Preemptible E2 Instance Ram running in …" rate for europe-north1, europe-west1/));
  });

  it("guesses neither price when two SKUs price the same region differently", async () => {
    fake.setSkus([...catalog(), ...e2Skus("Iowa", ["us-central1"], { ...AMERICAS, core: AMERICAS.core + 1_000_000 }).slice(0, 1)]);

    const { table, notes } = await refreshPriceTable(client, base, { now });

    expect(table.machines["e2-small"]!["us-central1"]!.hour).toBe(base.machines["e2-small"]!["us-central1"]!.hour);
    expect(table.machines["e2-small"]!["us-central1"]!.hourSpot).toBe((0.5 * AMERICAS.spotCore + 2 * AMERICAS.spotRam) / 1e9);
    expect(table.machines["e2-small"]!["us-east1"]!.hour).toBe((0.5 * AMERICAS.core + 2 * AMERICAS.ram) / 1e9);
    expect(notes).toContainEqual(
      'Two "E2 Instance Core running in …" SKUs price us-central1 differently (0.0225 and 0.0235 USD); its on-demand e2 prices are left at the base table\'s.',
    );
  });

  it("refuses, naming the service, when the catalog lists no SKUs", async () => {
    fake.setSkus([]);
    await expect(refreshPriceTable(client, base, { now })).rejects.toThrow(/listed no SKUs for services\/6F81-5844-456A \(Compute Engine\).*not changed/);
  });

  it("refuses, naming the SKUs it looked for, when none of them is in the catalog", async () => {
    fake.setSkus(decoySkus(americasRegions));
    await expect(refreshPriceTable(client, base, { now })).rejects.toThrow(
      /listed 6 SKUs .* but none described as "E2 Instance Core running in …", "E2 Instance Ram running in …", "Spot Preemptible E2 Instance Core running in …", "Spot Preemptible E2 Instance Ram running in …"/,
    );
  });

  it("refuses with the API's own words and advice when the catalog answers with an error", async () => {
    fake.failNext(403, "Cloud Billing API has not been used in project 123 before or it is disabled.");
    await expect(refreshPriceTable(client, base, { now })).rejects.toThrow(
      /Could not list the SKUs of services\/6F81-5844-456A .*Cloud Billing API has not been used in project 123.*cloudbilling\.googleapis\.com\) is enabled/,
    );
  });

  it("skips a SKU priced in a unit it does not expect, rather than misreading it", async () => {
    const skus = catalog().map((s) =>
      s.description === "E2 Instance Ram running in Americas"
        ? {
            ...s,
            pricingInfo: [
              { pricingExpression: { usageUnit: "GiBy.mo", tieredRates: [{ startUsageAmount: 0, unitPrice: { currencyCode: "USD", units: "2", nanos: 0 } }] } },
            ],
          }
        : s,
    );
    fake.setSkus(skus);

    const { table, notes } = await refreshPriceTable(client, base, { now });

    expect(table.machines["e2-small"]!["us-central1"]!.hour).toBe(base.machines["e2-small"]!["us-central1"]!.hour);
    expect(notes).toContainEqual(expect.stringMatching(/Skipped SKU .* "E2 Instance Ram running in Americas": priced per GiBy\.mo, expected GiBy\.h/));
  });
});

describe("the e2 shapes, checked against the bundled table", () => {
  /**
   * The rates the bundled (YAML-era) table implies, solved per region from two of its e2 types:
   * highmem-2 − highcpu-2 is 14 GiB, so the RAM rate is their difference / 14, the core rate the rest.
   */
  function impliedRates(table: PriceTable, region: string, field: "hour" | "hourSpot"): { core: number; ram: number } {
    const highcpu = table.machines["e2-highcpu-2"]![region]![field]!;
    const highmem = table.machines["e2-highmem-2"]![region]![field]!;
    const ram = (highmem - highcpu) / 14;
    return { core: Math.round(((highcpu - 2 * ram) / 2) * 1e9), ram: Math.round(ram * 1e9) };
  }

  it("reproduces every e2 price of the bundled table from the core and RAM rates it was built with", async () => {
    // Regions with the same four rates share SKUs, as "running in Americas" does in the real catalog.
    const byRates = new Map<string, string[]>();
    for (const region of Object.keys(base.machines["e2-highcpu-2"]!)) {
      const onDemand = impliedRates(base, region, "hour");
      const spot = impliedRates(base, region, "hourSpot");
      const key = JSON.stringify({ core: onDemand.core, ram: onDemand.ram, spotCore: spot.core, spotRam: spot.ram });
      byRates.set(key, [...(byRates.get(key) ?? []), region]);
    }
    const skus = [...byRates].flatMap(([key, regions], i) => e2Skus(`Zone ${i}`, regions, JSON.parse(key)));
    expect(byRates.size).toBeLessThan(Object.keys(base.machines["e2-highcpu-2"]!).length);
    // Any object with listSkusAsync will do; this one hands over the SKUs as the client would.
    const inMemory: CatalogSkuLister = {
      async *listSkusAsync() {
        yield* skus as CatalogSku[];
      },
    };

    const { table, updated, notes } = await refreshPriceTable(inMemory, base, { now });

    // Shared-core types included: e2-micro 0.25 vCPU + 1 GiB, e2-small 0.5 + 2, e2-medium 1 + 4.
    for (const type of e2Types) {
      for (const [region, price] of Object.entries(base.machines[type]!)) {
        const refreshed = table.machines[type]![region]!;
        expect(refreshed.hour, `${type} in ${region}`).toBeCloseTo(price.hour!, 12);
        expect(refreshed.hourSpot, `${type} spot in ${region}`).toBeCloseTo(price.hourSpot!, 12);
      }
    }
    // Closer than close: the same doubles the YAML's decimals parse to.
    expect(table.machines).toEqual(base.machines);
    expect(updated).toBe(e2Types.reduce((n, t) => n + 2 * Object.keys(base.machines[t]!).length, 0));
    expect(notes.filter((n) => /left at the base/.test(n))).toEqual([]);
  });
});

describe("scripts/refresh-prices.ts", () => {
  let fake: FakeCloudBilling;
  let dir: string;
  beforeAll(async () => {
    fake = await startFakeCloudBilling({ skus: catalog(), maxPageSize: 10 });
    dir = mkdtempSync(join(tmpdir(), "agent-work-refresh-prices-"));
  });
  afterEach(() => {
    fake.requests.length = 0;
  });
  afterAll(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const script = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, ["--import", "tsx", "scripts/refresh-prices.ts", ...args], {
      cwd: repoRoot,
      env: { ...process.env, CLOUD_BILLING_API_KEY: "", ...env },
    });

  it("writes a refreshed table that estimate() prices jobs with, sending the API key", async () => {
    const out = join(dir, "prices.json");

    const { stdout } = await script([out, "--api-endpoint", fake.url], { CLOUD_BILLING_API_KEY: "test-api-key" });

    const table = JSON.parse(readFileSync(out, "utf8")) as PriceTable;
    const e = estimate({ machineType: "e2-small", region: "us-central1", spot: true, seconds: 600 }, table);
    expect(e.rateUsdPerHour).toBe((0.5 * AMERICAS.spotCore + 2 * AMERICAS.spotRam) / 1e9);
    expect(e.usd).toBe((e.rateUsdPerHour * 600) / 3600);
    expect(e.source).toMatch(/^GCE list prices from Cloud Billing Catalog \d{4}-\d{2}-\d{2} \(e2\) \+ gce-pricing-2026-07-30\.yml/);
    expect(estimate({ machineType: "n2-standard-2", region: "us-central1", spot: false, seconds: 3600 }, table).usd).toBe(
      base.machines["n2-standard-2"]!["us-central1"]!.hour,
    );

    expect(fake.requests.length).toBe(Math.ceil(catalog().length / 10));
    expect(fake.requests.every((r) => r.headers["x-goog-api-key"] === "test-api-key")).toBe(true);
    expect(stdout).toContain(`Wrote ${out}`);
    expect(stdout).toMatch(/\d+ prices recomputed from catalog rates, \d+ carried over as they were/);
    expect(stdout).toMatch(/prices moved; the largest:/);
    expect(stdout).toContain("Notes:");
  });

  it("sends no credentials to a plain-http endpoint when no API key is set", async () => {
    const out = join(dir, "no-key.json");
    await script([out, "--api-endpoint", fake.url]);
    expect(fake.requests.length).toBeGreaterThan(0);
    for (const r of fake.requests) {
      expect(r.headers["x-goog-api-key"]).toBeUndefined();
      expect(r.headers.authorization).toBeUndefined();
    }
    expect(statSync(out).size).toBeGreaterThan(100_000);
  });

  it("refreshes the table given with --base, keeping that table's source as its base", async () => {
    const small: PriceTable = {
      source: { file: "hand-made.json", generated: "yesterday", url: "file:hand-made.json", licence: "CC0", generatedBy: "a test" },
      machines: {
        "e2-small": { "us-central1": { hour: 1, hourSpot: 0.5 } },
        "n2-standard-2": { "us-central1": { hour: 2 } },
      },
      disks: { "pd-balanced": { "us-central1": 0.1 }, "pd-ssd": {}, "pd-standard": {} },
    };
    const basePath = join(dir, "hand-made.json");
    writeFileSync(basePath, JSON.stringify(small));
    const out = join(dir, "from-hand-made.json");

    const { stdout } = await script([out, "--base", basePath, "--api-endpoint", fake.url]);

    const table = JSON.parse(readFileSync(out, "utf8")) as PriceTable & { source: { base: PriceTable["source"] } };
    expect(table.machines).toEqual({
      "e2-small": { "us-central1": { hour: (0.5 * AMERICAS.core + 2 * AMERICAS.ram) / 1e9, hourSpot: (0.5 * AMERICAS.spotCore + 2 * AMERICAS.spotRam) / 1e9 } },
      "n2-standard-2": { "us-central1": { hour: 2 } },
    });
    expect(table.disks).toEqual(small.disks);
    expect(table.source.base).toEqual(small.source);
    expect(table.source.file).toMatch(/\(e2\) \+ hand-made\.json$/);
    expect(stdout).toContain("2 prices recomputed from catalog rates, 1 carried over as they were");
  });

  it("will not overwrite the bundled table without --in-place", async () => {
    const bundled = join(repoRoot, "src/cost/gce-prices.json");
    const before = readFileSync(bundled);

    const failed = await script([bundled, "--api-endpoint", fake.url]).catch((err: { code: number; stderr: string }) => err);

    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toMatch(/is the bundled price table; pass --in-place to overwrite it on purpose/);
    expect(fake.requests).toEqual([]);
    expect(readFileSync(bundled).equals(before)).toBe(true);
  });

  it("exits 1 with the reason when the catalog fails", async () => {
    fake.failNext(503, "The service is currently unavailable.");
    const failed = await script([join(dir, "never.json"), "--api-endpoint", fake.url]).catch((err: { code: number; stderr: string }) => err);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toMatch(/Could not list the SKUs of services\/6F81-5844-456A .*currently unavailable/);
  });
});
