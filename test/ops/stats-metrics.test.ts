import { afterEach, expect, it } from "vitest";
import { ADMIN, createTestContext, KEY_A } from "../support/context.js";
import {
  type FakeUpstream,
  processing,
  queued,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { type SchedulerHarness, schedulerFor } from "../support/scheduler.js";

let up: FakeUpstream;
let h: SchedulerHarness;

afterEach(async () => {
  await h.close();
  await up.close();
});

function metric(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return Number(line?.split(" ")[1] ?? Number.NaN);
}

it("/admin/stats and /metrics report the same figures", async () => {
  const t = createTestContext();
  up = await startFakeUpstream({ clock: t.clock });
  h = schedulerFor(t, up.url);
  t.deps.metrics = h.metrics;
  t.deps.upstreamLastMinute = () => h.scheduler.recent.lastMinute(t.clock.now());

  up.addTask({ taskId: "ok", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
  up.addTask({ taskId: "queued", apiKey: KEY_A, lifecycle: [queued(3, t.clock.now() + 600_000)] });
  up.addTask({
    taskId: "flaky",
    apiKey: KEY_A,
    lifecycle: [{ fault: "503" }, processing(t.clock.now())],
  });
  for (const taskId of ["ok", "queued", "flaky", "missing"]) {
    await t.call("POST", "/v1/watches", {
      body: { task_id: taskId, callback_url: "https://example.com/h" },
    });
  }
  const cancel = await t.call("POST", "/v1/watches", {
    body: { task_id: "x", callback_url: "https://example.com/c" },
  });
  await t.call("DELETE", `/v1/watches/${cancel.body.id}`);
  await h.step();
  await h.step(6000);

  const stats = (
    await t.call("GET", "/admin/stats", {
      key: null,
      headers: { authorization: `Bearer ${ADMIN}` },
    })
  ).body;
  const res = await t.app.request("/metrics");
  const text = await res.text();

  for (const [status, n] of Object.entries(stats.watches)) {
    expect(metric(text, "taskhook_watches", `{status="${status}"}`)).toBe(n);
  }
  expect(stats.watches.active).toBe(4);
  expect(stats.watches.cancelled).toBe(1);
  expect(metric(text, "taskhook_poll_targets_due")).toBe(stats.poll_targets.due);
  expect(metric(text, "taskhook_poll_targets_overdue")).toBe(stats.poll_targets.overdue);
  expect(metric(text, "taskhook_outbox_pending_deliveries")).toBe(stats.deliveries.pending);
  expect(stats.deliveries.pending).toBeGreaterThan(0);
  expect(metric(text, "taskhook_outbox_failed_deliveries")).toBe(stats.deliveries.failed);
  expect(metric(text, "taskhook_outbox_oldest_pending_age_seconds")).toBe(
    stats.deliveries.oldest_pending_age_s,
  );
  const upstreamTotal = ["2xx", "404", "401", "429", "5xx", "timeout", "network", "bad_response"]
    .map((o) => metric(text, "taskhook_upstream_requests_total", `{outcome="${o}"}`))
    .filter((n) => !Number.isNaN(n))
    .reduce((a, b) => a + b, 0);
  expect(stats.upstream_last_minute.requests).toBe(upstreamTotal);
  expect(stats.upstream_last_minute.errors).toBe(
    upstreamTotal - metric(text, "taskhook_upstream_requests_total", '{outcome="2xx"}'),
  );
  expect(stats.upstream_last_minute.errors).toBeGreaterThan(0);
});
