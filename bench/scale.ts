/**
 * Time per poll with 100,000 active watches against the same with 1,000: the scheduler's own work
 * per poll (claim, lease, record the answer, next poll time), network excluded. The real Scheduler
 * runs on a ManualClock against an in-process upstream that answers at once, with the budgets
 * lifted and a 1 ms per-task floor, and the clock moves 1 ms per tick: every target is due at every
 * tick, in both databases, so the only difference is how many rows the database holds.
 *
 * Both databases are seeded with raw SQL in one transaction (tenants, poll targets, watches) in a
 * steady state: every task `processing` and already seen by its watch, so no poll writes an event.
 * As in the service, WAL checkpoints run on a worker thread; the detail also gives the process CPU
 * time per poll over every thread, so that work moved off the loop is not hidden.
 *
 * The figure is the saturated loop: 200 polls per commit. The detail adds the same comparison in
 * the service's own regime (`atDefaultBudget`): the Scheduler with the default configuration
 * (UPSTREAM_RPS 50, 10 per key, concurrency 32, 5–15 s intervals), ticking as its loop does, the
 * clock moved by each tick's own wait, so about one poll per commit. It does not decide the pass.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ManualClock } from "../src/clock.js";
import { loadConfig } from "../src/config.js";
import { type Checkpointer, startCheckpointer } from "../src/db/checkpointer.js";
import { type Db, openDatabase } from "../src/db/client.js";
import { createMetrics } from "../src/metrics.js";
import { Scheduler, type SchedulerOptions, schedulerOptions } from "../src/scheduler/scheduler.js";
import type { PollResult, UpstreamClient } from "../src/scheduler/upstream.js";
import { type BenchOptions, type FigureRow, figureMain, log } from "./lib/figure.js";
import { measurePairs } from "./lib/pairs.js";
import { devNullLogger, scratchDir } from "./lib/quiet.js";
import { seedWatches } from "./lib/seed.js";
import { mulberry32, round } from "./lib/stats.js";

const KEYS = Array.from({ length: 100 }, (_, i) => `vpk_bench_scale_${i}`);
const T0 = Date.parse("2026-01-04T12:00:00.000Z");

/** Polls answered by `instantUpstream`, for the default-budget measurement. */
let answered = 0;

/** Answers `processing` at once: the poll costs only what taskhook itself does. */
const instantUpstream: UpstreamClient = {
  getTask: async (taskId: string): Promise<PollResult> => {
    answered += 1;
    return {
      kind: "ok",
      task: {
        task_id: taskId,
        status: "processing",
        started_at: "2026-01-04T11:59:00Z",
        created_at: "2026-01-04T11:59:00Z",
      },
    };
  },
  close: async () => {},
  destroy: async () => {},
};

interface Fleet {
  db: Db;
  checkpointer: Checkpointer;
  clock: ManualClock;
  scheduler: Scheduler;
  encryptionKey: Buffer;
}

function fleet(path: string, count: number): Fleet {
  const db = openDatabase(path);
  // As the service runs it: WAL checkpoints on a worker thread (src/service.ts).
  const checkpointer = startCheckpointer(db, path, devNullLogger());
  const clock = new ManualClock(T0);
  const encryptionKey = randomBytes(32);
  const started = performance.now();
  seedWatches(db, {
    keys: KEYS,
    count,
    taskPrefix: "task_scale_",
    callbackUrl: "https://example.com/hook",
    encryptionKey,
    now: T0,
    status: "processing",
    dueSpreadMs: 15_000,
    random: mulberry32(count),
    ttlMs: 7 * 86_400_000,
  });
  log(`scale: seeded ${count} watches in ${Math.round(performance.now() - started)} ms`);
  const scheduler = schedulerOn(db, clock, encryptionKey, SATURATED);
  return { db, checkpointer, clock, scheduler, encryptionKey };
}

/** Every target due at every tick, no budget: 200 polls per commit. */
const SATURATED: SchedulerOptions = {
  minIntervalMs: 1,
  maxIntervalMs: 1,
  rps: 1_000_000,
  rpsPerKey: 1_000_000,
  concurrency: 100_000,
  timeoutMs: 10_000,
  batchSize: 200,
};

/** The service's defaults (src/config.ts): the budget, not the database, sets the pace. */
const DEFAULTS = schedulerOptions(loadConfig({}));

function schedulerOn(
  db: Db,
  clock: ManualClock,
  encryptionKey: Buffer,
  options: SchedulerOptions,
): Scheduler {
  return new Scheduler({
    db,
    clock,
    logger: devNullLogger(),
    metrics: createMetrics(),
    upstream: instantUpstream,
    encryptionKey,
    random: mulberry32(7),
    options,
  });
}

/** Process CPU time (every thread: the WAL checkpoints too) per poll, by fleet size, for the detail. */
const cpuPerPoll: Record<string, number[]> = {};

