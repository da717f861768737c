import { Agent, request } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { timeOutOnceArrived } from "./client-timeout.js";
import {
  completed,
  type FakeUpstream,
  type FaultSpec,
  failed,
  isoSeconds,
  mulberry32,
  processing,
  queued,
  startFakeUpstream,
  withExtra,
} from "./fake-upstream.js";

const KEY = "vpk_live_alice";
const OTHER_KEY = "vpk_live_bob";
const T0 = Date.parse("2026-01-04T12:00:00Z");
const DAY_MS = 86_400_000;

let clock: ManualClock;
let upstream: FakeUpstream;
let agent: Agent;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function get(
  taskId: string,
  key: string | null = KEY,
  /** `signal` (or `timeoutMs`) aborts the request, as a client time-out would (undici's own timers tick per second). */
  opts: {
    timeoutMs?: number;
    signal?: AbortSignal;
    authorization?: string;
    method?: "GET" | "POST";
  } = {},
): Promise<Answer> {
  const authorization = opts.authorization ?? (key === null ? undefined : `Bearer ${key}`);
  const res = await request(`${upstream.url}/v1/tasks/${taskId}`, {
    method: opts.method ?? "GET",
    headers: authorization === undefined ? {} : { authorization },
    dispatcher: agent,
    signal: opts.signal ?? AbortSignal.timeout(opts.timeoutMs ?? 5_000),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** A client that gives up once its request is in the upstream's hands. */
const patienceRunsOut = () => ({ signal: timeOutOnceArrived(() => upstream.inFlight > 0) });

async function getJson(taskId: string, key: string | null = KEY): Promise<unknown> {
  const answer = await get(taskId, key);
  return JSON.parse(answer.text);
}

/** The status a client sees, or the error code when there was no answer. */
async function outcome(taskId: string): Promise<number | string> {
  try {
    return (await get(taskId)).status;
  } catch (err) {
    return (err as { code?: string }).code ?? "error";
  }
}

beforeEach(async () => {
  clock = new ManualClock(T0);
  upstream = await startFakeUpstream({ clock });
  agent = new Agent();
});

afterEach(async () => {
  await agent.close();
  await upstream.close();
});

describe("answers in the vendor's shapes", () => {
  it("answers a queued task exactly like the documented example", async () => {
    upstream.addTask({
      taskId: "task_abc123xyz",
      apiKey: KEY,
      lifecycle: [queued(2, "2026-01-04T12:30:00Z")],
    });

    const answer = await get("task_abc123xyz");

    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/json");
    expect(answer.text).toBe(
      '{"task_id":"task_abc123xyz","status":"queued","queue_position":2,' +
        '"estimated_completion":"2026-01-04T12:30:00Z","created_at":"2026-01-04T12:00:00Z"}',
    );
  });

  it("walks a step list one answer per request, repeating the last step", async () => {
    upstream.addTask({
      taskId: "task_1",
      apiKey: KEY,
      createdAt: T0 - 60_000,
      lifecycle: [
        { answer: queued(3, T0 + 600_000), times: 2 },
        processing(T0 + 5_000),
        completed(),
      ],
    });

    const answers = [];
    for (let i = 0; i < 5; i += 1) answers.push(await getJson("task_1"));

    expect(answers.map((a) => (a as { status: string }).status)).toEqual([
      "queued",
      "queued",
      "processing",
      "completed",
      "completed",
    ]);
    expect(answers[2]).toEqual({
      task_id: "task_1",
      status: "processing",
      started_at: "2026-01-04T12:00:05Z",
      created_at: "2026-01-04T11:59:00Z",
    });
  });

  it("gives a completed task a stable completed_at and a video URL expiring 7 days later", async () => {
    upstream.addTask({ taskId: "task_done", apiKey: KEY, lifecycle: [completed()] });
    clock.advance(90_000);

    const first = await getJson("task_done");
    clock.advance(60_000);
    const second = await getJson("task_done");

    const completedAt = isoSeconds(T0 + 90_000);
    expect(first).toEqual({
      task_id: "task_done",
      status: "completed",
      completed_at: completedAt,
      result: {
        video_url: "https://cdn.vibepeak.ai/videos/task_done.mp4",
        expires_at: isoSeconds(T0 + 90_000 + 7 * DAY_MS),
      },
      created_at: isoSeconds(T0),
    });
    expect(second).toEqual(first);
  });

  it("merges a given result over the defaults", async () => {
    upstream.addTask({
      taskId: "task_r",
      apiKey: KEY,
      lifecycle: [completed({ video_url: "https://v.example/x.mp4", duration_s: 12 }, T0)],
    });

    expect(await getJson("task_r")).toMatchObject({
      completed_at: isoSeconds(T0),
      result: {
        video_url: "https://v.example/x.mp4",
        duration_s: 12,
        expires_at: isoSeconds(T0 + 7 * DAY_MS),
      },
    });
  });

  it("answers a failed task with its error object", async () => {
    const error = { code: "RENDER_FAILED", message: "Image 3 could not be decoded" };
    upstream.addTask({ taskId: "task_f", apiKey: KEY, lifecycle: [failed(error)] });

    expect(await getJson("task_f")).toEqual({
      task_id: "task_f",
      status: "failed",
      error,
      created_at: isoSeconds(T0),
    });
  });

  it("passes unknown extra fields through verbatim", async () => {
    const extra = { progress: 0.42, render: { gpu: "a100", tags: ["x", null] } };
    upstream.addTask({
      taskId: "task_x",
      apiKey: KEY,
      lifecycle: [withExtra(processing(T0), extra)],
    });

    expect(await getJson("task_x")).toEqual({
      task_id: "task_x",
      status: "processing",
      started_at: isoSeconds(T0),
      created_at: isoSeconds(T0),
      ...extra,
    });
  });
});

describe("401 and 404", () => {
  const invalidKey = { error: { code: "INVALID_API_KEY", message: "Invalid or missing API key" } };

  beforeEach(() => {
    upstream.addTask({ taskId: "task_a", apiKey: KEY, lifecycle: [queued(1, T0)] });
    upstream.addTask({ taskId: "task_b", apiKey: OTHER_KEY, lifecycle: [queued(1, T0)] });
  });

  it("refuses a missing, malformed or unknown key with INVALID_API_KEY", async () => {
    const answers = [
      await get("task_a", null),
      await get("task_a", null, { authorization: `Basic ${KEY}` }),
      await get("task_a", "vpk_live_nobody"),
    ];

    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.text)).toEqual(invalidKey);
    }
  });

  it("refuses a revoked key", async () => {
    upstream.revokeKey(KEY);

    expect((await get("task_a")).status).toBe(401);
  });

  it("accepts a key that owns no task, and answers it TASK_NOT_FOUND", async () => {
    upstream.addKey("vpk_live_new");

    const answer = await get("task_a", "vpk_live_new");

    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toEqual({
      error: { code: "TASK_NOT_FOUND", message: "Task task_a not found" },
    });
  });

  it("answers TASK_NOT_FOUND for an unknown task and for another key's task alike", async () => {
    const unknown = await get("task_zzz");
    const foreign = await get("task_b");

    expect(unknown.status).toBe(404);
    expect(foreign.status).toBe(404);
    expect(JSON.parse(foreign.text)).toEqual({
      error: { code: "TASK_NOT_FOUND", message: "Task task_b not found" },
    });
    expect((await get("task_b", OTHER_KEY)).status).toBe(200);
  });

  it("answers TASK_NOT_FOUND once a task is removed", async () => {
    upstream.removeTask("task_a");

    expect((await get("task_a")).status).toBe(404);
  });

  it("answers other routes 404 NOT_FOUND and other methods 405", async () => {
    const route = await request(`${upstream.url}/v1/other`, { dispatcher: agent });
    const post = await get("task_a", KEY, { method: "POST" });

    expect(route.statusCode).toBe(404);
    expect(await route.body.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
    expect(post.status).toBe(405);
  });
});

describe("timelines on the injected clock", () => {
  it("moves the task along as the ManualClock advances", async () => {
    upstream.addTask({
      taskId: "task_t",
      apiKey: KEY,
      lifecycle: {
        timeline: [
          { atMs: 30_000, state: completed() },
          { atMs: 0, state: queued(1, T0 + 30_000) },
          { atMs: 10_000, state: processing(T0 + 10_000) },
        ],
      },
    });

    const seen: string[] = [];
    for (const at of [0, 9_999, 10_000, 29_999, 30_000, 90_000]) {
      clock.set(T0 + at);
      seen.push(await status("task_t"));
    }

    expect(seen).toEqual([
      "queued",
      "queued",
      "processing",
      "processing",
      "completed",
      "completed",
    ]);
    expect(upstream.requests.map((r) => r.at - T0)).toEqual([
      0, 9_999, 10_000, 29_999, 30_000, 90_000,
    ]);
  });

  it("answers the status at the recorded arrival, however far the clock has moved by the answer", async () => {
    // Every read of this clock is a millisecond later than the one before (a busy machine).
    let now = T0;
    const ticking = await startFakeUpstream({ clock: { now: () => now++ } });
    try {
      const addedAt = ticking.addTask({
        taskId: "task_edge",
        apiKey: KEY,
        lifecycle: {
          timeline: [
            { atMs: 0, state: queued(1, T0 + 60_000) },
            { atMs: 10_000, state: processing(T0 + 10_000) },
          ],
        },
      });
      expect(addedAt).toBe(T0);
      now = addedAt + 9_999;
      const res = await request(`${ticking.url}/v1/tasks/task_edge`, {
        headers: { authorization: `Bearer ${KEY}` },
        dispatcher: agent,
      });

      expect(((await res.body.json()) as { status: string }).status).toBe("queued");
      expect(ticking.requests[0]?.at).toBe(addedAt + 9_999);
    } finally {
      await ticking.close();
    }
  });

  it("answers the first entry before its time comes", async () => {
    upstream.addTask({
      taskId: "task_late",
      apiKey: KEY,
      lifecycle: { timeline: [{ atMs: 5_000, state: queued(9, T0 + 60_000) }] },
    });

    expect(await status("task_late")).toBe("queued");
  });
});

async function status(taskId: string): Promise<string> {
  return ((await getJson(taskId)) as { status: string }).status;
}

describe("faults a client can observe", () => {
  beforeEach(() => {
    upstream.addTask({ taskId: "task_a", apiKey: KEY, lifecycle: [queued(1, T0)] });
  });

  it("answers 429 with Retry-After in seconds, as an HTTP date, or without it", async () => {
    upstream.failNext(1, { kind: "429", retryAfterS: 30 });
    upstream.failNext(1, { kind: "429", retryAfterS: 30, retryAfterFormat: "http-date" });
    upstream.failNext(1, "429");

    const seconds = await get("task_a");
    const date = await get("task_a");
    const bare = await get("task_a");

    for (const answer of [seconds, date, bare]) {
      expect(answer.status).toBe(429);
      expect(JSON.parse(answer.text)).toMatchObject({ error: { code: "RATE_LIMIT_EXCEEDED" } });
    }
    expect(seconds.headers["retry-after"]).toBe("30");
    expect(date.headers["retry-after"]).toBe("Sun, 04 Jan 2026 12:00:30 GMT");
    expect(bare.headers["retry-after"]).toBeUndefined();
  });

  it("answers 500 with a JSON envelope and 502/503 with a gateway's HTML page", async () => {
    upstream.failNext(1, "500");
    upstream.failNext(1, "502");
    upstream.failNext(1, "503");

    const [five, bad, unavailable] = [
      await get("task_a"),
      await get("task_a"),
      await get("task_a"),
    ];

    expect(five.status).toBe(500);
    expect(JSON.parse(five.text)).toMatchObject({ error: { code: "INTERNAL_ERROR" } });
    expect(bad.status).toBe(502);
    expect(bad.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(bad.text).toContain("502 Bad Gateway");
    expect(unavailable.status).toBe(503);
    expect(unavailable.text).toContain("503 Service Temporarily Unavailable");
  });

  it("resets the socket without an answer", async () => {
    upstream.failNext(1, "reset");

    await expect(get("task_a")).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
    expect(upstream.requests[0]).toMatchObject({ status: "reset", fault: "reset" });
    expect((await get("task_a")).status).toBe(200);
  });

  it("sends a 200 whose JSON body is cut in half", async () => {
    upstream.failNext(1, "truncated");

    const answer = await get("task_a");

    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/json");
    expect(answer.headers["content-length"]).toBe(String(answer.text.length));
    expect(answer.text.startsWith('{"task_id":"task_a"')).toBe(true);
    expect(() => JSON.parse(answer.text)).toThrow(SyntaxError);
  });

  it("sends a 200 with HTML instead of JSON", async () => {
    upstream.failNext(1, "not-json");

    const answer = await get("task_a");

    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(() => JSON.parse(answer.text)).toThrow(SyntaxError);
  });

  it("answers too slowly for a client time-out, and records the request as aborted", async () => {
    upstream.failNext(1, { kind: "slow", delayMs: 10_000 });

    await expect(get("task_a", KEY, patienceRunsOut())).rejects.toMatchObject({
      name: "TimeoutError",
    });
    await expect.poll(() => upstream.requests[0]?.status).toBe("aborted");
    expect(upstream.requests[0]?.fault).toBe("slow");
    expect(upstream.inFlight).toBe(0);
  });

  it("answers normally after the delay when the client is patient", async () => {
    upstream.failNext(1, { kind: "slow", delayMs: 30 });

    const answer = await get("task_a");

    expect(answer.status).toBe(200);
    expect(upstream.requests[0]).toMatchObject({ status: 200, fault: "slow" });
  });

  it("hits any request with failNext, before the key or the task is even checked", async () => {
    upstream.failNext(3, "503");

    const statuses = [
      (await get("task_a")).status,
      (await get("task_unknown")).status,
      (await get("task_a", "vpk_live_nobody")).status,
      (await get("task_a")).status,
    ];

    expect(statuses).toEqual([503, 503, 503, 200]);
  });
});

describe("faults and lifecycle steps", () => {
  it("does not consume a step on a global fault or an unanswered request", async () => {
    upstream.addTask({
      taskId: "task_s",
      apiKey: KEY,
      lifecycle: [queued(1, T0), processing(T0)],
    });
    upstream.failNext(2, "503");
    upstream.failNext(1, { kind: "slow", delayMs: 10_000 });

    expect(await outcome("task_s")).toBe(503);
    expect(await outcome("task_s")).toBe(503);
    await expect(get("task_s", KEY, patienceRunsOut())).rejects.toMatchObject({
      name: "TimeoutError",
    });
    await expect.poll(() => upstream.requests[2]?.status).toBe("aborted");

    expect(await status("task_s")).toBe("queued");
    expect(await status("task_s")).toBe("processing");
  });

  it("consumes fault steps like any other step", async () => {
    upstream.addTask({
      taskId: "task_s",
      apiKey: KEY,
      lifecycle: [queued(1, T0), { fault: "500", times: 2 }, processing(T0)],
    });

    const seen = [];
    for (let i = 0; i < 4; i += 1) seen.push(await outcome("task_s"));

    expect(seen).toEqual([200, 500, 500, 200]);
    expect(await status("task_s")).toBe("processing");
  });

  it("a slow step is spent even when the client gives up, then the task answers", async () => {
    upstream.addTask({
      taskId: "task_s",
      apiKey: KEY,
      lifecycle: [{ fault: { kind: "slow", delayMs: 10_000 } }, queued(4, T0)],
    });

    await expect(get("task_s", KEY, patienceRunsOut())).rejects.toMatchObject({
      name: "TimeoutError",
    });

    expect(await status("task_s")).toBe("queued");
  });

  it("refuses a lifecycle with nothing to answer", () => {
    expect(() => upstream.addTask({ taskId: "t", apiKey: KEY, lifecycle: [] })).toThrow(
      /at least one/,
    );
    expect(() =>
      upstream.addTask({
        taskId: "t",
        apiKey: KEY,
        lifecycle: [{ fault: { kind: "slow", delayMs: 1 } }],
      }),
    ).toThrow(/slow step/);
  });
});

describe("seeded fault rate", () => {
  const kinds: FaultSpec[] = ["429", "503", "reset", "not-json"];

  async function run(seed: number): Promise<Array<number | string>> {
    upstream.setFaultRate(0.4, kinds, seed);
    const seen: Array<number | string> = [];
    for (let i = 0; i < 40; i += 1) seen.push(await outcome("task_a"));
    return seen;
  }

  it("replays the same fault sequence for the same seed", async () => {
    upstream.addTask({ taskId: "task_a", apiKey: KEY, lifecycle: [queued(1, T0)] });

    const first = await run(7);
    const again = await run(7);
    const other = await run(8);

    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    expect(first).toContain(200);
    expect(first.filter((s) => s !== 200).length).toBeGreaterThan(5);
    expect(new Set(first)).toEqual(new Set([200, 429, 503, "UND_ERR_SOCKET"]));
  });

  it("turns off with a rate of 0 or clearFaults", async () => {
    upstream.addTask({ taskId: "task_a", apiKey: KEY, lifecycle: [queued(1, T0)] });
    upstream.setFaultRate(1, ["503"], 1);
    expect(await outcome("task_a")).toBe(503);

    upstream.setFaultRate(0, ["503"], 1);
    expect(await outcome("task_a")).toBe(200);

    upstream.setFaultRate(1, ["503"], 1);
    upstream.failNext(5, "500");
    upstream.clearFaults();
    expect(await outcome("task_a")).toBe(200);
  });

  it("mulberry32 is deterministic and stays in [0, 1)", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1_000 }, () => a());

    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(new Set(xs).size).toBe(1_000);
  });
});

