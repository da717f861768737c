import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../src/domain/crypto.js";
import { createTestContext, KEY_A, KEY_B, type TestContext } from "../support/context.js";
import {
  completed,
  type FakeUpstream,
  failed,
  processing,
  queued,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { type SchedulerHarness, schedulerFor } from "../support/scheduler.js";

let t: TestContext;
let up: FakeUpstream;
let h: SchedulerHarness;

const later = (ms: number) => t.clock.now() + ms;

async function watch(
  taskId: string,
  extra: Record<string, unknown> = {},
  key = KEY_A,
  path = "/hook",
) {
  const res = await t.call("POST", "/v1/watches", {
    key,
    body: { task_id: taskId, callback_url: `https://example.com${path}`, ...extra },
  });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

function eventsOf(watchId: string) {
  return t.db.$client
    .prepare("select type, sequence, payload from events where watch_id = ? order by sequence")
    .all(watchId) as Array<{ type: string; sequence: number; payload: string }>;
}

function watchRow(id: string) {
  return t.db.$client.prepare("select * from watches where id = ?").get(id) as Record<
    string,
    unknown
  >;
}

beforeEach(async () => {
  t = createTestContext({ POLL_INTERVAL_MIN_MS: "5000", POLL_INTERVAL_MAX_MS: "15000" });
  up = await startFakeUpstream({ clock: t.clock });
  h = schedulerFor(t, up.url);
});

afterEach(async () => {
  await h.close();
  await up.close();
});

describe("polling", () => {
  it("polls right after registration and emits task.queued with the upstream body verbatim", async () => {
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: [{ ...queued(3, later(60_000)), extra: { x_unknown: { kept: true } } }],
    });
    const id = await watch("task_1");
    await h.step();
    expect(up.requestsFor("task_1")).toHaveLength(1);
    const [event] = eventsOf(id);
    expect(event?.type).toBe("task.queued");
    const body = JSON.parse(event?.payload ?? "{}");
    expect(body.data).toMatchObject({
      watch_id: id,
      sequence: 1,
      task_id: "task_1",
      status: "queued",
      previous_status: null,
      metadata: null,
    });
    expect(body.data.task).toMatchObject({ queue_position: 3, x_unknown: { kept: true } });
    const view = await t.call("GET", `/v1/watches/${id}`);
    expect(view.body.task_status).toBe("queued");
    expect(view.body.last_polled_at).toBe(new Date(t.clock.now()).toISOString());
  });

  it("N watches of a tenant on one task share one request stream", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    const ids = [
      await watch("task_1", {}, KEY_A, "/a"),
      await watch("task_1", {}, KEY_A, "/b"),
      await watch("task_1", {}, KEY_A, "/c"),
    ];
    for (let i = 0; i < 21; i++) await h.step(1000);
    // 20 s of processing without an estimate, at the 5 s minimum: 5 polls in all, not 5 per watch.
    expect(up.requestsFor("task_1").length).toBe(5);
    for (const id of ids) expect(eventsOf(id).map((e) => e.type)).toEqual(["task.processing"]);
  });

  it("never polls one task twice within POLL_INTERVAL_MIN_MS, even when a new watch wakes it", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    await watch("task_1", {}, KEY_A, "/a");
    await h.step();
    await h.step(1000);
    await watch("task_1", {}, KEY_A, "/b");
    for (let i = 0; i < 30; i++) await h.step(500);
    const times = up.requestsFor("task_1").map((r) => r.at);
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(5000);
  });

  it("a watch added to a task already polled learns its status from the next answer, though that answer is unchanged", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    const behind = () =>
      (
        t.db.$client
          .prepare("select watches_behind as b from poll_targets where task_id = 'task_1'")
          .get() as { b: number }
      ).b;
    const first = await watch("task_1", {}, KEY_A, "/a");
    expect(behind()).toBe(1);
    await h.step();
    // Every watch has seen the answer: the same answer again needs no look at the watches.
    expect(behind()).toBe(0);
    await h.step(5000);
    expect(behind()).toBe(0);

    const second = await watch("task_1", {}, KEY_A, "/b");
    expect(behind()).toBe(1);
    await h.step(5000);
    expect(behind()).toBe(0);
    expect(eventsOf(second).map((e) => e.type)).toEqual(["task.processing"]);
    expect(eventsOf(first).map((e) => e.type)).toEqual(["task.processing"]);
    expect(up.requestsFor("task_1")).toHaveLength(3);
  });

  it("follows a lifecycle to the end: one event per status, then the watch is done and polling stops", async () => {
    const now = t.clock.now();
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: {
        timeline: [
          { atMs: 0, state: queued(2, now + 40_000) },
          { atMs: 20_000, state: processing(now + 20_000) },
          { atMs: 40_000, state: completed() },
        ],
      },
    });
    const id = await watch("task_1", { metadata: { order_id: 42 } });
    for (let i = 0; i < 120; i++) await h.step(500);
    const events = eventsOf(id);
    expect(events.map((e) => [e.type, e.sequence])).toEqual([
      ["task.queued", 1],
      ["task.processing", 2],
      ["task.completed", 3],
    ]);
    const last = JSON.parse(events[2]?.payload ?? "{}");
    expect(last.data).toMatchObject({ previous_status: "processing", metadata: { order_id: 42 } });
    expect(watchRow(id)).toMatchObject({ status: "done", end_reason: null });
    const polls = up.requestsFor("task_1").length;
    for (let i = 0; i < 40; i++) await h.step(1000);
    expect(up.requestsFor("task_1").length).toBe(polls);
    // Every event has exactly one pending delivery in the outbox.
    const dl = t.db.$client
      .prepare("select count(*) n from deliveries where watch_id = ? and status = 'pending'")
      .get(id);
    expect(dl).toEqual({ n: 3 });
  });

  it("applies the event filter and keeps sequence without gaps", async () => {
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: [queued(1, later(10_000)), processing(t.clock.now()), failed("boom")],
    });
    const id = await watch("task_1", { events: ["task.failed", "task.completed"] });
    for (let i = 0; i < 10; i++) await h.step(5000);
    expect(eventsOf(id).map((e) => [e.type, e.sequence])).toEqual([["task.failed", 1]]);
    expect(JSON.parse(eventsOf(id)[0]?.payload ?? "{}").data.previous_status).toBe("processing");
  });

  it("emits task.queue_position_changed only to watches that opted in", async () => {
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: [
        queued(3, later(60_000)),
        queued(2, later(60_000)),
        queued(2, later(60_000)),
        queued(1, later(60_000)),
      ],
    });
    const plain = await watch("task_1", {}, KEY_A, "/plain");
    const keen = await watch(
      "task_1",
      { events: ["task.queued", "task.queue_position_changed"] },
      KEY_A,
      "/keen",
    );
    for (let i = 0; i < 8; i++) await h.step(15_000);
    expect(eventsOf(plain).map((e) => e.type)).toEqual(["task.queued"]);
    expect(eventsOf(keen).map((e) => e.type)).toEqual([
      "task.queued",
      "task.queue_position_changed",
      "task.queue_position_changed",
    ]);
  });

  it("statuses only move forward: a backwards answer is counted, not emitted", async () => {
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: [processing(t.clock.now()), queued(1, later(5000)), completed()],
    });
    const id = await watch("task_1");
    for (let i = 0; i < 4; i++) await h.step(5000);
    expect(eventsOf(id).map((e) => e.type)).toEqual(["task.processing", "task.completed"]);
    expect(JSON.parse(eventsOf(id)[1]?.payload ?? "{}").data.previous_status).toBe("processing");
    const metric = await h.metrics.registry.getSingleMetricAsString(
      "taskhook_upstream_backwards_answers_total",
    );
    expect(metric).toContain("taskhook_upstream_backwards_answers_total 1");
  });

  it("keeps tenants apart: each tenant polls with its own key", async () => {
    up.addTask({ taskId: "task_a", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    up.addTask({ taskId: "task_b", apiKey: KEY_B, lifecycle: [processing(t.clock.now())] });
    await watch("task_a", {}, KEY_A);
    await watch("task_b", {}, KEY_B);
    await h.step();
    expect(up.requestsFor("task_a").map((r) => r.apiKey)).toEqual([KEY_A]);
    expect(up.requestsFor("task_b").map((r) => r.apiKey)).toEqual([KEY_B]);
  });
});