/**
 * Microseconds per poll over ticks of a full batch, for at least `budgetMs` (and at least one tick).
 * Each measurement starts from an empty WAL, so that one fleet's checkpoints do not run during the
 * other's measurement.
 */
async function timePerPoll(f: Fleet, budgetMs: number, label: string): Promise<number> {
  f.db.$client.pragma("wal_checkpoint(TRUNCATE)");
  let polls = 0;
  let count = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  do {
    f.clock.advance(1);
    await f.scheduler.tick();
    await f.scheduler.idle();
    count += 1;
    polls += 200;
  } while (performance.now() - started < budgetMs && count < 500);
  const elapsed = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const samples = cpuPerPoll[label] ?? [];
  samples.push(round((used.user + used.system) / polls, 1));
  cpuPerPoll[label] = samples;
  const polled = f.db.$client
    .prepare("SELECT count(*) AS n FROM poll_targets WHERE last_polled_at >= ?")
    .get(f.clock.now() - count) as { n: number };
  if (polled.n < Math.min(polls, 200)) throw new Error(`only ${polled.n} targets polled`);
  return (elapsed * 1000) / polls;
}

/**
 * Microseconds per poll with the default configuration, for at least `budgetMs`: ticks as the
 * service's loop runs them (the polls that ended are recorded in the next tick's commit), the clock
 * moved by the wait each tick asks for.
 */
async function timePerPollAtDefaults(f: Fleet, budgetMs: number): Promise<number> {
  f.db.$client.pragma("wal_checkpoint(TRUNCATE)");
  const before = answered;
  const started = performance.now();
  do {
    for (let i = 0; i < 50; i++) {
      const wait = await f.scheduler.tick();
      // The instant upstream's answers settle within the next turn of the event loop.
      await new Promise(setImmediate);
      f.clock.advance(Math.max(1, wait));
    }
  } while (performance.now() - started < budgetMs);
  const polls = answered - before;
  if (polls < 100) throw new Error(`only ${polls} polls at the default budget`);
  return ((performance.now() - started) * 1000) / polls;
}

export async function run(opts: BenchOptions): Promise<FigureRow[]> {
  const scratch = scratchDir("scale");
  const small = fleet(join(scratch.dir, "small.db"), 1_000);
  const large = fleet(join(scratch.dir, "large.db"), opts.quick ? 20_000 : 100_000);
  const budgetMs = opts.quick ? 500 : 1_500;
  try {
    const pair = await measurePairs(
      "µs per poll (1k vs 100k watches)",
      opts.reps,
      () => timePerPoll(small, budgetMs, "1k"),
      () => timePerPoll(large, budgetMs, "100k"),
    );
    // The service's regime on the same databases: the saturated schedulers hand over.
    for (const f of [small, large]) {
      await f.scheduler.stop();
      f.scheduler = schedulerOn(f.db, f.clock, f.encryptionKey, DEFAULTS);
    }
    const atDefaults = await measurePairs(
      "µs per poll at the default budget (1k vs 100k watches)",
      opts.reps,
      () => timePerPollAtDefaults(small, budgetMs),
      () => timePerPollAtDefaults(large, budgetMs),
    );
    return [
      {
        name: "time per poll, 100k vs 1k active watches",
        value: round(pair.subject.median, 1),
        baseline: round(pair.baseline.median, 1),
        ratio: round(pair.ratio.median, 3),
        target: "ratio <= 1.20",
        pass: pair.ratio.median <= 1.2,
        detail: {
          unit: "µs per poll (claim + lease + record), network excluded",
          cpuMicrosPerPoll: cpuPerPoll,
          atDefaultBudget: {
            note: "information, not the figure: the Scheduler with the default configuration (UPSTREAM_RPS 50, 10 per key, concurrency 32, 5-15 s intervals), about one poll per commit",
            ratio: round(atDefaults.ratio.median, 3),
            ratioSpread: atDefaults.ratio,
            "100k": round(atDefaults.subject.median, 1),
            "1k": round(atDefaults.baseline.median, 1),
          },
          ratio: pair.ratio,
          subject: pair.subject,
          baselineSpread: pair.baseline,
          setup: `real Scheduler on a ManualClock, instant in-process upstream, every target due at every tick, batches of 200, WAL checkpoints on a worker thread as in the service (each measurement from an empty WAL); ${opts.quick ? 20_000 : 100_000} vs 1,000 watches over ${KEYS.length} tenants. cpuMicrosPerPoll: process CPU time per poll, every thread (checkpoints included), per measurement. atDefaultBudget: the same databases with the Scheduler at the default configuration (about one poll per commit), for information`,
        },
      },
    ];
  } finally {
    for (const f of [small, large]) {
      await f.scheduler.stop();
      await f.checkpointer.stop();
      f.db.$client.close();
    }
    scratch.cleanup();
  }
}

figureMain(import.meta.url, run);
