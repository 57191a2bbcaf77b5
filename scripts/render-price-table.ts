import type { PriceTable } from "../src/cost/price-table.js";

function sortKeys(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
  );
}

/**
 * One machine type (or disk type) per line: small like compact JSON, yet a price update shows up as
 * a readable diff of the lines that changed.
 */
export function renderPriceTable(table: PriceTable): string {
  const sorted = sortKeys(table) as PriceTable;
  const block = (entries: Record<string, unknown>): string =>
    Object.entries(entries)
      .map(([k, v]) => `    ${JSON.stringify(k)}: ${JSON.stringify(v)}`)
      .join(",\n");
  return (
    "{\n" +
    `  "disks": {\n${block(sorted.disks)}\n  },\n` +
    `  "machines": {\n${block(sorted.machines)}\n  },\n` +
    `  "source": ${JSON.stringify(sorted.source, null, 2).replace(/\n/g, "\n  ")}\n` +
    "}\n"
  );
}
