import type { Kysely } from "kysely";

/**
 * What the delivery recovery (src/deliveries/) remembers between passes and across replicas:
 * - `delivery_asks`: one row per delivery guid it looked at (verdict, how often it asked GitHub to
 *   redeliver, after which attempt), so no pass asks twice for the same miss.
 * - `delivery_coverage`: up to when every delivery GitHub listed has been dealt with; a gap between
 *   that and what the list still covers is what the label scan fills.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("delivery_asks")
    .addColumn("guid", "text", (c) => c.primaryKey())
    .addColumn("verdict", "text", (c) => c.notNull())
    .addColumn("attempt_id", "bigint", (c) => c.notNull())
    .addColumn("asks", "integer", (c) => c.notNull())
    .addColumn("asked_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    // The issue a redelivered label was for: the label scan leaves it to the redelivery.
    .addColumn("repo_id", "bigint")
    .addColumn("issue_number", "integer")
    .execute();
  await db.schema.createIndex("delivery_asks_updated").on("delivery_asks").columns(["updated_at"]).execute();
  await db.schema
    .createTable("delivery_coverage")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("covered_until", "bigint", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("delivery_coverage").execute();
  await db.schema.dropTable("delivery_asks").execute();
}
