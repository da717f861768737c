import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTestContext, KEY_A, type TestContext } from "../support/context.js";
import { type FakeUpstream, processing, startFakeUpstream } from "../support/fake-upstream.js";
import { type SchedulerHarness, schedulerFor } from "../support/scheduler.js";

/** Found by test/reliability/upstream-chaos.test.ts: how a key's 429s interact with polls already sent. */

let t: TestContext;
let up: FakeUpstream;
let h: SchedulerHarness;

beforeEach(async () => {
  t = createTestContext({ POLL_INTERVAL_MIN_MS: "5000", POLL_INTERVAL_MAX_MS: "15000" });
  up = await startFakeUpstream({ clock: t.clock });
  h = schedulerFor(t, up.url);
});

afterEach(async () => {
  await h.close();
  await up.close();
});

async function watch(taskId: string) {
  const res = await t.call("POST", "/v1/watches", {
    body: { task_id: taskId, callback_url: "https://example.com/hook" },
  });
  expect(res.status).toBe(201);
}

describe("a key's 429s and the polls already on their way", () => {
  it("429s to polls sent together count as one: the backoff starts at its first step", async () => {
    for (const taskId of ["task_1", "task_2", "task_3", "task_4"]) {
      up.addTask({
        taskId,
        apiKey: KEY_A,
        lifecycle: [{ fault: "429" }, processing(t.clock.now())],
      });
      await watch(taskId);
    }
    await h.step();
    const silencedAt = t.clock.now();
    expect(up.requests.map((r) => r.status)).toEqual([429, 429, 429, 429]);
    // A task of the same key, due at once, waits for the key's silence to end.
    up.addTask({ taskId: "task_5", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    await watch("task_5");
    for (let i = 0; i < 40; i++) await h.step(250);
    // random = 0.5: one strike waits 1 s; four would have waited 4 s.
    expect((up.requestsFor("task_5")[0]?.at ?? 0) - silencedAt).toBe(1000);
  });

  it("a success of a poll sent before the 429 does not end its Retry-After", async () => {
    up.addTask({
      taskId: "task_limited",
      apiKey: KEY_A,
      lifecycle: [{ fault: { kind: "429", retryAfterS: 30 } }, processing(t.clock.now())],
    });
    // Answered after the 429 has come back, but sent with it.
    up.addTask({
      taskId: "task_slow",
      apiKey: KEY_A,
      lifecycle: [{ fault: { kind: "slow", delayMs: 300 } }, processing(t.clock.now())],
    });
    await watch("task_limited");
    await watch("task_slow");
    await h.step();
    const silencedAt = t.clock.now();
    // Sent in the same tick on two connections: they may arrive in either order.
    expect(Object.fromEntries(up.requests.map((r) => [r.taskId, r.status]))).toEqual({
      task_limited: 429,
      task_slow: 200,
    });
    expect(up.requests).toHaveLength(2);
    for (let i = 0; i < 40; i++) await h.step(1000);
    const later = up.requests.slice(2).map((r) => r.at - silencedAt);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((at) => at >= 30_000)).toBe(true);
  });
});
