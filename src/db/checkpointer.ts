import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { Db } from "./client.js";

/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever commit
 * crosses the threshold, copying pages and calling fsync while every request and loop waits (most of
 * a registration's time went there). Instead the main connection never checkpoints, and a worker
 * thread with its own connection runs a PASSIVE checkpoint (it never blocks a writer) twice a second.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 200");
const timer = setInterval(() => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
}, workerData.everyMs);
parentPort.on("message", () => {
  clearInterval(timer);
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

/**
 * Moves `db`'s checkpoints to a worker thread. Should the worker fail, the connection checkpoints
 * for itself again (the WAL must never grow without bound).
 */
export function startCheckpointer(
  db: Db,
  path: string,
  logger: Logger,
  everyMs = 500,
): Checkpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  db.$client.pragma("wal_autocheckpoint = 0");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, everyMs } });
  worker.unref();
  worker.on("error", (err) => {
    logger.error({ err }, "WAL checkpointer failed: checkpointing on the main connection again");
    if (db.$client.open) db.$client.pragma("wal_autocheckpoint = 1000");
  });
  return {
    async stop() {
      // Referenced again, or the process could end while we wait for the last checkpoint.
      worker.ref();
      const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
      worker.postMessage("stop");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
      clearTimeout(timer);
      await worker.terminate();
    },
  };
}