describe("faults", () => {
  it("a 429 silences that key until Retry-After, other keys flow on", async () => {
    up.addTask({
      taskId: "task_a",
      apiKey: KEY_A,
      lifecycle: [{ fault: { kind: "429", retryAfterS: 30 } }, processing(t.clock.now())],
    });
    up.addTask({ taskId: "task_a2", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    up.addTask({ taskId: "task_b", apiKey: KEY_B, lifecycle: [processing(t.clock.now())] });
    await watch("task_a");
    await h.step();
    const silencedAt = t.clock.now();
    await watch("task_a2");
    await watch("task_b", {}, KEY_B);
    for (let i = 0; i < 40; i++) await h.step(1000);
    const keyA = up.requests.filter((r) => r.apiKey === KEY_A).map((r) => r.at - silencedAt);
    expect(keyA[0]).toBe(0);
    expect(keyA.slice(1).every((at) => at >= 30_000)).toBe(true);
    expect(keyA.length).toBeGreaterThan(1);
    expect(up.requestsFor("task_b")[0]?.at).toBe(silencedAt + 1000);
  });

  it("an HTTP-date Retry-After is honoured too", async () => {
    up.addTask({
      taskId: "task_a",
      apiKey: KEY_A,
      lifecycle: [
        { fault: { kind: "429", retryAfterS: 20, retryAfterFormat: "http-date" } },
        processing(t.clock.now()),
      ],
    });
    await watch("task_a");
    await h.step();
    for (let i = 0; i < 30; i++) await h.step(1000);
    const times = up.requestsFor("task_a").map((r) => r.at);
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(19_000);
  });

  it("5xx, resets and bad JSON back off exponentially, then polling resumes", async () => {
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: [
        { fault: "500" },
        { fault: "reset" },
        { fault: "truncated" },
        { fault: "not-json" },
        { fault: "503" },
        processing(t.clock.now()),
      ],
    });
    const id = await watch("task_1");
    for (let i = 0; i < 600; i++) await h.step(1000);
    const times = up.requestsFor("task_1").map((r) => r.at);
    const gaps = times.slice(1, 6).map((at, i) => at - (times[i] ?? 0));
    // random = 0.5: full jitter gives half of min(cap, 5 s·2^(n-1)), floored at 5 s.
    expect(gaps).toEqual([5000, 5000, 10_000, 20_000, 40_000]);
    expect(eventsOf(id).map((e) => e.type)).toEqual(["task.processing"]);
    // Healthy again: back to the 5 s minimum while processing.
    expect((times[7] ?? 0) - (times[6] ?? 0)).toBe(5000);
    expect(watchRow(id).status).toBe("active");
  });

  it("time-outs count as faults and the watch survives", async () => {
    await h.close();
    h = schedulerFor(t, up.url, { timeoutMs: 200 });
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: [{ fault: { kind: "slow", delayMs: 1000 } }, processing(t.clock.now())],
    });
    const id = await watch("task_1");
    await h.step();
    const metric = await h.metrics.registry.getSingleMetricAsString(
      "taskhook_upstream_requests_total",
    );
    expect(metric).toContain('outcome="timeout"} 1');
    for (let i = 0; i < 10; i++) await h.step(1000);
    expect(eventsOf(id).map((e) => e.type)).toEqual(["task.processing"]);
  });

  it.each([
    ["TASK_NOT_FOUND", (u: FakeUpstream) => u.removeTask("task_1")],
    ["INVALID_API_KEY", (u: FakeUpstream) => u.revokeKey(KEY_A)],
  ])(
    "three %s in a row end the watches as failed with a watch.failed event",
    async (code, breakIt) => {
      up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [queued(1, later(600_000))] });
      const id = await watch("task_1");
      await h.step();
      breakIt(up);
      await h.step(15_000);
      await h.step(5000);
      expect(watchRow(id).status).toBe("active");
      await h.step(5000);
      expect(watchRow(id)).toMatchObject({ status: "failed", end_reason: code });
      const events = eventsOf(id);
      expect(events.map((e) => e.type)).toEqual(["task.queued", "watch.failed"]);
      expect(JSON.parse(events[1]?.payload ?? "{}").data).toMatchObject({
        reason: code,
        sequence: 2,
      });
      const polls = up.requests.length;
      for (let i = 0; i < 5; i++) await h.step(15_000);
      expect(up.requests.length).toBe(polls);
      // The key is no longer needed by any watch: it is forgotten.
      expect(t.db.$client.prepare("select api_key_enc from tenants").get()).toEqual({
        api_key_enc: null,
      });
    },
  );

  it("a success in between resets the count of rejections", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [{ fault: "500" }] });
    const id = await watch("task_1");
    up.removeTask("task_1");
    await h.step();
    await h.step(5000);
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    await h.step(5000);
    up.removeTask("task_1");
    await h.step(5000);
    await h.step(5000);
    expect(watchRow(id).status).toBe("active");
  });
});

