/**
 * Upstream budget used when demand is 3× UPSTREAM_RPS: the real Scheduler on the real clock, the
 * default budgets (50 req/s, 10 per key, 32 in flight), 750 `processing` tasks over 30 keys each
 * wanting a poll every 5 s (150 req/s of demand, 5 per key). Counted where it matters, at the fake
 * upstream process, by arrival time: the sustained rate in consecutive windows ÷ 50, and the
 * busiest one-second window of the whole run (warm-up included), overall and per key.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { systemClock } from "../src/clock.js";
import { openDatabase } from "../src/db/client.js";
import { createMetrics } from "../src/metrics.js";
import { Scheduler } from "../src/scheduler/scheduler.js";
import { createUpstreamClient, type UpstreamClient } from "../src/scheduler/upstream.js";
import { startServerChild } from "./lib/child.js";
import { type BenchOptions, type FigureRow, figureMain, log } from "./lib/figure.js";
import { devNullLogger, scratchDir, sleep } from "./lib/quiet.js";
import { seedWatches } from "./lib/seed.js";
import { busiestWindow, mulberry32, round, spread } from "./lib/stats.js";

const RPS = 50;
const RPS_PER_KEY = 10;
const TASKS = 750;
const KEYS = Array.from({ length: 30 }, (_, i) => `vpk_bench_budget_${i}`);
const PREFIX = "task_budget_";

interface UpstreamStats {
  total: number;
  inRange: number;
  maxInWindow: number;
  maxPerKey: number;
  maxInFlight: number;
}

export async function run(opts: BenchOptions): Promise<FigureRow[]> {
  const windows = opts.quick ? 1 : 3;
  const windowMs = opts.quick ? 4_000 : 6_000;
  const now = Date.now();
  const upstream = await startServerChild("bench/servers/upstream.ts", {
    tasks: [
      {
        prefix: PREFIX,
        count: TASKS,
        keys: KEYS,
        lifecycle: [{ status: "processing", started_at: new Date(now).toISOString() }],
      },
    ],
  });
  const scratch = scratchDir("budget");
  const db = openDatabase(join(scratch.dir, "budget.db"));
  const encryptionKey = randomBytes(32);
  seedWatches(db, {
    keys: KEYS,
    count: TASKS,
    taskPrefix: PREFIX,
    callbackUrl: "https://example.com/hook",
    encryptionKey,
    now,
    status: "processing",
    dueSpreadMs: 5_000,
    random: mulberry32(5),
  });
  const client = createUpstreamClient({
    baseUrl: upstream.url,
    timeoutMs: 10_000,
    connections: 32,
  });
  // Send times on our side: tells a burst we sent from one the upstream's event loop made by
  // reading late (a stalled process on a busy machine) what was sent evenly.
  const sends: number[] = [];
  const recording: UpstreamClient = {
    ...client,
    getTask: (taskId, apiKey, at) => {
      sends.push(Date.now());
      return client.getTask(taskId, apiKey, at);
    },
  };
  const scheduler = new Scheduler({
    db,
    clock: systemClock,
    logger: devNullLogger(),
    metrics: createMetrics(),
    upstream: recording,
    encryptionKey,
    random: mulberry32(6),
    options: {
      minIntervalMs: 5_000,
      maxIntervalMs: 15_000,
      rps: RPS,
      rpsPerKey: RPS_PER_KEY,
      concurrency: 32,
      timeoutMs: 10_000,
      batchSize: 200,
    },
  });

  try {
    scheduler.start();
    await sleep(3_000);
    const used: number[] = [];
    for (let w = 0; w < windows; w += 1) {
      const from = Date.now();
      await sleep(windowMs);
      const to = Date.now();
      const arrivals = await upstream.call<Array<[number, string]>>("arrivals", { from, to });
      const rate = sustainedRate(arrivals.map(([at]) => at));
      used.push(rate / RPS);
      log(
        `budget window #${w + 1}: ${round(rate, 2)} req/s of ${RPS} (${arrivals.length} arrivals)`,
      );
    }
    await scheduler.stop();
    const all = await upstream.call<UpstreamStats>("stats");
    const sentBusiest = busiestWindow(sends, 1000);
    log(
      `budget: busiest second sent ${sentBusiest}, arrived ${all.maxInWindow} (limit ${RPS}), busiest key-second ${all.maxPerKey} (limit ${RPS_PER_KEY}), at most ${all.maxInFlight} in flight`,
    );
    const ratio = spread(used);
    const pass =
      ratio.min >= 0.95 && ratio.max <= 1 && all.maxInWindow <= RPS && all.maxPerKey <= RPS_PER_KEY;
    return [
      {
        name: "upstream budget used at 3x demand",
        value: round(ratio.median * RPS, 2),
        baseline: RPS,
        ratio: round(ratio.median, 3),
        target: "ratio 0.95-1.00 and no 1 s window above 50",
        pass,
        detail: {
          unit: "requests/s at the upstream",
          ratio,
          busiestSecond: all.maxInWindow,
          busiestSecondSent: sentBusiest,
          busiestKeySecond: all.maxPerKey,
          maxInFlight: all.maxInFlight,
          setup: `${TASKS} processing tasks over ${KEYS.length} keys, 5 s interval (150 req/s demand), UPSTREAM_RPS ${RPS}, per key ${RPS_PER_KEY}; ${windows} windows of ${windowMs / 1000} s after 3 s warm-up`,
        },
      },
    ];
  } finally {
    if (scheduler.running) await scheduler.stop();
    await client.close();
    db.$client.close();
    scratch.cleanup();
    await upstream.stop();
  }
}

/**
 * Requests per second as the slope of a least-squares line through (arrival time, arrival count).
 * Sends come in bursts as the window frees, so a plain count over a window is off by up to a burst
 * depending on where the window's edges fall; the slope through every step is not.
 */
function sustainedRate(times: number[]): number {
  const n = times.length;
  if (n < 2) return 0;
  times.sort((a, b) => a - b);
  const mt = times.reduce((a, b) => a + b, 0) / n;
  const mi = (n - 1) / 2;
  let num = 0;
  let den = 0;
  times.forEach((t, i) => {
    num += (t - mt) * (i - mi);
    den += (t - mt) ** 2;
  });
  return den === 0 ? 0 : (num / den) * 1000;
}

figureMain(import.meta.url, run);
