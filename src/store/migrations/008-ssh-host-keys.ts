import type { Kysely } from "kysely";

/**
 * SSH host keys remembered on first use, by `address:port`, for hosts whose key the hosts file does
 * not pin: a restarted controller, the ops CLI and every replica then refuse a host whose key
 * changed, instead of each trusting whatever answers first.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("ssh_host_keys")
    .addColumn("host", "text", (c) => c.primaryKey())
    .addColumn("fingerprint", "text", (c) => c.notNull())
    .addColumn("recorded_at", "bigint", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("ssh_host_keys").execute();
}
