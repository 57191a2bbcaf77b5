import Sqlite from "better-sqlite3";
import type { ControllerConfig } from "../../config/env.js";
import { findStore } from "../find-store.js";
import type { DoctorCheck } from "./doctor-check.js";

/** The store the controller and the CLI share: there, and answering (read-only: nothing is created). */
export async function checkStore(config: Pick<ControllerConfig, "dataDir" | "databaseUrl">, add: (check: DoctorCheck) => void): Promise<void> {
  const found = await findStore(config);
  if (!found.ok) {
    add({
      name: "store",
      status: "fail",
      detail: found.problem,
      fix: "start the controller once (npm start) to create it, or point DATA_DIR / DATABASE_URL at the one it uses",
    });
    return;
  }
  if (config.databaseUrl) {
    add({ name: "store", status: "ok", detail: `${found.where} answers and holds the agent-work tables` });
    return;
  }
  try {
    const db = new Sqlite(found.where.replace(/^SQLite /, ""), { readonly: true, fileMustExist: true });
    try {
      const { n } = db.prepare("select count(*) as n from jobs").get() as { n: number };
      add({ name: "store", status: "ok", detail: `${found.where} opens; ${n} job${n === 1 ? "" : "s"}` });
    } finally {
      db.close();
    }
  } catch (err) {
    add({
      name: "store",
      status: "fail",
      detail: `${found.where}: ${err instanceof Error ? err.message : String(err)}`,
      fix: "the file is not a readable agent-work store; check its owner and mode, or restore it",
    });
  }
}