describe("expiry", () => {
  it("a watch past its expires_at ends as expired with a watch.expired event", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [queued(30, later(3_600_000))] });
    const id = await watch("task_1", { expires_in: 60 });
    await h.step();
    for (let i = 0; i < 60; i++) await h.step(1000);
    expect(watchRow(id)).toMatchObject({ status: "expired" });
    expect(eventsOf(id).map((e) => e.type)).toEqual(["task.queued", "watch.expired"]);
    const polls = up.requests.length;
    for (let i = 0; i < 5; i++) await h.step(15_000);
    expect(up.requests.length).toBe(polls);
  });
});

describe("durability", () => {
  it("records events, deliveries and the poll state atomically: a failed write leaves none of them", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    const id = await watch("task_1");
    t.db.$client.exec(
      "CREATE TRIGGER no_deliveries BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
    );
    await h.scheduler.tick();
    await expect(h.scheduler.idle()).rejects.toThrow(/disk on fire/);
    expect(eventsOf(id)).toEqual([]);
    const target = t.db.$client.prepare("select task_status, lease_until from poll_targets").get();
    expect(target).toMatchObject({ task_status: null });
    expect((target as { lease_until: number }).lease_until).toBeGreaterThan(t.clock.now());
    t.db.$client.exec("DROP TRIGGER no_deliveries");
    // The process "dies" here; a new scheduler finds the lease expired and polls again.
    await h.close();
    h = schedulerFor(t, up.url);
    await h.step(20_000);
    expect(eventsOf(id).map((e) => [e.type, e.sequence])).toEqual([["task.processing", 1]]);
  });

  it("a restart resumes from the database with no duplicate events", async () => {
    const now = t.clock.now();
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: {
        timeline: [
          { atMs: 0, state: processing(now) },
          { atMs: 60_000, state: completed() },
        ],
      },
    });
    const id = await watch("task_1");
    for (let i = 0; i < 20; i++) await h.step(1000);
    await h.close();
    h = schedulerFor(t, up.url);
    for (let i = 0; i < 60; i++) await h.step(1000);
    expect(eventsOf(id).map((e) => [e.type, e.sequence])).toEqual([
      ["task.processing", 1],
      ["task.completed", 2],
    ]);
  });

  it("one scheduler per database: a second one stands by and takes over when the first stops renewing", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    await watch("task_1");
    const second = schedulerFor(t, up.url);
    try {
      await h.step();
      expect(h.scheduler.isLeader).toBe(true);
      await second.step(5000);
      expect(second.scheduler.isLeader).toBe(false);
      expect(up.requests).toHaveLength(1);
      // The first dies without releasing: after the lease TTL the second polls.
      for (let i = 0; i < 20; i++) await second.step(1000);
      expect(second.scheduler.isLeader).toBe(true);
      expect(up.requests.length).toBeGreaterThan(1);
    } finally {
      await second.close();
    }
  });
});

