import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { Agent, request } from "undici";
import { afterEach, beforeEach, expect, it } from "vitest";
import { systemClock } from "../../src/clock.js";
import { loadConfig } from "../../src/config.js";
import { createService, type Service } from "../../src/service.js";
import { VERSION } from "../../src/version.js";
import { KEY_A, memoryLogger } from "../support/context.js";
import {
  completed,
  type FakeUpstream,
  processing,
  queued,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { type Receiver, startReceiver } from "../support/receiver.js";

/**
 * The whole service as src/main.ts composes it (`createService`), on the real clock and real
 * sockets: the API over HTTP, the scheduler polling a fake upstream, the deliverer POSTing to a
 * receiver.
 */

let vendor: FakeUpstream;
let rx: Receiver;
let service: Service;
let url: string;
let logLines: string[];
let client: Agent;
let timersBefore: number;

/** Open sockets and servers, and timers beyond those the test runner had before the test. */
function leftOpen(): string[] {
  const handles = process.getActiveResourcesInfo();
  const timers = handles.filter((r) => r === "Timeout").length;
  return [
    ...handles.filter((r) => r.startsWith("TCP")),
    ...Array.from({ length: Math.max(0, timers - timersBefore) }, () => "Timeout"),
  ];
}

/** A closed handle leaves the list once libuv has run its close callback: give it a few turns. */
async function settle(): Promise<string[]> {
  for (let i = 0; i < 20 && leftOpen().length > 0; i += 1)
    await new Promise((resolve) => setImmediate(resolve));
  return leftOpen();
}

async function api(method: string, path: string, body?: unknown) {
  const res = await request(`${url}${path}`, {
    method: method as "GET" | "POST",
    dispatcher: client,
    headers: {
      authorization: `Bearer ${KEY_A}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

beforeEach(async () => {
  timersBefore = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  vendor = await startFakeUpstream();
  rx = await startReceiver();
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: ":memory:",
    UPSTREAM_BASE_URL: vendor.url,
    ALLOW_PRIVATE_CALLBACKS: "true",
    POLL_INTERVAL_MIN_MS: "100",
    POLL_INTERVAL_MAX_MS: "300",
    UPSTREAM_TIMEOUT_MS: "1000",
    DELIVERY_TIMEOUT_MS: "1000",
  });
  const logs = memoryLogger("info");
  logLines = logs.lines;
  service = createService({
    config,
    logger: logs.logger,
    encryptionKey: randomBytes(32),
    clock: systemClock,
  });
  url = `http://127.0.0.1:${await service.start()}`;
  client = new Agent();
});

afterEach(async () => {
  await client.close();
  expect(await service.stop(2_000)).toBe(true);
  await rx.close();
  await vendor.close();
  expect(await settle()).toEqual([]);
});

it("a task going queued → processing → completed reaches the consumer as three signed webhooks, in order", async () => {
  const start = Date.now();
  // One status per answer: the first poll sees queued, the second processing, the third and any
  // later one completed. No status can slip between two polls, however slowly the machine runs.
  vendor.addTask({
    taskId: "task_e2e",
    apiKey: KEY_A,
    lifecycle: [queued(1, start + 1_200), processing(start + 500), completed()],
  });
  const secret = (await api("GET", "/v1/signing-secret")).body.secret as string;

  const created = await api("POST", "/v1/watches", {
    task_id: "task_e2e",
    callback_url: `${rx.url}/hooks/vibepeak`,
    metadata: { order_id: 42 },
  });
  expect(created.status).toBe(201);

  const received = await rx.waitFor(3, 10_000);
  const wh = new Webhook(secret);
  const bodies = received.map((r) => wh.verify(r.body, { ...r.headers }) as any);
  expect(bodies.map((b) => [b.type, b.data.sequence, b.data.previous_status])).toEqual([
    ["task.queued", 1, null],
    ["task.processing", 2, "queued"],
    ["task.completed", 3, "processing"],
  ]);
  for (const [i, r] of received.entries()) {
    expect(r.headers["webhook-id"]).toBe(bodies[i].data.event_id);
    expect(r.headers["user-agent"]).toBe(`taskhook/${VERSION}`);
    expect(bodies[i].data).toMatchObject({
      watch_id: created.body.id,
      task_id: "task_e2e",
      metadata: { order_id: 42 },
    });
  }
  expect(bodies[2].data.task.result.video_url).toMatch(/^https:\/\//);
  // Pushed as soon as a poll sees the change: from the upstream's answer to the consumer takes the
  // deliverer's pick-up and one POST, not another poll interval or a retry.
  const polls = vendor.requestsFor("task_e2e");
  const lateness = received.map((r, i) => r.at - (polls[i]?.at ?? Number.POSITIVE_INFINITY));
  for (const ms of lateness) expect(ms).toBeLessThan(2_000);

  const watch = await api("GET", `/v1/watches/${created.body.id}`);
  expect(watch.body).toMatchObject({ status: "done", task_status: "completed" });
  // One central poll, not a burst: at most one request per 100 ms floor (plus the first).
  expect(polls.length).toBeLessThanOrEqual(Math.ceil((Date.now() - start) / 100) + 1);
  expect(polls.every((p) => p.apiKey === KEY_A)).toBe(true);
  const events = await api("GET", `/v1/watches/${created.body.id}/events`);
  expect(events.body.data.map((e: any) => e.delivery.status)).toEqual([
    "delivered",
    "delivered",
    "delivered",
  ]);
  expect(logLines.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
});
