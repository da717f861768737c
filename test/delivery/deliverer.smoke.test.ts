import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, expect, it } from "vitest";
import { createTestContext, KEY_A, type TestContext } from "../support/context.js";
import { type DelivererHarness, delivererFor } from "../support/deliverer.js";
import {
  completed,
  type FakeUpstream,
  processing,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { type Receiver, startReceiver } from "../support/receiver.js";
import { type SchedulerHarness, schedulerFor } from "../support/scheduler.js";

let t: TestContext;
let up: FakeUpstream;
let rx: Receiver;
let s: SchedulerHarness;
let d: DelivererHarness;

beforeEach(async () => {
  t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "true" });
  up = await startFakeUpstream({ clock: t.clock });
  rx = await startReceiver();
  s = schedulerFor(t, up.url);
  d = delivererFor(t);
});

afterEach(async () => {
  await s.close();
  await d.close();
  await rx.close();
  await up.close();
});

it("polls, records and delivers signed webhooks in order", async () => {
  up.addTask({
    taskId: "task_1",
    apiKey: KEY_A,
    lifecycle: [processing(t.clock.now()), completed()],
  });
  const res = await t.call("POST", "/v1/watches", {
    body: { task_id: "task_1", callback_url: `${rx.url}/hook` },
  });
  expect(res.status).toBe(201);
  await s.step();
  await d.step();
  await s.step(5000);
  await d.step();
  expect(rx.requests.map((r) => (r.json as any)?.type)).toEqual([
    "task.processing",
    "task.completed",
  ]);
  const secret = (await t.call("GET", "/v1/signing-secret")).body.secret;
  const wh = new Webhook(secret);
  for (const r of rx.requests) {
    const headers = r.headers as Record<string, string>;
    const ts = Number(headers["webhook-timestamp"]);
    expect(Math.abs(ts * 1000 - t.clock.now())).toBeLessThan(10_000);
    expect(headers["user-agent"]).toMatch(/^taskhook\//);
    // verify with the clock of the attempt
    const realNow = Date.now;
    Date.now = () => ts * 1000;
    try {
      expect(() => wh.verify(r.body, headers)).not.toThrow();
    } finally {
      Date.now = realNow;
    }
  }
  const events = await t.call("GET", `/v1/watches/${res.body.id}/events`);
  expect(events.body.data.map((e: any) => e.delivery.status)).toEqual(["delivered", "delivered"]);
  expect(events.body.data[0].delivery.attempts[0].status_code).toBe(200);
});
