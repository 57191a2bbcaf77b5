import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { costOf, priceJob } from "../../src/cost/price-job.js";
import { estimate, formatUsd } from "../../src/cost/estimate.js";
import { formatDuration } from "../../src/jobs/format-duration.js";
import { bundledPriceTable as table } from "../../src/cost/price-table.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
// The generator's default source; it lives next to the checkout, not in it (138k lines).
const yamlPath = resolve(repoRoot, "../shared/data/gce-pricing-2026-07-30.yml");

interface YamlCost {
  hour?: number;
  hour_spot?: number;
  month?: number;
}
interface PricingYaml {
  about: { generated: string; url: string };
  compute: {
    instance: Record<string, { cost: Record<string, YamlCost> }>;
    storage: Record<string, { type?: string; cost: Record<string, YamlCost> }>;
  };
}

describe.skipIf(!existsSync(yamlPath))("the bundled price table, checked against its source YAML", () => {
  let source: PricingYaml;
  beforeAll(() => {
    source = parse(readFileSync(yamlPath, "utf8")) as PricingYaml;
  });
  const yamlCost = (type: string, region: string): YamlCost => {
    const cost = source.compute.instance[type]?.cost[region];
    if (!cost) throw new Error(`test setup: ${type} in ${region} is not in the YAML`);
    return cost;
  };

  it("prices 600 s of a spot e2-small in us-central1 at exactly the YAML's hour_spot × 600/3600", () => {
    const hourSpot = yamlCost("e2-small", "us-central1").hour_spot!;
    expect(hourSpot).toBe(0.010053);

    const result = estimate({ machineType: "e2-small", region: "us-central1", spot: true, seconds: 600 });

    expect(result.usd).toBe((hourSpot * 600) / 3600);
    expect(result.usd).toBeCloseTo(0.0016755, 12);
    expect(result.rateUsdPerHour).toBe(hourSpot);
    expect(result.breakdown).toEqual({ compute: result.usd, disk: 0 });
    expect(formatUsd(result.usd)).toBe("$0.0017");
  });

  it("prices an on-demand e2-micro in us-central1 at the YAML's hour", () => {
    const hour = yamlCost("e2-micro", "us-central1").hour!;
    expect(hour).toBe(0.0083764275);

    const oneDay = estimate({ machineType: "e2-micro", region: "us-central1", spot: false, seconds: 24 * 3600 });

    expect(oneDay.rateUsdPerHour).toBe(hour);
    expect(oneDay.usd).toBe((hour * 24 * 3600) / 3600);
    expect(formatUsd(oneDay.usd)).toBe("$0.20");
  });

  it("carries every machine price over from the YAML unchanged", () => {
    let checked = 0;
    for (const [type, regions] of Object.entries(table.machines)) {
      for (const [region, price] of Object.entries(regions)) {
        const cost = yamlCost(type, region);
        expect({ type, region, hour: price.hour, hourSpot: price.hourSpot }).toEqual({
          type,
          region,
          hour: cost.hour,
          hourSpot: cost.hour_spot,
        });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });

  it("carries the pd-standard, pd-balanced and pd-ssd GB-month prices over from the YAML", () => {
    const storage = Object.values(source.compute.storage);
    for (const [diskType, regions] of Object.entries(table.disks)) {
      const entry = storage.find((s) => s.type === diskType);
      expect(Object.keys(regions)).toEqual(expect.arrayContaining(Object.keys(entry!.cost)));
      for (const [region, perGbMonth] of Object.entries(regions)) {
        expect(perGbMonth).toBe(entry!.cost[region]!.month);
      }
    }
    expect(table.disks["pd-standard"]["us-central1"]).toBe(0.04);
    expect(table.disks["pd-balanced"]["us-central1"]).toBe(0.1);
    expect(table.disks["pd-ssd"]["us-central1"]).toBe(0.17);
  });

  it("names its source, date, licence and generator", () => {
    expect(table.source).toEqual({
      file: "gce-pricing-2026-07-30.yml",
      generated: source.about.generated,
      url: "https://github.com/Cyclenerd/google-cloud-pricing-cost-calculator",
      licence: "Apache-2.0, Copyright 2022-2025 Nils Knieling",
      generatedBy: "scripts/build-price-table.ts",
    });
    expect(table.source.generated).toBe("Thu Jul 30 06:13:17 2026");
  });

  describe("regenerating", () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "agent-work-prices-"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("gives the same bytes as the committed src/cost/gce-prices.json", () => {
      const out = join(dir, "gce-prices.json");
      execFileSync(process.execPath, ["--import", "tsx", "scripts/build-price-table.ts", yamlPath, out], {
        cwd: repoRoot,
        stdio: "pipe",
      });
      const committed = readFileSync(join(repoRoot, "src/cost/gce-prices.json"));
      expect(readFileSync(out).equals(committed)).toBe(true);
      expect(committed.length).toBeLessThan(1.5 * 1024 * 1024);
    });
  });
});

describe("estimate", () => {
  it("adds a disk billed per GB-month pro rata, a month being 730 hours", () => {
    const month = estimate({
      machineType: "e2-small",
      region: "us-central1",
      spot: false,
      seconds: 730 * 3600,
      diskGb: 100,
      diskType: "pd-ssd",
    });
    expect(month.breakdown.disk).toBeCloseTo(100 * 0.17, 10);
    expect(month.usd).toBe(month.breakdown.compute + month.breakdown.disk);
  });

  it("prices a disk without a type as pd-balanced", () => {
    const hour = { machineType: "e2-small", region: "us-central1", spot: true, seconds: 3600, diskGb: 730 };
    expect(estimate(hour).breakdown.disk).toBeCloseTo(0.1, 12);
    expect(estimate(hour).breakdown.disk).toBe(estimate({ ...hour, diskType: "pd-balanced" }).breakdown.disk);
  });

  it("says where its prices come from", () => {
    const result = estimate({ machineType: "e2-micro", region: "us-central1", spot: false, seconds: 1 });
    expect(result.source).toContain("gce-pricing-2026-07-30.yml");
  });

  it("refuses an unknown machine type, naming it", () => {
    expect(() => estimate({ machineType: "e2-enormous", region: "us-central1", spot: true, seconds: 60 })).toThrow(
      /Unknown GCE machine type "e2-enormous".*e2-/,
    );
    expect(() => estimate({ machineType: "constructor", region: "us-central1", spot: true, seconds: 60 })).toThrow(/"constructor"/);
  });

  it("refuses an unknown region, naming the machine type and some regions it does know", () => {
    expect(() => estimate({ machineType: "e2-small", region: "us-mars1", spot: true, seconds: 60 })).toThrow(
      /e2-small in region "us-mars1".*us-central1.*in all/,
    );
  });

  it("tells a caller who passed a zone to pass its region", () => {
    expect(() => estimate({ machineType: "e2-small", region: "us-central1-a", spot: true, seconds: 60 })).toThrow(
      /"us-central1-a" looks like a zone; pass its region, "us-central1"/,
    );
  });

  it("refuses an on-demand price where GCE sells the type only as spot", () => {
    const spotOnly = { machineType: "n1-standard-1", region: "europe-north2", seconds: 60 };
    expect(estimate({ ...spotOnly, spot: true }).usd).toBeGreaterThan(0);
    expect(() => estimate({ ...spotOnly, spot: false })).toThrow(/No on-demand price for n1-standard-1 in europe-north2/);
  });

  it("refuses an unknown disk type and negative durations", () => {
    const base = { machineType: "e2-small", region: "us-central1", spot: true };
    expect(() => estimate({ ...base, seconds: 60, diskGb: 10, diskType: "pd-floppy" })).toThrow(/"pd-floppy"/);
    expect(() => estimate({ ...base, seconds: -1 })).toThrow(RangeError);
  });
});

describe("formatUsd", () => {
  it.each([
    [0, "$0.00"],
    [0.00004, "<$0.0001"],
    [0.0001, "$0.0001"],
    [0.0016755, "$0.0017"],
    [0.0099, "$0.0099"],
    [0.01, "$0.01"],
    [0.126, "$0.13"],
    [1, "$1.00"],
    [1234.5, "$1234.50"],
  ])("shows %d USD as %s", (usd, text) => {
    expect(formatUsd(usd)).toBe(text);
  });

  it("refuses a negative or non-finite amount", () => {
    expect(() => formatUsd(-0.5)).toThrow(RangeError);
    expect(() => formatUsd(Number.NaN)).toThrow(RangeError);
  });
});

describe("formatDuration", () => {
  it.each([
    [42, "42 s"],
    [185, "3 min 5 s"],
    [180, "3 min"],
    [3725.4, "1 h 2 min"],
    [3600, "1 h"],
    [0, "0 s"],
  ])("shows %d s as %j", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe("pricing a job", () => {
  const gce = { zones: ["us-central1-a"], machineType: "e2-small", spot: true, diskGb: 20, diskType: "pd-balanced" as const };

  it("costs nothing on local, ssh and k8s, and says why", () => {
    expect(priceJob({ backend: "local" }, undefined)).toMatchObject({ kind: "free", rateUsdPerHour: 0, label: "local" });
    expect(priceJob({ backend: "ssh" }, undefined).label).toBe("ssh host (your own machine)");
    expect(costOf(priceJob({ backend: "local" }, undefined), 3600).totalUsd).toBe(0);
  });

  it("prices a gce job from the table: machine in the first zone's region, spot, and its disk", () => {
    const pricing = priceJob({ backend: "gce" }, gce);
    expect(pricing).toMatchObject({ kind: "metered", machineType: "e2-small", region: "us-central1", spot: true, label: "e2-small spot in us-central1" });
    const e = estimate({ machineType: "e2-small", region: "us-central1", spot: true, seconds: 600, diskGb: 20, diskType: "pd-balanced" });
    expect(costOf(pricing, 600).totalUsd).toBe(e.usd);
    expect(priceJob({ backend: "gce", machine: "e2-micro" }, gce).machineType).toBe("e2-micro");
  });

  it("cannot price gce without its configuration", () => {
    expect(() => priceJob({ backend: "gce" }, undefined)).toThrow(/GCE_PROJECT/);
  });
});
