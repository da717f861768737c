/**
 * `POST /v1/watches` requests/s: autocannon (its own process) against the real app served by
 * @hono/node-server, against a trivial Hono route served the same way in the same process.
 *
 * The real app runs as the service builds it: the file database (WAL), request logging at `info`
 * (to /dev/null), the tenant's key encrypted at rest; each request registers a new task for one of
 * 100 tenants, so every answer is a 201 with a new watch and a new poll target.
 */
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { join } from "node:path";
import { Hono } from "hono";
import { systemClock } from "../src/clock.js";
import { type Config, loadConfig } from "../src/config.js";
import { startCheckpointer } from "../src/db/checkpointer.js";
import { type Db, openDatabase } from "../src/db/client.js";
import { createSender } from "../src/delivery/sender.js";
import { createApp } from "../src/http/app.js";
import { createMetrics } from "../src/metrics.js";
import { type BenchOptions, type FigureRow, figureMain } from "./lib/figure.js";
import { measurePairs } from "./lib/pairs.js";
import { devNullLogger, scratchDir } from "./lib/quiet.js";
import { listen, postWatchesLoad } from "./lib/serve.js";
import { round } from "./lib/stats.js";

const KEYS = Array.from({ length: 100 }, (_, i) => `vpk_bench_reg_${i}`);
const CONNECTIONS = 16;

/** The real app, as the service builds it (request logging at `info`, to /dev/null). */
export function serviceApp(db: Db, config: Config) {
  return createApp({
    db,
    config,
    clock: systemClock,
    logger: devNullLogger(config.LOG_LEVEL),
    encryptionKey: randomBytes(32),
    sender: createSender({ timeoutMs: config.DELIVERY_TIMEOUT_MS, allowPrivate: false }),
    metrics: createMetrics(),
    loops: () => ({ scheduler: true, deliverer: true }),
    wake: { scheduler: () => {}, deliverer: () => {} },
  });
}

/** The baseline: a trivial Hono route at the same path. */
export function trivialApp() {
  const trivial = new Hono();
  trivial.post("/v1/watches", (c) => c.json({ ok: true }, 201));
  return trivial;
}

export async function run(opts: BenchOptions): Promise<FigureRow[]> {
  const seconds = opts.quick ? 2 : 4;
  const scratch = scratchDir("registrations");
  const dbPath = join(scratch.dir, "registrations.db");
  const config = loadConfig({ DATABASE_URL: dbPath, LOG_LEVEL: "info" });
  const db = openDatabase(dbPath);
  // As the service runs it: WAL checkpoints on a worker thread (src/service.ts).
  const checkpointer = startCheckpointer(db, dbPath, devNullLogger());
  const app = serviceApp(db, config);
  const trivial = trivialApp();

  const real = await listen(app.fetch);
  const base = await listen(trivial.fetch);
  let runs = 0;
  const load = async (server: Server, check: boolean): Promise<number> => {
    runs += 1;
    const spec = { seconds, connections: CONNECTIONS, keys: KEYS, run: `r${runs}` };
    const result = await postWatchesLoad(server, spec);
    if (check && (result.non2xx > 0 || result.errors > 0)) {
      throw new Error(`POST /v1/watches: ${result.non2xx} non-2xx, ${result.errors} errors`);
    }
    return result.rps;
  };

  try {
    const pair = await measurePairs(
      "POST /v1/watches req/s",
      opts.reps,
      () => load(base, false),
      () => load(real, true),
    );
    const watches = db.$client.prepare("SELECT count(*) AS n FROM watches").get() as { n: number };
    return [
      {
        name: "POST /v1/watches req/s",
        value: round(pair.subject.median, 1),
        baseline: round(pair.baseline.median, 1),
        ratio: round(pair.ratio.median, 3),
        target: "ratio >= 0.35",
        pass: pair.ratio.median >= 0.35,
        detail: {
          unit: "requests/s",
          ratio: pair.ratio,
          subject: pair.subject,
          baselineSpread: pair.baseline,
          watchesCreated: watches.n,
          setup: `autocannon in its own process, ${CONNECTIONS} connections, ${seconds} s per measurement, ${KEYS.length} tenants, every request a new watch (201)`,
        },
      },
    ];
  } finally {
    await new Promise((resolve) => real.close(resolve));
    await new Promise((resolve) => base.close(resolve));
    await checkpointer.stop();
    db.$client.close();
    scratch.cleanup();
  }
}

figureMain(import.meta.url, run);
