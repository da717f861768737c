import { afterEach, describe, expect, it } from "vitest";
import { createTestContext, type TestContext } from "../support/context.js";
import { type FakeUpstream, processing, startFakeUpstream } from "../support/fake-upstream.js";
import { type SchedulerHarness, schedulerFor } from "../support/scheduler.js";

let t: TestContext;
let up: FakeUpstream;
let h: SchedulerHarness;

afterEach(async () => {
  await h.close();
  await up.close();
});

const KEYS = ["vpk_budget_a", "vpk_budget_b", "vpk_budget_c"];

describe("rate budgets under overload", () => {
  it("never breaks the global, per-key or concurrency bounds, serves oldest due first and drops no watch", async () => {
    t = createTestContext({
      POLL_INTERVAL_MIN_MS: "1000",
      POLL_INTERVAL_MAX_MS: "2000",
      UPSTREAM_RPS: "10",
      UPSTREAM_RPS_PER_KEY: "4",
      UPSTREAM_CONCURRENCY: "6",
      SCHEDULER_BATCH_SIZE: "25",
    });
    up = await startFakeUpstream({ clock: t.clock });
    h = schedulerFor(t, up.url);
    // 3 keys × 20 tasks, each wanting a poll every second: 60 req/s of demand against 10 (6×),
    // and 20 req/s per key against 4 (5×).
    for (const key of KEYS) {
      for (let i = 0; i < 20; i++) {
        const taskId = `task_${key.slice(-1)}_${i}`;
        up.addTask({ taskId, apiKey: key, lifecycle: [processing(t.clock.now())] });
        const res = await t.call("POST", "/v1/watches", {
          key,
          body: { task_id: taskId, callback_url: "https://example.com/hook" },
        });
        expect(res.status).toBe(201);
      }
    }
    const seconds = 30;
    for (let i = 0; i < seconds * 20; i++) await h.step(50);

    expect(up.maxInWindow(1000)).toBeLessThanOrEqual(10);
    for (const key of KEYS)
      expect(up.maxInWindow(1000, (r) => r.apiKey === key)).toBeLessThanOrEqual(4);
    expect(up.maxInFlight).toBeLessThanOrEqual(6);
    // The budget is used, not wasted: at least 90% of 10 req/s.
    expect(up.requests.length).toBeGreaterThanOrEqual(0.9 * 10 * seconds);
    // No watch is starved: every task is polled, and evenly (oldest due first).
    const perTask = new Map<string, number>();
    for (const r of up.requests)
      perTask.set(r.taskId ?? "", (perTask.get(r.taskId ?? "") ?? 0) + 1);
    expect(perTask.size).toBe(60);
    const counts = [...perTask.values()];
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(2);
    // The per-task floor holds throughout.
    for (const taskId of perTask.keys()) {
      const times = up.requestsFor(taskId).map((r) => r.at);
      for (let i = 1; i < times.length; i++)
        expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(1000);
    }
  });

  it("one busy key does not hold up another key's polls", async () => {
    t = createTestContext({
      POLL_INTERVAL_MIN_MS: "1000",
      POLL_INTERVAL_MAX_MS: "2000",
      UPSTREAM_RPS: "50",
      UPSTREAM_RPS_PER_KEY: "2",
      SCHEDULER_BATCH_SIZE: "10",
    });
    up = await startFakeUpstream({ clock: t.clock });
    h = schedulerFor(t, up.url);
    for (let i = 0; i < 40; i++) {
      up.addTask({
        taskId: `busy_${i}`,
        apiKey: "vpk_busy",
        lifecycle: [processing(t.clock.now())],
      });
      await t.call("POST", "/v1/watches", {
        key: "vpk_busy",
        body: { task_id: `busy_${i}`, callback_url: "https://example.com/hook" },
      });
    }
    up.addTask({ taskId: "quiet", apiKey: "vpk_quiet", lifecycle: [processing(t.clock.now())] });
    await t.call("POST", "/v1/watches", {
      key: "vpk_quiet",
      body: { task_id: "quiet", callback_url: "https://example.com/hook" },
    });
    for (let i = 0; i < 10 * 20; i++) await h.step(50);
    // The quiet key's task is polled on time (every second), though 40 busy targets were due first.
    expect(up.requestsFor("quiet").length).toBeGreaterThanOrEqual(9);
    expect(up.maxInWindow(1000, (r) => r.apiKey === "vpk_busy")).toBeLessThanOrEqual(2);
  });
});