describe("under load", () => {
  it("waits, at most 2 ms after its last claim, for half of the slots before it records and claims again", async () => {
    // The slow answers must still be in flight at the gathering tick, even on a stalled machine.
    const g = schedulerFor(t, up.url, { concurrency: 8, timeoutMs: 6000 });
    try {
      const now = t.clock.now();
      // Claimed in registration order: three answer at once, five take 4 s, two wait for a slot.
      const fast = ["task_f1", "task_f2", "task_f3"];
      for (const taskId of fast)
        up.addTask({ taskId, apiKey: KEY_A, lifecycle: [processing(now)] });
      for (let i = 0; i < 5; i++) {
        up.addTask({
          taskId: `task_s${i}`,
          apiKey: KEY_A,
          lifecycle: [{ fault: { kind: "slow", delayMs: 4000 } }, processing(now)],
        });
      }
      for (const taskId of ["task_w1", "task_w2"]) {
        up.addTask({ taskId, apiKey: KEY_A, lifecycle: [processing(now)] });
      }
      const ids = new Map<string, string>();
      for (const taskId of [...fast, "task_s0", "task_s1", "task_s2", "task_s3", "task_s4"]) {
        ids.set(taskId, await watch(taskId));
      }
      for (const taskId of ["task_w1", "task_w2"]) ids.set(taskId, await watch(taskId));
      await g.scheduler.tick();
      await vi.waitFor(
        async () => {
          const answered = await g.metrics.registry.getSingleMetricAsString(
            "taskhook_upstream_requests_total",
          );
          expect(answered).toMatch(/outcome="2xx"} 3$/m);
          expect(up.requests).toHaveLength(8);
        },
        { timeout: 3000 },
      );
      const recorded = () => fast.map((taskId) => eventsOf(ids.get(taskId) ?? "").length);

      // Three slots of eight free and under 2 ms since the claim: nothing recorded, nothing claimed.
      t.clock.advance(1);
      expect(await g.scheduler.tick()).toBe(1);
      expect(up.requests).toHaveLength(8);
      expect(recorded()).toEqual([0, 0, 0]);

      // 2 ms after the claim: the three answers are recorded and two slots refilled in one commit.
      t.clock.advance(1);
      await g.scheduler.tick();
      expect(recorded()).toEqual([1, 1, 1]);
      await vi.waitFor(() => expect(up.requests).toHaveLength(10), { timeout: 3000 });
      const refilled = up.requests.slice(8).map((r) => r.taskId);
      expect(refilled.sort()).toEqual(["task_w1", "task_w2"]);
    } finally {
      await g.close();
    }
  });
});

