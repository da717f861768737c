import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ServiceProcess, startService } from "../support/child.js";
import {
  completed,
  type FakeUpstream,
  processing,
  queued,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { type ReceivedRequest, type Receiver, startReceiver } from "../support/receiver.js";
import {
  auditReceiver,
  type CallResult,
  call,
  compareWithOutbox,
  lockDatabase,
  logRecords,
  noisyWriter,
  percentile,
  serviceEnv,
  storedEvents,
  tempDir,
  untilSettled,
  withDb,
} from "./harness.js";
import { Figures } from "./report.js";

/**
 * Another process takes the database file: it holds an exclusive lock for seconds, or writes to it
 * in short bursts under concurrent load. The API answers 503 UNAVAILABLE (never 500, never a long
 * hang), the loops retry on their next tick, and afterwards nothing is lost or corrupted.
 */

const KEY = "vpk_database_tenant_0001";
const LOCK_MS = 3_000;

const figures = new Figures(
  "database",
  "Disk and database: locks held by another process, a closed log pipe",
  `A second OS process (\`node -e\`, better-sqlite3) opens the service's database file. First it holds BEGIN EXCLUSIVE for at least ${LOCK_MS / 1000} s (until the test's last call while locked has its answer) while tasks change status and the API is called; then, for 5 s, it writes in short transactions (each holding the lock 5–50 ms, 30 ms apart) while 300 registrations arrive 25 at a time and the loops run (a 503 is retried, as a client would). The service's busy timeout is 200 ms. Last, the reader of the service's stdout goes away (a log shipper that died) while it serves requests, then it gets a SIGTERM.`,
);

let up: FakeUpstream;
let rx: Receiver;
let dir: ReturnType<typeof tempDir>;
let svc: ServiceProcess | undefined;
let dbPath: string;

beforeEach(async () => {
  up = await startFakeUpstream();
  rx = await startReceiver();
  dir = tempDir("database");
  dbPath = join(dir.path, "taskhook.db");
});

afterEach(async (ctx) => {
  figures.outcome(ctx.task.name, ctx.task.result?.state);
  svc?.kill("SIGKILL");
  await svc?.exited;
  svc = undefined;
  await rx.close();
  await up.close();
  dir.remove();
});

/**
 * A task that goes processing on the clock, then completed at `completedAt`; without it, the task
 * stays processing until `completeOnceProcessing` ends it, so that no status is skipped however
 * slowly a loaded machine lets the service poll.
 */
function addTask(taskId: string, processingAt: number, completedAt?: number) {
  const t0 = Date.now();
  const timeline = [
    { atMs: 0, state: queued(2, t0 + 600_000) },
    { atMs: processingAt, state: processing(t0 + processingAt) },
  ];
  if (completedAt !== undefined) timeline.push({ atMs: completedAt, state: completed() });
  up.addTask({ taskId, apiKey: KEY, lifecycle: { timeline } });
}

/** Waits for each task's processing webhook (sent to its path), then completes every task. */
async function completeOnceProcessing(tasks: ReadonlyArray<{ taskId: string; path: string }>) {
  const processingSeen = (reqs: readonly ReceivedRequest[]) => {
    const paths = new Set(
      reqs
        .filter(
          (r) => (r.json as { data?: { status?: string } } | null)?.data?.status === "processing",
        )
        .map((r) => r.path),
    );
    return tasks.every((t) => paths.has(t.path));
  };
  await rx.waitFor(processingSeen, 30_000);
  for (const { taskId } of tasks) up.addTask({ taskId, apiKey: KEY, lifecycle: [completed()] });
}

/** Everything stored was delivered, signed, in sequence; the file is intact. */
function audit(secret: string) {
  const stored = storedEvents(dbPath);
  const received = auditReceiver(rx.requests, () => secret);
  const compared = compareWithOutbox(stored, received);
  const integrity = withDb(dbPath, (db) => db.pragma("integrity_check", { simple: true }));
  return { stored, received, compared, integrity };
}

const env = (extra: Record<string, string> = {}) =>
  serviceEnv(dir.path, up.url, {
    POLL_INTERVAL_MIN_MS: "100",
    POLL_INTERVAL_MAX_MS: "300",
    UPSTREAM_RPS: "500",
    UPSTREAM_RPS_PER_KEY: "500",
    DELIVERY_RETRY_SCHEDULE: "0s,200ms,500ms,1s,2s,5s",
    ...extra,
  });

describe("the database file locked by another process", () => {
  it("answers 503 UNAVAILABLE within a second while the lock is held, retries the loops, loses nothing", async () => {
    const started = Date.now();
    svc = await startService(env());
    const base = svc.url;
    const secret = (await call(base, "GET", "/v1/signing-secret", { key: KEY })).body.secret;
    const watchIds: string[] = [];
    const tasks: Array<{ taskId: string; path: string }> = [];
    for (let i = 0; i < 20; i += 1) {
      addTask(`task_db_${i}`, 1_000 + i * 50);
      tasks.push({ taskId: `task_db_${i}`, path: `/hook/${i}` });
      const res = await call(base, "POST", "/v1/watches", {
        key: KEY,
        body: { task_id: `task_db_${i}`, callback_url: `${rx.url}/hook/${i}` },
      });
      expect(res.status).toBe(201);
      watchIds.push(res.body.id);
    }
    await rx.waitFor(20, 10_000);

    const lock = await lockDatabase(dbPath);
    const lockedAt = Date.now();
    const firstLineWhileLocked = svc.lines.length;
    const during: Array<{ what: string; res: CallResult }> = [];
    let n = 0;
    // Every call below is made while the lock is held: the lock ends only after the last answer.
    while (Date.now() - lockedAt < LOCK_MS) {
      n += 1;
      addTask(`task_db_late_${n}`, 500);
      const calls: Array<[string, string, string, unknown]> = [
        [
          "register",
          "POST",
          "/v1/watches",
          { task_id: `task_db_late_${n}`, callback_url: `${rx.url}/late/${n}` },
        ],
        ["cancel", "DELETE", `/v1/watches/${watchIds[0]}`, undefined],
        ["rotate secret", "POST", "/v1/signing-secret/rotate", undefined],
        ["list", "GET", "/v1/watches?limit=5", undefined],
        ["healthz", "GET", "/healthz", undefined],
      ];
      for (const [what, method, path, body] of calls) {
        during.push({ what, res: await call(base, method, path, { key: KEY, body }) });
      }
    }
    const heldMs = Date.now() - lockedAt;
    // The service's own time for each 503, from its access lines: what it promises. The client's
    // time adds the event loop's wait behind the loops' own busy waits, on a machine the test shares.
    const serverMs = logRecords(svc.lines.slice(firstLineWhileLocked))
      .filter((l) => l.msg === "request" && l.status === 503)
      .map((l) => l.ms ?? Number.POSITIVE_INFINITY);
    expect(await lock.release()).toBe(0);

    // The same registrations, refused while the lock was held, go through now.
    for (let i = 1; i <= n; i += 1) {
      addTask(`task_db_late_${i}`, 500);
      tasks.push({ taskId: `task_db_late_${i}`, path: `/late/${i}` });
      const res = await call(base, "POST", "/v1/watches", {
        key: KEY,
        body: { task_id: `task_db_late_${i}`, callback_url: `${rx.url}/late/${i}` },
      });
      expect(res.status).toBe(201);
    }
    await completeOnceProcessing(tasks);
    await untilSettled(() => base, 30_000);
    const loopFailures = svc.lines.filter((l) => l.includes("loop tick failed")).length;
    svc.kill("SIGTERM");
    expect(await svc.exited).toBe(0);
    const { stored, received, compared, integrity } = audit(secret);

    const writes = during.filter((d) => d.what !== "list" && d.what !== "healthz");
    const statuses = (what: string) =>
      [...new Set(during.filter((d) => d.what === what).map((d) => d.res.status))]
        .sort()
        .join(", ");
    const slowest = Math.max(...during.map((d) => d.res.ms));
    figures.set("lock held (ms)", heldMs);
    figures.set("API calls while locked", during.length);
    for (const what of ["register", "cancel", "rotate secret", "list", "healthz"]) {
      figures.set(`status of ${what} while locked`, statuses(what));
    }
    figures.set(
      "answers 500 while locked",
      during.filter((d) => d.res.status >= 500 && d.res.status !== 503).length,
    );
    figures.set("slowest answer while locked, at the client (ms)", Math.round(slowest));
    figures.set("slowest 503 while locked, in the service (ms)", Math.round(Math.max(...serverMs)));
    figures.set("loop ticks that failed on the lock (then retried)", loopFailures);
    figures.set("events (lock)", stored.length);
    figures.set("lost (lock)", compared.lost.length);
    figures.set("integrity_check (lock)", String(integrity));
    figures.set("duration, lock (s)", (Date.now() - started) / 1000);

    for (const { res } of writes) {
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        error: { code: "UNAVAILABLE", message: "the database is busy; retry shortly" },
      });
    }
    for (const d of during.filter((x) => x.what === "list" || x.what === "healthz")) {
      expect(d.res.status).toBe(200);
    }
    expect(serverMs).toHaveLength(writes.length);
    expect(Math.max(...serverMs)).toBeLessThan(1_000);
    expect(slowest).toBeLessThan(3_000);
    expect(loopFailures).toBeGreaterThan(0);
    expect(integrity).toBe("ok");
    expect(stored).toHaveLength((20 + n) * 3);
    expect(compared.lost).toEqual([]);
    expect(compared.invented).toEqual([]);
    expect(compared.gaps).toEqual([]);
    expect(compared.outOfOrder).toEqual([]);
    expect(received.badSignatures).toBe(0);
  }, 90_000);

  it("answers 201 or 503, never 500, to concurrent registrations while another process writes", async () => {
    const started = Date.now();
    // 300 tasks at once: polls at most once a second keep the upstream's demand at 300 requests/s.
    svc = await startService(env({ POLL_INTERVAL_MIN_MS: "200", POLL_INTERVAL_MAX_MS: "1000" }));
    const base = svc.url;
    const secret = (await call(base, "GET", "/v1/signing-secret", { key: KEY })).body.secret;
    const TOTAL = 300;
    const CONCURRENCY = 25;
    const writer = noisyWriter(dbPath, 5_000);
    const results: CallResult[] = [];
    const registeredAt = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next;
        next += 1;
        // Queued until registered (a retried registration may come late), then on its way.
        up.addTask({
          taskId: `task_busy_${i}`,
          apiKey: KEY,
          lifecycle: [queued(2, Date.now() + 600_000)],
        });
        // A 503 is retried, as a client would; every attempt is counted.
        for (;;) {
          const res = await call(base, "POST", "/v1/watches", {
            key: KEY,
            body: { task_id: `task_busy_${i}`, callback_url: `${rx.url}/busy/${i}` },
          });
          results.push(res);
          if (res.status !== 503) break;
        }
        addTask(`task_busy_${i}`, 3_000);
        registeredAt.set(`task_busy_${i}`, Date.now());
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const committed = await writer;
    await completeOnceProcessing(
      Array.from({ length: TOTAL }, (_, i) => ({ taskId: `task_busy_${i}`, path: `/busy/${i}` })),
    );
    await untilSettled(() => base, 30_000);
    const loopFailures = svc.lines.filter((l) => l.includes("loop tick failed")).length;
    svc.kill("SIGTERM");
    expect(await svc.exited).toBe(0);
    const { stored, compared, integrity } = audit(secret);
    const firstPoll = [...registeredAt].map(
      ([taskId, at]) => (up.requestsFor(taskId)[0]?.at ?? Number.POSITIVE_INFINITY) - at,
    );
    const types = new Map<string, number>();
    for (const e of stored) types.set(e.type, (types.get(e.type) ?? 0) + 1);

    const byStatus = new Map<number, number>();
    for (const r of results) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    const latencies = results.map((r) => r.ms);
    figures.set("registrations (busy)", TOTAL);
    figures.set("concurrent clients (busy)", CONCURRENCY);
    figures.set("transactions committed by the other process", committed);
    for (const status of new Set([201, 503, 500, ...byStatus.keys()])) {
      figures.set(`answers ${status} (busy, retries included)`, byStatus.get(status) ?? 0);
    }
    figures.set(
      "p50 / p99 / max latency (ms, busy)",
      `${Math.round(percentile(latencies, 50))} / ${Math.round(percentile(latencies, 99))} / ${Math.round(Math.max(...latencies))}`,
    );
    figures.set("loop ticks that failed on a lock (then retried, busy)", loopFailures);
    figures.set(
      "first poll after the 201, p50 / p99 / max (ms, busy)",
      `${Math.round(percentile(firstPoll, 50))} / ${Math.round(percentile(firstPoll, 99))} / ${Math.round(Math.max(...firstPoll))}`,
    );
    figures.set("events (busy)", stored.length);
    figures.set("lost (busy)", compared.lost.length);
    figures.set("integrity_check (busy)", String(integrity));
    figures.set("duration, busy (s)", (Date.now() - started) / 1000);

    expect(committed).toBeGreaterThan(10);
    expect([...byStatus.keys()].filter((s) => s !== 201 && s !== 503)).toEqual([]);
    expect(byStatus.get(201)).toBe(TOTAL);
    expect(integrity).toBe("ok");
    expect(Object.fromEntries(types)).toEqual({
      "task.queued": TOTAL,
      "task.processing": TOTAL,
      "task.completed": TOTAL,
    });
    expect(compared.lost).toEqual([]);
    expect(compared.gaps).toEqual([]);
  }, 90_000);
});

