/**
 * Polls per second the real Scheduler sustains, recording every answer in SQLite, against a bare
 * undici loop issuing the same GETs at the same concurrency to the same fake upstream process.
 *
 * The scheduler runs on the real clock with its budgets lifted (the figure is its own ceiling, not
 * the upstream's rate limit) and a 1 ms per-task floor, so that every target is due again as soon
 * as its answer is recorded: the loop never waits for work. Tasks are `processing` and stay so: the
 * steady state, where an answer changes nothing but the poll record.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { systemClock } from "../src/clock.js";
import { startCheckpointer } from "../src/db/checkpointer.js";
import { openDatabase } from "../src/db/client.js";
import { createMetrics } from "../src/metrics.js";
import { Scheduler } from "../src/scheduler/scheduler.js";
import { createUpstreamClient, type UpstreamClient } from "../src/scheduler/upstream.js";
import { startServerChild } from "./lib/child.js";
import { type BenchOptions, type FigureRow, figureMain, log } from "./lib/figure.js";
import { bareGets, ratePerSecond } from "./lib/loops.js";
import { measurePairs } from "./lib/pairs.js";
import { devNullLogger, scratchDir } from "./lib/quiet.js";
import { seedWatches } from "./lib/seed.js";
import { mulberry32, round } from "./lib/stats.js";

const TARGETS = 1_000;
const KEYS = Array.from({ length: 20 }, (_, i) => `vpk_bench_polls_${i}`);
/** UPSTREAM_CONCURRENCY's default: requests in flight, for both loops. */
const CONCURRENCY = 32;
const PREFIX = "task_poll_";

export async function run(opts: BenchOptions): Promise<FigureRow[]> {
  const seconds = opts.quick ? 1 : 3;
  const now = Date.now();
  const upstream = await startServerChild("bench/servers/upstream.ts", {
    tasks: [
      {
        prefix: PREFIX,
        count: TARGETS,
        keys: KEYS,
        lifecycle: [{ status: "processing", started_at: new Date(now).toISOString() }],
      },
    ],
  });
  const scratch = scratchDir("polls");
  const db = openDatabase(join(scratch.dir, "polls.db"));
  // As the service runs it: WAL checkpoints on a worker thread (src/service.ts).
  const checkpointer = startCheckpointer(db, join(scratch.dir, "polls.db"), devNullLogger());
  const encryptionKey = randomBytes(32);
  seedWatches(db, {
    keys: KEYS,
    count: TARGETS,
    taskPrefix: PREFIX,
    callbackUrl: "https://example.com/hook",
    encryptionKey,
    now,
    status: "processing",
    dueSpreadMs: 1_000,
    random: mulberry32(1),
  });
  const logger = devNullLogger();

  async function bare(): Promise<number> {
    await upstream.call("reset");
    return bareGets(upstream.url, CONCURRENCY, seconds, (n) => {
      const i = n % TARGETS;
      return { taskId: `${PREFIX}${i}`, apiKey: KEYS[i % KEYS.length] ?? "" };
    });
  }

  async function scheduler(): Promise<number> {
    await upstream.call("reset");
    const client = createUpstreamClient({
      baseUrl: upstream.url,
      timeoutMs: 10_000,
      connections: CONCURRENCY,
    });
    let done = 0;
    const counting: UpstreamClient = {
      ...client,
      getTask: (taskId, apiKey, at) =>
        client.getTask(taskId, apiKey, at).then((r) => {
          done += 1;
          return r;
        }),
    };
    const s = new Scheduler({
      db,
      clock: systemClock,
      logger,
      metrics: createMetrics(),
      upstream: counting,
      encryptionKey,
      random: mulberry32(2),
      options: {
        minIntervalMs: 1,
        maxIntervalMs: 1,
        rps: 100_000,
        rpsPerKey: 100_000,
        concurrency: CONCURRENCY,
        timeoutMs: 10_000,
        batchSize: 200,
      },
    });
    s.start();
    const rate = await ratePerSecond(() => done, seconds);
    await s.stop();
    await client.close();
    return rate;
  }

  try {
    const pair = await measurePairs("polls/s", opts.reps, bare, scheduler);
    const polled = db.$client
      .prepare("SELECT count(*) AS n FROM poll_targets WHERE last_polled_at > ?")
      .get(now) as { n: number };
    log(`polls/s: ${polled.n} of ${TARGETS} targets polled and recorded`);
    return [
      {
        name: "polls/s (scheduler, recorded in SQLite)",
        value: round(pair.subject.median, 1),
        baseline: round(pair.baseline.median, 1),
        ratio: round(pair.ratio.median, 3),
        target: "ratio >= 0.70",
        pass: pair.ratio.median >= 0.7,
        detail: {
          unit: "polls/s",
          ratio: pair.ratio,
          subject: pair.subject,
          baselineSpread: pair.baseline,
          setup: `${TARGETS} targets over ${KEYS.length} keys, concurrency ${CONCURRENCY}, ${seconds} s per measurement, fake upstream in its own process`,
        },
      },
    ];
  } finally {
    await checkpointer.stop();
    db.$client.close();
    scratch.cleanup();
    await upstream.stop();
  }
}

figureMain(import.meta.url, run);