describe("memory per key", () => {
  it("forgets a key no longer polled (its budget and decrypted API key), not one still polled", async () => {
    up.addTask({ taskId: "task_a", apiKey: KEY_A, lifecycle: [completed()] });
    up.addTask({ taskId: "task_b", apiKey: KEY_B, lifecycle: [processing(t.clock.now())] });
    await watch("task_a", {}, KEY_A);
    await watch("task_b", {}, KEY_B);
    await h.step();
    const a = hashApiKey(KEY_A);
    expect(h.scheduler.keyState(a)).toMatchObject({ apiKey: true, budget: true });
    // A's task is done: A is not polled again. B is, every 5–15 s, for the next two minutes.
    for (let i = 0; i < 120; i++) await h.step(1000);
    expect(up.requestsFor("task_a")).toHaveLength(1);
    expect(up.requestsFor("task_b").length).toBeGreaterThan(8);
    expect(h.scheduler.keyState(a)).toEqual({
      apiKey: false,
      budget: false,
      slot: false,
      silence: false,
    });
    // B goes on: its key, forgotten or not, is read again when needed.
    const before = up.requestsFor("task_b").length;
    for (let i = 0; i < 20; i++) await h.step(1000);
    expect(up.requestsFor("task_b").length).toBeGreaterThan(before);
  });
});

describe("429 without Retry-After", () => {
  it("silences the key with an exponential backoff of its own", async () => {
    up.addTask({
      taskId: "task_1",
      apiKey: KEY_A,
      lifecycle: [{ fault: "429" }, { fault: "429" }, processing(t.clock.now())],
    });
    up.addTask({ taskId: "task_2", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
    const first = await watch("task_1");
    await h.step();
    const silencedAt = t.clock.now();
    await watch("task_2");
    for (let i = 0; i < 100; i++) await h.step(250);
    // random = 0.5 → the first 429 silences the key for 1 s: task_2, due at once, waits for it.
    expect((up.requestsFor("task_2")[0]?.at ?? 0) - silencedAt).toBe(1000);
    const times = up.requestsFor("task_1").map((r) => r.at);
    expect(times.slice(1).every((at, i) => at - (times[i] ?? 0) >= 5000)).toBe(true);
    expect(eventsOf(first).map((e) => e.type)).toEqual(["task.processing"]);
    const metric = await h.metrics.registry.getSingleMetricAsString(
      "taskhook_upstream_requests_total",
    );
    expect(metric).toContain('outcome="429"} 2');
  });
});
