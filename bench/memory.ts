/**
 * Resident memory of the service holding 100,000 active watches, as `npm start` runs it: the
 * compiled service (`npm run build`, then `node dist/main.js`) in a child process, on a database
 * seeded (by this process, raw SQL) with 100,000 never-polled watches over 100 tenants, against the
 * fake upstream and a receiver in their own processes. While the scheduler polls at its budget and
 * the deliverer sends the first events, this process calls the API now and then and samples the
 * child's resident memory from /proc; the figure is the kernel's peak (`VmHWM`), startup included.
 *
 * Until the fifth session the child ran the TypeScript sources through tsx, like every bench script,
 * which the shipped service does not: 185–191 MB that way, against 154 MB compiled (an idle tsx
 * child takes 126 MB, an idle `node` 41 MB). The idle `node` is reported beside the figure
 * (`detail.idleNodeRss`).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { openDatabase } from "../src/db/client.js";
import { startService } from "../test/support/child.js";
import { ROOT, startServerChild } from "./lib/child.js";
import { type BenchOptions, type FigureRow, figureMain, log } from "./lib/figure.js";
import { scratchDir, sleep } from "./lib/quiet.js";
import { seedWatches } from "./lib/seed.js";
import { mulberry32, round } from "./lib/stats.js";

const MB = 1024 * 1024;
const KEYS = Array.from({ length: 100 }, (_, i) => `vpk_bench_mem_${i}`);
const PREFIX = "task_mem_";
const ADMIN_TOKEN = "bench-admin-token-0123456789";

/** A process's resident memory now and at its peak, in bytes (/proc/<pid>/status). */
function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: kb("VmRSS") * 1024, peak: kb("VmHWM") * 1024 };
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

    const build = spawnSync(
      process.execPath,
      ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"],
      {
        cwd: ROOT,
        stdio: "inherit",
      },
    );
    if (build.status !== 0) throw new Error("the build (tsc -p tsconfig.build.json) failed");
    const idle = spawnSync(process.execPath, [
      "-e",
      "process.stdout.write(String(process.memoryUsage().rss))",
    ]);
    const idleRss = Number(idle.stdout.toString());

    const service = await startService(
      {
        DATABASE_URL: databaseUrl,
        UPSTREAM_BASE_URL: upstream.url,
        ENCRYPTION_KEY: encryptionKey.toString("base64"),
        ALLOW_PRIVATE_CALLBACKS: "true",
        ADMIN_TOKEN,
      },
      30_000,
      ["dist/main.js"],
    );
    let heapUsed = 0;
    let held = { rss: 0, peak: 0 };
    try {
      const until = Date.now() + seconds * 1000;
      let calls = 0;
      while (Date.now() < until) {
        await sleep(200);
        calls += 1;
        if (calls % 5 !== 0) continue;
        const key = KEYS[calls % KEYS.length] ?? "";
        for (const [path, auth] of [
          ["/v1/watches?limit=200", key],
          ["/admin/stats", ADMIN_TOKEN],
          ["/metrics", ""],
        ] as const) {
          const res = await fetch(`${service.url}${path}`, {
            headers: auth === "" ? {} : { authorization: `Bearer ${auth}` },
          });
          const text = await res.text();
          const heap = /^taskhook_nodejs_heap_size_used_bytes (\d+)/m.exec(text);
          if (heap) heapUsed = Number(heap[1]);
        }
      }
      held = rssOf(service.proc.pid ?? 0);
    } finally {
      service.kill("SIGTERM");
      await service.exited;
    }
    const done = openDatabase(databaseUrl);
    const rows = (sql: string) => (done.$client.prepare(sql).get() as { n: number }).n;
    const polled = rows("SELECT count(*) AS n FROM poll_targets WHERE last_polled_at IS NOT NULL");
    const delivered = rows("SELECT count(*) AS n FROM deliveries WHERE status = 'delivered'");
    const active = rows("SELECT count(*) AS n FROM watches WHERE status = 'active'");
    done.$client.close();
    log(
      `memory: peak RSS ${round(held.peak / MB, 1)} MB (idle node ${round(idleRss / MB, 1)} MB); ` +
        `${active} active, ${polled} polled, ${delivered} delivered in ${seconds} s`,
    );
    return [
      {
        name: "resident memory, 100k active watches",
        value: round(held.peak / MB, 1),
        baseline: null,
        ratio: null,
        target: "<= 200 MB",
        pass: held.peak / MB <= 200,
        detail: {
          unit: "MB (peak RSS of the service process)",
          finalRss: round(held.rss / MB, 1),
          heapUsed: round(heapUsed / MB, 1),
          idleNodeRss: round(idleRss / MB, 1),
          activeWatches: active,
          polled,
          delivered,
          setup: `the compiled service (npm run build; node dist/main.js, NODE_ENV=production, LOG_LEVEL=info) in a fresh child process, on a file database seeded with ${count} never-polled watches over ${KEYS.length} tenants; ${seconds} s of polling at the default budget, deliveries to a receiver process, API calls every second; peak RSS is the kernel's VmHWM`,
        },
      },
    ];
  } finally {
    await upstream.stop();
    await receiver.stop();
    scratch.cleanup();
  }
}

figureMain(import.meta.url, run);
