import { join } from "node:path";
import { Pool } from "undici";
import { expect, it } from "vitest";
import { openDatabase } from "../../src/db/client.js";
import { registerWatch } from "../../src/db/registration.js";
import { encryptSecret, hashApiKey, parseEncryptionKey } from "../../src/domain/crypto.js";
import { normalizeEventTypes } from "../../src/domain/events.js";
import { startService } from "../support/child.js";
import { queued } from "../support/fake-upstream.js";
import { call, percentile, serviceEnv, useWorld, waitUntil } from "./harness.js";
import { Figures } from "./report.js";

/**
 * One process with 10,000 active watches: 9,000 registered before it starts, as if it had been
 * running for a while (their next polls spread over the coming minute), and 1,000 registered over
 * HTTP by 100 concurrent clients, each wanting its first poll at once. Every registration answers
 * 201 — no error, no 503 — and once that burst of first polls is done the scheduler keeps its
 * schedule: nothing overdue, polls on time.
 */

const SEEDED = 9_000;
const CONCURRENT = 1_000;
const CLIENTS = 100;
const KEYS = Array.from(
  { length: 10 },
  (_, i) => `vpk_load_tenant_${String(i).padStart(2, "0")}_0123456789`,
);
const OBSERVE_MS = 10_000;
const MAX_INTERVAL_MS = 60_000;

const figures = new Figures(
  "load",
  "Load: 10,000 active watches, 1,000 concurrent registrations",
  `${SEEDED} watches over ${KEYS.length} API keys are registered in the database file before the child service starts, through the same registration code as the API, and given next polls spread over the coming minute (as if the service had been running); then ${CONCURRENT} more arrive over HTTP from ${CLIENTS} concurrent clients (an undici Pool of ${CLIENTS} connections), each wanting its first poll at once. Every task answers queued, deep in the queue, an hour from its estimate, so with POLL_INTERVAL_MAX_MS=${MAX_INTERVAL_MS} each is polled every 54–60 s: about 170 requests a second at 10,000 watches. UPSTREAM_RPS and UPSTREAM_RPS_PER_KEY are set high, so only the service itself limits the pace. Once the burst of first polls is done, the schedule is watched for ${OBSERVE_MS / 1000} s through /admin/stats (due, and overdue: due more than 5 s ago) and the taskhook_poll_lateness_seconds histogram of /metrics.`,
);

const w = useWorld("load", figures);

