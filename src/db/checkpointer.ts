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
 * slower with it. So after a worker pass that copied every frame it found, in a WAL longer than
 * `restartFrames`, the main connection copies the frames written during that pass, between two of
 * its own transactions: nothing can be appended meanwhile, the copy completes, and the next commit
 * writes from the start of the file again (`journal_size_limit` then trims a file grown past it).
 * The catch-up runs on the event loop: what one pass's time let the loops write (deduplicated by
 * page) and two fsyncs, a few ms in the benchmarks here, only under such load and at most once per
 * pass. It is logged at debug level with its duration.
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
  parentPort.postMessage(result ?? { busy: 1, log: -1, checkpointed: -1 });
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

/** A worker pass's `wal_checkpoint(PASSIVE)`: frames in the WAL, and how many are copied. */
export interface PassResult {
  busy: number;
  log: number;
  checkpointed: number;
}

export interface CheckpointerOptions {
  everyMs?: number;
  restartFrames?: number;
  walSizeLimitBytes?: number;
  /** Called after each worker pass (and the catch-up it led to, if any). */
  onPass?: (result: PassResult) => void;
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
    onPass,
  }: CheckpointerOptions = {},
): Checkpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  db.$client.pragma("wal_autocheckpoint = 0");
  db.$client.pragma(`journal_size_limit = ${walSizeLimitBytes}`);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, everyMs } });
  worker.unref();
  let stopping = false;
  worker.on("message", (result: PassResult) => {
    if (stopping || !db.$client.open) return;
    // When the pass could not copy every frame (a reader in another process still needs them), a
    // catch-up could not complete either, and would copy far more: the next pass tries again.
    const complete = result.checkpointed === result.log;
    // A message runs between two synchronous transactions of this connection; the check is a guard.
    if (result.log > restartFrames && complete && !db.$client.inTransaction) {
      const started = performance.now();
      try {
        db.$client.pragma("wal_checkpoint(PASSIVE)");
        logger.debug(
          { frames: result.log, ms: Math.round(performance.now() - started) },
          "WAL catch-up checkpoint: the next commit starts the WAL over",
        );
      } catch (err) {
        logger.warn({ err }, "WAL catch-up checkpoint failed: the worker's next pass retries");
      }
    }
    onPass?.(result);
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
