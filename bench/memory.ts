/**
 * Resident memory of the service holding 100,000 active watches: a fresh child process opens a
 * database seeded (by this process, raw SQL) with 100,000 never-polled watches over 100 tenants and
 * runs the whole service (API, scheduler, deliverer, retention) as `createService` builds it, against
 * the fake upstream and a receiver in their own processes; it samples `process.memoryUsage().rss`
 * while the scheduler polls at its budget and the deliverer sends the first events, calls the API
 * now and then, and reports the peak.
 *
 * The child runs TypeScript through tsx like every bench script, which the compiled service does
 * not: the RSS of an idle tsx child is reported beside the figure (`detail.idleTsxRss`).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { loadConfig } from "../src/config.js";
import { openDatabase } from "../src/db/client.js";
import { createService } from "../src/service.js";
import { runTs, startServerChild } from "./lib/child.js";
import { type BenchOptions, type FigureRow, figureMain, log } from "./lib/figure.js";
import { devNullLogger, scratchDir, sleep } from "./lib/quiet.js";
import { seedWatches } from "./lib/seed.js";
import { mulberry32, round } from "./lib/stats.js";

const MB = 1024 * 1024;
const KEYS = Array.from({ length: 100 }, (_, i) => `vpk_bench_mem_${i}`);
const PREFIX = "task_mem_";

interface HoldSpec {
  databaseUrl: string;
  upstreamUrl: string;
  encryptionKey: string;
  seconds: number;
}

interface HoldResult {
  peakRss: number;
  finalRss: number;
  heapUsed: number;
  polled: number;
  delivered: number;
  active: number;
}

/** The child: the service on the seeded database, sampled until `seconds` have passed. */
async function hold(spec: HoldSpec): Promise<HoldResult> {
  const config = loadConfig({
    DATABASE_URL: spec.databaseUrl,
    UPSTREAM_BASE_URL: spec.upstreamUrl,
    ENCRYPTION_KEY: spec.encryptionKey,
    PORT: "0",
    HOST: "127.0.0.1",
    ALLOW_PRIVATE_CALLBACKS: "true",
    ADMIN_TOKEN: "bench-admin-token-0123456789",
    LOG_LEVEL: "info",
  });
  const service = createService({
    config,
    logger: devNullLogger(),
    encryptionKey: Buffer.from(spec.encryptionKey, "base64"),
    defaultMetrics: true,
  });
  const port = await service.start();
  let peak = process.memoryUsage().rss;
  const until = Date.now() + spec.seconds * 1000;
  let calls = 0;
  while (Date.now() < until) {
    await sleep(200);
    peak = Math.max(peak, process.memoryUsage().rss);
    calls += 1;
    if (calls % 5 === 0) {
      const key = KEYS[calls % KEYS.length] ?? "";
      for (const [path, auth] of [
        ["/v1/watches?limit=200", key],
        ["/admin/stats", "bench-admin-token-0123456789"],
        ["/metrics", ""],
      ] as const) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`, {
          headers: auth === "" ? {} : { authorization: `Bearer ${auth}` },
        });
        await res.text();
      }
    }
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  const count = (sql: string) => (service.db.$client.prepare(sql).get() as { n: number }).n;
  const result = {
    peakRss: peak,
    finalRss: process.memoryUsage().rss,
    heapUsed: process.memoryUsage().heapUsed,
    polled: count("SELECT count(*) AS n FROM poll_targets WHERE last_polled_at IS NOT NULL"),
    delivered: count("SELECT count(*) AS n FROM deliveries WHERE status = 'delivered'"),
    active: count("SELECT count(*) AS n FROM watches WHERE status = 'active'"),
  };
  await service.stop(2_000);
  return result;
}

export async function run(opts: BenchOptions): Promise<FigureRow[]> {
  const count = opts.quick ? 20_000 : 100_000;
  const seconds = opts.quick ? 5 : 12;
  const now = Date.now();
  const scratch = scratchDir("memory");
  const receiver = await startServerChild("bench/servers/receiver.ts");
  const upstream = await startServerChild("bench/servers/upstream.ts", {
    tasks: [
      {
        prefix: PREFIX,
        count,
        keys: KEYS,
        lifecycle: [{ status: "processing", started_at: new Date(now).toISOString() }],
      },
    ],
  });
  try {
    const databaseUrl = join(scratch.dir, "memory.db");
    const encryptionKey = randomBytes(32);
    const db = openDatabase(databaseUrl);
    const started = performance.now();
    seedWatches(db, {
      keys: KEYS,
      count,
      taskPrefix: PREFIX,
      callbackUrl: `${receiver.url}/hooks/vibepeak`,
      encryptionKey,
      now,
      status: null,
      dueSpreadMs: 0,
      random: mulberry32(9),
    });
    db.$client.close();
    log(`memory: seeded ${count} watches in ${Math.round(performance.now() - started)} ms`);

    const idle = await runTs("bench/memory.ts", ["--idle"]);
    const idleRss = Number(idle.stdout.trim().split("\n").pop());
    const spec: HoldSpec = {
      databaseUrl,
      upstreamUrl: upstream.url,
      encryptionKey: encryptionKey.toString("base64"),
      seconds,
    };
    const child = await runTs("bench/memory.ts", ["--hold", JSON.stringify(spec)]);
    if (child.code !== 0) throw new Error(`memory child exited with ${child.code}`);
    const held = JSON.parse(child.stdout.trim().split("\n").pop() ?? "{}") as HoldResult;
    log(
      `memory: peak RSS ${round(held.peakRss / MB, 1)} MB (idle tsx child ${round(idleRss / MB, 1)} MB); ` +
        `${held.active} active, ${held.polled} polled, ${held.delivered} delivered in ${seconds} s`,
    );
    return [
      {
        name: "resident memory, 100k active watches",
        value: round(held.peakRss / MB, 1),
        baseline: null,
        ratio: null,
        target: "<= 200 MB",
        pass: held.peakRss / MB <= 200,
        detail: {
          unit: "MB (peak RSS of the service process)",
          finalRss: round(held.finalRss / MB, 1),
          heapUsed: round(held.heapUsed / MB, 1),
          idleTsxRss: round(idleRss / MB, 1),
          activeWatches: held.active,
          polled: held.polled,
          delivered: held.delivered,
          setup: `fresh child process, createService on a file database seeded with ${count} never-polled watches over ${KEYS.length} tenants, ${seconds} s of polling at the default budget, deliveries to a receiver process, API calls every second`,
        },
      },
    ];
  } finally {
    await upstream.stop();
    await receiver.stop();
    scratch.cleanup();
  }
}

const mode = process.argv[2];
if (mode === "--idle") {
  // The floor: what node + the tsx loader take before taskhook loads anything.
  process.stdout.write(`${process.memoryUsage().rss}\n`);
} else if (mode === "--hold") {
  hold(JSON.parse(process.argv[3] ?? "{}") as HoldSpec).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
} else {
  figureMain(import.meta.url, run);
}