/** The cumulative buckets of a Prometheus histogram, by upper bound. */
function histogram(text: string, name: string): Map<string, number> {
  const buckets = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`).exec(line);
    if (match?.[1] && match[2]) buckets.set(match[1], Number(match[2]));
  }
  return buckets;
}

it("registers 1,000 at once on top of 9,000 without an error, then keeps every poll on schedule", async () => {
  const started = Date.now();
  const env = serviceEnv(w.dir.path, w.up.url, {
    UPSTREAM_RPS: "5000",
    UPSTREAM_RPS_PER_KEY: "5000",
    UPSTREAM_CONCURRENCY: "64",
    POLL_INTERVAL_MAX_MS: String(MAX_INTERVAL_MS),
  });
  const dbPath = join(w.dir.path, "taskhook.db");
  const estimate = Date.now() + 3_600_000;
  const deep = queued(40, estimate);
  const addTask = (i: number) => {
    const key = KEYS[i % KEYS.length] ?? "";
    w.up.addTask({ taskId: `task_load_${i}`, apiKey: key, lifecycle: [deep] });
    return key;
  };

  // The 9,000 first, straight into the file through the registration the API uses.
  const db = openDatabase(dbPath);
  const encryptionKey = parseEncryptionKey(env.ENCRYPTION_KEY ?? "");
  const encrypted = new Map(KEYS.map((k) => [k, encryptSecret(encryptionKey, k)]));
  const now = Date.now();
  for (let i = 0; i < SEEDED; i += 1) {
    const key = addTask(i);
    const outcome = registerWatch(
      db,
      {
        tenantId: hashApiKey(key),
        apiKeyEnc: encrypted.get(key) ?? "",
        taskId: `task_load_${i}`,
        callbackUrl: `${w.rx.url}/load`,
        events: normalizeEventTypes(["task.completed", "task.failed"]),
        metadata: null,
        expiresAt: now + 86_400_000,
      },
      { now, minIntervalMs: 5_000, maxActive: 10_000 },
    );
    expect(outcome.kind).toBe("created");
  }
  // As if each had been polled once already: due at spread-out moments of the coming minute.
  const from = Date.now() + 3_000;
  db.$client
    .prepare(
      `UPDATE poll_targets SET task_status = 'queued', task_json = ?, queue_position = 40,
         estimated_completion_at = ?, next_poll_at = ? + (id * 7919) % ?, due_at = ? + (id * 7919) % ?,
         last_polled_at = ? + (id * 7919) % ? - ?`,
    )
    .run(
      JSON.stringify({ task_id: "seeded", status: "queued" }),
      estimate,
      from,
      MAX_INTERVAL_MS,
      from,
      MAX_INTERVAL_MS,
      from,
      MAX_INTERVAL_MS,
      MAX_INTERVAL_MS,
    );
  db.$client.prepare("UPDATE watches SET last_status = 'queued'").run();
  db.$client.close();
  const seededMs = Date.now() - started;
  figures.set("watches seeded before start", SEEDED);
  figures.set("seeding (s)", seededMs / 1000);

  w.svc = await startService(env, 30_000);
  const base = w.svc.url;
  const listeningAt = Date.now();

  // 1,000 registrations, 100 in flight at any moment, over 100 connections.
  const pool = new Pool(base, { connections: CLIENTS });
  const results: Array<{ status: number; ms: number; body: string; taskId: string; at: number }> =
    [];
  let next = SEEDED;
  const client = async () => {
    while (next < SEEDED + CONCURRENT) {
      const i = next;
      next += 1;
      const key = addTask(i);
      const t0 = performance.now();
      const res = await pool.request({
        path: "/v1/watches",
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({
          task_id: `task_load_${i}`,
          callback_url: `${w.rx.url}/load`,
          events: ["task.completed", "task.failed"],
        }),
      });
      const body = await res.body.text();
      results.push({
        status: res.statusCode,
        ms: performance.now() - t0,
        body,
        taskId: `task_load_${i}`,
        at: Date.now(),
      });
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  await pool.close();
  const registeredMs = Date.now() - listeningAt;

  const byStatus = new Map<number, number>();
  for (const r of results) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
  const latencies = results.map((r) => r.ms);
  figures.set("registrations over HTTP", CONCURRENT);
  figures.set("concurrent clients", CLIENTS);
  for (const [status, n] of [...byStatus].sort()) figures.set(`answers ${status}`, n);
  figures.set(
    "registration latency p50 / p99 / max (ms)",
    `${Math.round(percentile(latencies, 50))} / ${Math.round(percentile(latencies, 99))} / ${Math.round(Math.max(...latencies))}`,
  );
  figures.set("1,000 registrations took (s)", registeredMs / 1000);

  // The burst of first polls: done when nothing is due any more.
  let lastStats: any;
  let burstOverdue = 0;
  const stats = async () => {
    const res = await call(base, "GET", "/admin/stats", { admin: true });
    lastStats = res.body;
    return res.body;
  };
  await waitUntil(
    "the 1,000 new targets have had their first poll",
    async () => {
      const s = await stats();
      burstOverdue = Math.max(burstOverdue, s.poll_targets.overdue);
      const fresh = w.up.requests.filter(
        (r) => Number(r.taskId?.slice("task_load_".length)) >= SEEDED,
      );
      return new Set(fresh.map((r) => r.taskId)).size === CONCURRENT && s.poll_targets.due === 0;
    },
    { timeoutMs: 60_000, intervalMs: 500, state: () => lastStats },
  );
  const firstRoundMs = Date.now() - listeningAt;
  const firstPoll = results.map(
    (r) => (w.up.requestsFor(r.taskId)[0]?.at ?? Number.POSITIVE_INFINITY) - r.at,
  );
  figures.set("first polls of the 1,000 done after (s from listening)", firstRoundMs / 1000);
  figures.set(
    "first poll after its 201, p50 / p99 / max (ms)",
    `${Math.round(percentile(firstPoll, 50))} / ${Math.round(percentile(firstPoll, 99))} / ${Math.round(Math.max(...firstPoll))}`,
  );
  figures.set("most targets overdue during the burst", burstOverdue);

  // Steady state: polls come due all the time (≈ 10,000 every 15 s); none may fall behind.
  const metrics = async () => (await fetch(`${base}/metrics`)).text();
  const before = histogram(await metrics(), "taskhook_poll_lateness_seconds");
  const requestsBefore = w.up.requests.length;
  const observedFrom = Date.now();
  let samples = 0;
  let overdueSeen = 0;
  let maxDue = 0;
  while (Date.now() - observedFrom < OBSERVE_MS) {
    const s = await stats();
    samples += 1;
    overdueSeen = Math.max(overdueSeen, s.poll_targets.overdue);
    maxDue = Math.max(maxDue, s.poll_targets.due);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const after = histogram(await metrics(), "taskhook_poll_lateness_seconds");
  const steadyRequests = w.up.requests.length - requestsBefore;
  const steadySeconds = (Date.now() - observedFrom) / 1000;
  const delta = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const polled = delta("+Inf");
  const withinHalf = delta("0.5");
  const withinOne = delta("1");
  const withinTwo = delta("2");
  // The slowest bucket that holds any of the steady-state polls.
  const bounds = [...after.keys()]
    .filter((le) => le !== "+Inf")
    .map(Number)
    .sort((a, b) => a - b);
  const maxLateness = bounds.find((le) => delta(String(le)) === polled) ?? Number.POSITIVE_INFINITY;
  const finalStats = await stats();
  const alive = w.svc.proc.exitCode === null;
  w.svc.kill("SIGTERM");
  expect(await w.svc.exited).toBe(0);
  w.svc = undefined;

  figures.set("active watches", finalStats.watches.active);
  figures.set("steady state observed (s)", steadySeconds);
  figures.set(
    "steady-state upstream requests per second",
    Math.round(steadyRequests / steadySeconds),
  );
  figures.set("steady-state polls (lateness histogram)", polled);
  figures.set("… on time within 0.5 s / 1 s / 2 s", `${withinHalf} / ${withinOne} / ${withinTwo}`);
  figures.set("max poll lateness in steady state (s, bucket bound)", maxLateness);
  figures.set("/admin/stats samples (every 0.5 s)", samples);
  figures.set("most targets due at once (steady state)", maxDue);
  figures.set("most targets overdue (> 5 s) at once (steady state)", overdueSeen);
  figures.set("scenario duration (s)", (Date.now() - started) / 1000);

  expect(alive).toBe(true);
  expect(byStatus.get(201), JSON.stringify([...byStatus])).toBe(CONCURRENT);
  expect(finalStats.watches.active).toBe(SEEDED + CONCURRENT);
  expect(steadyRequests).toBeGreaterThan(0);
  expect(polled).toBeGreaterThan(0);
  expect(overdueSeen).toBe(0);
  expect(maxLateness).toBeLessThanOrEqual(2);
  expect(withinOne / polled).toBeGreaterThanOrEqual(0.99);
}, 180_000);
