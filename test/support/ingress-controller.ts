/**
 * The controller as a real process for test/integration/webhook-ingress.test.ts, so the test can
 * read this process's memory (/proc/<pid>/status) apart from its own 40 MB request: the
 * configuration from the environment, the local backend, no scheduler timer (nothing recorded is
 * ever run, so GitHub is never called; nock refuses any attempt). Log lines go to stderr, where the
 * test reads them; `READY <url>` goes to stdout. SIGTERM closes it.
 */
import nock from "nock";
import { loadControllerConfig } from "../../src/config/env.js";
import { startController } from "../../src/controller.js";

const loaded = loadControllerConfig(process.env);
if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
nock.disableNetConnect();
nock.enableNetConnect(/127\.0\.0\.1|localhost/);

const controller = await startController({ config: loaded.config, logDestination: process.stderr, autoSchedule: false });
process.stdout.write(`READY ${controller.url}\n`);
process.once("SIGTERM", () => {
  void controller.close({ abort: true }).then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`close failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
});
