import type { Kysely } from "kysely";
import type { HostKeyMemory, RememberedHostKey } from "../remote/host-key-memory.js";

export interface SshHostKeysTable {
  /** `address:port` as the hosts file names it. */
  host: string;
  fingerprint: string;
  recorded_at: number;
}

/** The `ssh_host_keys` table (migration 008): host keys remembered on first use, shared by every process on the store. */
export class SshHostKeyStore implements HostKeyMemory {
  private readonly db: Kysely<{ ssh_host_keys: SshHostKeysTable }>;

  constructor(
    db: Kysely<any>,
    private readonly now: () => number = Date.now,
  ) {
    this.db = db.withTables<{ ssh_host_keys: SshHostKeysTable }>();
  }

  async recall(hostPort: string): Promise<RememberedHostKey | undefined> {
    const row = await this.db.selectFrom("ssh_host_keys").select(["fingerprint", "recorded_at"]).where("host", "=", hostPort).executeTakeFirst();
    return row ? { fingerprint: row.fingerprint, since: Number(row.recorded_at) } : undefined;
  }

  async remember(hostPort: string, fingerprint: string): Promise<RememberedHostKey> {
    // Insert-if-absent, then read: whoever wrote first stands, on SQLite and PostgreSQL alike.
    await this.db
      .insertInto("ssh_host_keys")
      .values({ host: hostPort, fingerprint, recorded_at: this.now() })
      .onConflict((oc) => oc.column("host").doNothing())
      .execute();
    const stands = await this.recall(hostPort);
    if (!stands) throw new Error(`the host key remembered for ${hostPort} vanished as it was written`);
    return stands;
  }

  async pin(hostPort: string, fingerprint: string): Promise<void> {
    await this.db
      .insertInto("ssh_host_keys")
      .values({ host: hostPort, fingerprint, recorded_at: this.now() })
      .onConflict((oc) => oc.column("host").doUpdateSet({ fingerprint, recorded_at: this.now() }).where("ssh_host_keys.fingerprint", "<>", fingerprint))
      .execute();
  }

  /** Every remembered key (the ops CLI and tests read them). */
  async list(): Promise<({ host: string } & RememberedHostKey)[]> {
    const rows = await this.db.selectFrom("ssh_host_keys").selectAll().orderBy("host").execute();
    return rows.map((r) => ({ host: r.host, fingerprint: r.fingerprint, since: Number(r.recorded_at) }));
  }
}
