import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { Db } from "./client.js";

/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever commit
 * crosses the threshold, copying pages and calling fsync while every request and loop waits (most of
 * a registration's time went there). Instead the main connection never checkpoints, and a worker
 * thread with its own connection runs a PASSIVE checkpoint (it never blocks a writer) twice a second.
 *
 * That alone never lets the WAL start over while the service keeps writing: a checkpoint copies the
 * frames that existed when it began, the writer has added more by the time it ends, and SQLite
 * rewinds the WAL only at a write that finds every frame copied. Under sustained load (a saturated
 * scheduler, a delivery backlog) the file grew by tens of MB a second with no end, and commits grew
 * slower with it. So when the worker reports a WAL longer than `restartFrames`, the main connection
 * copies the few frames written since, between two of its own transactions: nothing can be appended
 * meanwhile, the copy completes, and the next commit writes from the start of the file again
 * (`journal_size_limit` then trims the file). That catch-up costs the event loop a millisecond or
 * two (a few hundred pages and two fsyncs), once per worker pass and only under such load.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 200");
let timer = null;
function pass() {
  timer = null;
  let result = null;
  try { [result] = db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
  parentPort.postMessage(result ?? { log: 0 });
}
// One pass at a time: the next is scheduled when the main thread has answered this one, so that
// its catch-up checkpoint never finds this one running (it would give up at once).
parentPort.on("message", (message) => {
  if (message === "next") {
    timer = setTimeout(pass, workerData.everyMs);
    return;
  }
  if (timer) clearTimeout(timer);
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
  db.close();
  parentPort.close();
});
timer = setTimeout(pass, workerData.everyMs);
`;

/** WAL frames (pages) past which the main connection completes the checkpoint: 16 MiB of 4 KiB pages. */
export const RESTART_FRAMES = 4096;
/** The size the WAL file is trimmed to when it starts over (else it keeps its largest size). */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export interface CheckpointerOptions {
  everyMs?: number;
  restartFrames?: number;
  walSizeLimitBytes?: number;
}

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
  {
    everyMs = 500,
    restartFrames = RESTART_FRAMES,
    walSizeLimitBytes = WAL_SIZE_LIMIT_BYTES,
  }: CheckpointerOptions = {},
): Checkpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  db.$client.pragma("wal_autocheckpoint = 0");
  db.$client.pragma(`journal_size_limit = ${walSizeLimitBytes}`);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, everyMs } });
  worker.unref();
  let stopping = false;
  worker.on("message", (result: { log: number }) => {
    if (stopping || !db.$client.open) return;
    // A message runs between two synchronous transactions of this connection; the check is a guard.
    if (result.log > restartFrames && !db.$client.inTransaction) {
      try {
        db.$client.pragma("wal_checkpoint(PASSIVE)");
      } catch (err) {
        logger.warn({ err }, "WAL catch-up checkpoint failed: the worker's next pass retries");
      }
    }
    worker.postMessage("next");
  });
  worker.on("error", (err) => {
    logger.error({ err }, "WAL checkpointer failed: checkpointing on the main connection again");
    if (db.$client.open) db.$client.pragma("wal_autocheckpoint = 1000");
  });
  return {
    async stop() {
      // Referenced again, or the process could end while we wait for the last checkpoint.
      stopping = true;
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