describe("request log", () => {
  beforeEach(() => {
    upstream.addTask({ taskId: "task_a", apiKey: KEY, lifecycle: [queued(1, T0)] });
    upstream.addTask({ taskId: "task_b", apiKey: OTHER_KEY, lifecycle: [queued(1, T0)] });
  });

  it("records every request with its clock time, task, key and status", async () => {
    await get("task_a");
    clock.advance(1_500);
    await get("task_b");
    await get("task_a", null);
    await request(`${upstream.url}/health`, { dispatcher: agent }).then((r) => r.body.dump());
    await request(`${upstream.url}/gw/two/v1/tasks/task_a`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${KEY}` },
    }).then((r) => r.body.dump());

    expect(upstream.requests).toEqual([
      { at: T0, path: "/v1/tasks/task_a", taskId: "task_a", apiKey: KEY, status: 200 },
      { at: T0 + 1_500, path: "/v1/tasks/task_b", taskId: "task_b", apiKey: KEY, status: 404 },
      { at: T0 + 1_500, path: "/v1/tasks/task_a", taskId: "task_a", apiKey: null, status: 401 },
      { at: T0 + 1_500, path: "/health", taskId: null, apiKey: null, status: 404 },
      {
        at: T0 + 1_500,
        path: "/gw/two/v1/tasks/task_a",
        taskId: "task_a",
        apiKey: KEY,
        status: 200,
      },
    ]);
    expect(upstream.requestsFor("task_a")).toHaveLength(3);

    upstream.reset();
    expect(upstream.requests).toEqual([]);
  });

  it("finds the busiest window, its end excluded, optionally filtered", async () => {
    for (const at of [0, 100, 900, 950, 1_000, 2_500]) {
      clock.set(T0 + at);
      await get(at === 950 ? "task_b" : "task_a", at === 950 ? OTHER_KEY : KEY);
    }

    expect(upstream.maxInWindow(1_000)).toBe(4);
    expect(upstream.maxInWindow(1_001)).toBe(5);
    expect(upstream.maxInWindow(1)).toBe(1);
    expect(upstream.maxInWindow(1_000, (r) => r.apiKey === KEY)).toBe(3);
    expect(upstream.maxInWindow(10_000, (r) => r.taskId === "nope")).toBe(0);
  });

  it("counts requests in flight and the peak", async () => {
    // Held until all three are in: the test lets them go, not a delay that a slow machine outlasts.
    upstream.failNext(3, { kind: "slow", delayMs: 10_000 });
    const client = new AbortController();

    const pending = [1, 2, 3].map(() =>
      get("task_a", KEY, { signal: client.signal }).catch((e) => e),
    );
    await expect.poll(() => upstream.inFlight).toBe(3);
    client.abort();
    await Promise.all(pending);

    expect(upstream.maxInFlight).toBe(3);
    await expect.poll(() => upstream.inFlight).toBe(0);
    upstream.reset();
    expect(upstream.maxInFlight).toBe(0);
  });
});

describe("closing", () => {
  it("closes promptly despite a keep-alive connection, and can be closed twice", async () => {
    upstream.addTask({ taskId: "task_a", apiKey: KEY, lifecycle: [queued(1, T0)] });
    await get("task_a");

    const closing = upstream.close().then(() => "closed");
    const timeout = new Promise((resolve) => setTimeout(() => resolve("timed out"), 2_000));

    expect(await Promise.race([closing, timeout])).toBe("closed");
    await expect(upstream.close()).resolves.toBeUndefined();
  });

  it("closes while a slow answer is pending", async () => {
    upstream.addTask({ taskId: "task_a", apiKey: KEY, lifecycle: [queued(1, T0)] });
    upstream.failNext(1, { kind: "slow", delayMs: 60_000 });
    const pending = get("task_a");
    await expect.poll(() => upstream.inFlight).toBe(1);

    await upstream.close();

    await expect(pending).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
  });
});
