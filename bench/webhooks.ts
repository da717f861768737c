/**
 * Webhooks per second the real Deliverer sends from the outbox (claimed, signed, POSTed, attempt
 * and outcome recorded in SQLite), against a bare undici loop POSTing the same bodies at the same
 * concurrency over as many sockets, to the same receiver process.
 *
 * Before each pair a fresh outbox of N pending deliveries is written with the real `appendEvent`
 * (one per watch, so the per-watch order never holds one back); both loops then send those N.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { systemClock } from "../src/clock.js";
import { startCheckpointer } from "../src/db/checkpointer.js";
import { openDatabase, transaction } from "../src/db/client.js";
import { appendEvent } from "../src/db/outbox.js";
import type { Watch } from "../src/db/schema.js";
import { Deliverer } from "../src/delivery/deliverer.js";
import { createSender, type Sender } from "../src/delivery/sender.js";
import { createMetrics } from "../src/metrics.js";
import { startServerChild } from "./lib/child.js";
import { type BenchOptions, type FigureRow, figureMain, log } from "./lib/figure.js";
import { barePosts } from "./lib/loops.js";
import { measurePairs } from "./lib/pairs.js";
import { devNullLogger, scratchDir } from "./lib/quiet.js";
import { seedWatches } from "./lib/seed.js";
import { mulberry32, round } from "./lib/stats.js";

const KEYS = Array.from({ length: 10 }, (_, i) => `vpk_bench_hooks_${i}`);
/** DELIVERY_CONCURRENCY's default, and the sockets the service gives it: max(8, 64 / 4). */
const CONCURRENCY = 64;
const CONNECTIONS = 16;
const SCHEDULE = [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000];

export async function run(opts: BenchOptions): Promise<FigureRow[]> {
  const perRep = opts.quick ? 1_500 : 5_000;
  const receiver = await startServerChild("bench/servers/receiver.ts");
  const scratch = scratchDir("webhooks");
  const db = openDatabase(join(scratch.dir, "webhooks.db"));
  // As the service runs it: WAL checkpoints on a worker thread (src/service.ts).
  const checkpointer = startCheckpointer(db, join(scratch.dir, "webhooks.db"), devNullLogger());
  const encryptionKey = randomBytes(32);
  const callbackUrl = `${receiver.url}/hooks/vibepeak`;
  seedWatches(db, {
    keys: KEYS,
    count: perRep,
    taskPrefix: "task_hook_",
    callbackUrl,
    encryptionKey,
    now: Date.now(),
    status: "processing",
    dueSpreadMs: 0,
    random: mulberry32(3),
  });
  const logger = devNullLogger();
  let bodies: string[] = [];

  /** One `task.completed` event per watch, pending now: the outbox both loops will send. */
  async function setup(): Promise<void> {
    const now = Date.now();
    const watches = db.$client.prepare("SELECT * FROM watches ORDER BY id").all() as Array<
      Record<string, unknown>
    >;
    transaction(db, () => {
      for (const w of watches) {
        const taskId = String(w.task_id);
        const watch = {
          id: String(w.id),
          tenantId: String(w.tenant_id),
          taskId,
          callbackUrl: String(w.callback_url),
          events: String(w.events),
          metadata: null,
          sequence: Number(w.sequence),
        } satisfies Pick<
          Watch,
          "id" | "tenantId" | "taskId" | "callbackUrl" | "events" | "metadata"
        > & {
          sequence: number;
        };
        const at = new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
        appendEvent(
          db,
          watch,
          {
            type: "task.completed",
            status: "completed",
            previousStatus: "processing",
            task: {
              task_id: taskId,
              status: "completed",
              completed_at: at,
              result: {
                video_url: `https://cdn.vibepeak.ai/videos/${taskId}.mp4`,
                expires_at: at,
              },
              created_at: at,
            },
          },
          now,
        );
      }
    });
    bodies = (
      db.$client
        .prepare(
          "SELECT e.payload AS payload FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.status = 'pending' ORDER BY d.id",
        )
        .all() as Array<{ payload: string }>
    ).map((r) => r.payload);
    await receiver.call("reset");
  }

  async function bare(): Promise<number> {
    await receiver.call("reset");
    return barePosts(callbackUrl, bodies, CONCURRENCY, CONNECTIONS);
  }

  async function deliverer(): Promise<number> {
    await receiver.call("reset");
    const sender = createSender({
      timeoutMs: 15_000,
      allowPrivate: true,
      connections: CONNECTIONS,
    });
    const want = bodies.length;
    let sent = 0;
    let resolveAll: () => void = () => {};
    const all = new Promise<void>((resolve) => {
      resolveAll = resolve;
    });
    const counting: Sender = {
      ...sender,
      send: (message, now) =>
        sender.send(message, now).then((attempt) => {
          sent += 1;
          if (sent === want) resolveAll();
          return attempt;
        }),
    };
    const d = new Deliverer({
      db,
      clock: systemClock,
      logger,
      metrics: createMetrics(),
      sender: counting,
      encryptionKey,
      random: mulberry32(4),
      options: { concurrency: CONCURRENCY, timeoutMs: 15_000, schedule: SCHEDULE },
    });
    const started = performance.now();
    d.start();
    await all;
    await d.stop();
    const elapsed = performance.now() - started;
    await sender.close();
    const left = db.$client
      .prepare("SELECT count(*) AS n FROM deliveries WHERE status <> 'delivered'")
      .get() as { n: number };
    if (left.n !== 0) throw new Error(`${left.n} deliveries not recorded as delivered`);
    return (want * 1000) / elapsed;
  }

  try {
    const pair = await measurePairs("webhooks/s", opts.reps, bare, deliverer, setup);
    const got = await receiver.call<{ count: number }>("stats");
    log(`webhooks/s: the receiver got ${got.count} in the last measurement`);
    return [
      {
        name: "webhooks/s (outbox, signed, recorded)",
        value: round(pair.subject.median, 1),
        baseline: round(pair.baseline.median, 1),
        ratio: round(pair.ratio.median, 3),
        target: "ratio >= 0.60",
        pass: pair.ratio.median >= 0.6,
        detail: {
          unit: "webhooks/s",
          ratio: pair.ratio,
          subject: pair.subject,
          baselineSpread: pair.baseline,
          setup: `${perRep} pending deliveries per measurement over ${KEYS.length} tenants, concurrency ${CONCURRENCY} over ${CONNECTIONS} sockets, receiver in its own process`,
        },
      },
    ];
  } finally {
    await checkpointer.stop();
    db.$client.close();
    scratch.cleanup();
    await receiver.stop();
  }
}

figureMain(import.meta.url, run);
