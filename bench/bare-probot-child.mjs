// Bare Probot with a no-op `issues.labeled` handler, as its own process: the floor that
// bench/ingest.ts holds the controller against, measured the same way (same client, same payloads).
// Prints `READY <url>`; SIGTERM stops it.
import pino from "pino";
import { Writable } from "node:stream";
import { Probot, Server } from "probot";

const log = pino({ level: "info" }, new Writable({ write: (_c, _e, cb) => cb() }));
const server = new Server({
  host: "127.0.0.1",
  port: Number(process.env.PORT),
  log,
  Probot: Probot.defaults({ appId: Number(process.env.APP_ID), privateKey: process.env.PRIVATE_KEY, secret: process.env.WEBHOOK_SECRET, log }),
});
await server.load((app) => {
  app.on("issues.labeled", async () => undefined);
});
await server.start();
process.on("SIGTERM", () => {
  server.stop().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
});
console.log(`READY http://127.0.0.1:${process.env.PORT}`);