describe("the log pipe closed under the process", () => {
  it("keeps serving, and a SIGTERM still ends it with exit 0", async () => {
    svc = await startService(env());
    const base = svc.url;
    // The reader of its stdout goes away (a log shipper that died): every log line now meets EPIPE.
    svc.proc.stdout?.destroy();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      addTask(`task_pipe_${i}`, 200, 400);
      statuses.push((await call(base, "GET", "/healthz")).status);
      const res = await call(base, "POST", "/v1/watches", {
        key: KEY,
        body: { task_id: `task_pipe_${i}`, callback_url: `${rx.url}/pipe/${i}` },
      });
      statuses.push(res.status);
    }
    await rx.waitFor((reqs) => reqs.length >= 5, 15_000);
    const stopping = Date.now();
    svc.kill("SIGTERM");
    const exit = await Promise.race([
      svc.exited,
      new Promise<string>((resolve) =>
        setTimeout(() => resolve("still running after 10 s"), 10_000),
      ),
    ]);
    figures.set("status codes with stdout closed", [...new Set(statuses)].join(", "));
    figures.set("exit after SIGTERM with stdout closed", `${exit} in ${Date.now() - stopping} ms`);
    expect(statuses.filter((s) => s !== 200 && s !== 201)).toEqual([]);
    expect(exit).toBe(0);
  }, 60_000);
});

afterAll(() => figures.save());
