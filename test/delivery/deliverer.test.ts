import { afterEach, describe, expect, it, vi } from "vitest";
import { DELIVERY_GATHER_MS } from "../../src/delivery/deliverer.js";
import { encryptSecret, hashApiKey } from "../../src/domain/crypto.js";
import { ADMIN, KEY_A, KEY_B } from "../support/context.js";
import { processing } from "../support/fake-upstream.js";
import { redirect } from "../support/receiver.js";
import {
  attemptsOf,
  closeWorlds,
  onlyDelivery,
  startWorld,
  type World,
  watchTask,
} from "./helpers.js";

const SCHEDULE = { DELIVERY_RETRY_SCHEDULE: "0s,5s,10s" };
const admin = { key: null, headers: { authorization: `Bearer ${ADMIN}` } };

afterEach(closeWorlds);

/** One watch on a processing task, polled once: one event, its delivery due now. */
async function oneEvent(w: World, path = "/hook") {
  const watch = await watchTask(w, "task_1", path, {
    lifecycle: [processing(w.t.clock.now())],
  });
  await w.s.step();
  return watch;
}

describe("retries", () => {
  it("follow the schedule from each attempt, keep the webhook-id, then fail for good and stay visible", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const t0 = t.clock.now();
    const watch = await oneEvent(w);
    rx.respondWith(500);

    await d.step();
    await d.step(4_999);
    expect(rx.requests).toHaveLength(1);
    await d.step(1);
    expect(rx.requests).toHaveLength(2);
    await d.step(9_999);
    expect(rx.requests).toHaveLength(2);
    await d.step(1);
    await d.step(7 * 24 * 3_600_000);

    expect(rx.requests.map((r) => r.at - t0)).toEqual([0, 5_000, 15_000]);
    const ids = new Set(rx.requests.map((r) => r.headers["webhook-id"]));
    expect(ids.size).toBe(1);

    const delivery = onlyDelivery(t, watch.id);
    expect(delivery).toMatchObject({ status: "failed", attempts: 3 });

    const failed = await t.call("GET", "/admin/deliveries?status=failed", admin);
    expect(failed.status).toBe(200);
    expect(failed.body.data).toEqual([
      expect.objectContaining({
        id: delivery.id,
        event_id: [...ids][0],
        watch_id: watch.id,
        status: "failed",
        attempts: 3,
        next_attempt_at: null,
        last_attempt_at: new Date(t0 + 15_000).toISOString(),
        last_status_code: 500,
        last_error: "HTTP 500",
      }),
    ]);
    const pending = await t.call("GET", "/admin/deliveries?status=pending", admin);
    expect(pending.body.data).toEqual([]);

    const events = await t.call("GET", `/v1/watches/${watch.id}/events`);
    expect(events.status).toBe(200);
    const [event] = events.body.data;
    expect(event.id).toBe([...ids][0]);
    expect(event.delivery.id).toBe(delivery.id);
    expect(event.delivery.status).toBe("failed");
    expect(event.delivery.attempts).toEqual(
      [0, 5_000, 15_000].map((offset) => ({
        at: new Date(t0 + offset).toISOString(),
        status_code: 500,
        duration_ms: expect.any(Number),
        error: "HTTP 500",
      })),
    );
    for (const a of event.delivery.attempts) {
      expect(a.duration_ms).toBeGreaterThanOrEqual(0);
      expect(a.duration_ms).toBeLessThan(1_000);
    }
  });

  it("are delivered on a later attempt, which ends the retries", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const watch = await oneEvent(w);
    rx.respondWith(503, 1);

    await d.step();
    await d.step(5_000);
    await d.step(60_000);

    expect(rx.requests).toHaveLength(2);
    const delivery = onlyDelivery(t, watch.id);
    expect(delivery).toMatchObject({ status: "delivered", attempts: 2 });
    expect(attemptsOf(t, delivery.id).map((a) => [a.status_code, a.error])).toEqual([
      [503, "HTTP 503"],
      [200, null],
    ]);
  });

  it.each([
    { random: 0, delay: 4_500 },
    { random: 0.999_999, delay: 5_500 },
  ])("are jittered by ±10 % (random $random → $delay ms)", async ({ random, delay }) => {
    const w = await startWorld({ env: SCHEDULE, random: () => random });
    const { d, rx } = w;
    await oneEvent(w);
    rx.respondWith(500, 1);

    await d.step();
    await d.step(delay - 1);
    expect(rx.requests).toHaveLength(1);
    await d.step(1);
    expect(rx.requests).toHaveLength(2);
  });

  it("keep the first 1 KiB of each answer's body, cut on a character boundary", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const watch = await oneEvent(w);
    const ascii = "x".repeat(5_000);
    const euros = "€".repeat(2_000); // 3 bytes each: 1024 is not a boundary
    rx.enqueue([
      { status: 500, body: ascii },
      { status: 500, body: euros },
      { status: 200, body: "thanks" },
    ]);

    await d.step();
    await d.step(5_000);
    await d.step(10_000);

    const bodies = attemptsOf(t, onlyDelivery(t, watch.id).id).map((a) => a.response_body ?? "");
    expect(bodies).toHaveLength(3);
    const [first, second, third] = bodies;
    expect(first).toBe(ascii.slice(0, 1024));
    expect(Buffer.byteLength(second ?? "")).toBeLessThanOrEqual(1024);
    expect(second).toBe("€".repeat(341));
    expect(third).toBe("thanks");
  });
});

describe("answers that are failures", () => {
  it.each([301, 302, 307, 308])(
    "a %i is a failure and its Location is not requested",
    async (status) => {
      const w = await startWorld({ env: SCHEDULE });
      const { t, d, rx } = w;
      const watch = await oneEvent(w);
      rx.enqueue(redirect(`${rx.url}/elsewhere`, status));

      await d.step();
      expect(rx.requestsTo("/elsewhere")).toEqual([]);
      const delivery = onlyDelivery(t, watch.id);
      expect(delivery).toMatchObject({ status: "pending", attempts: 1 });
      expect(attemptsOf(t, delivery.id)).toEqual([
        expect.objectContaining({
          status_code: status,
          error: `HTTP ${status}: redirects are not followed`,
        }),
      ]);

      await d.step(5_000);
      expect(rx.requests.map((r) => r.path)).toEqual(["/hook", "/hook"]);
      expect(onlyDelivery(t, watch.id).status).toBe("delivered");
    },
  );

  it.each([
    { name: "an answer slower than the time-out", action: { status: 200, delayMs: 5_000 } },
    { name: "an endpoint that never answers", action: "hang" as const },
  ])("$name is a time-out, retried later", async ({ action }) => {
    const w = await startWorld({ env: SCHEDULE, deliverer: { timeoutMs: 1_000 } });
    const { t, d, rx } = w;
    const watch = await oneEvent(w);
    rx.enqueue(action);

    const started = performance.now();
    await d.step();
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(4_000);

    const delivery = onlyDelivery(t, watch.id);
    expect(delivery).toMatchObject({ status: "pending", attempts: 1 });
    const [attempt] = attemptsOf(t, delivery.id);
    expect(attempt?.status_code).toBeNull();
    expect(attempt?.error).toMatch(/timeout/i);
    expect(attempt?.duration_ms).toBeGreaterThanOrEqual(950);

    await d.step(5_000);
    expect(rx.requests).toHaveLength(2);
    expect(onlyDelivery(t, watch.id).status).toBe("delivered");
  });

  it("a refused connection is recorded with its error and retried", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const watch = await oneEvent(w);
    await rx.down();

    await d.step();
    const delivery = onlyDelivery(t, watch.id);
    expect(attemptsOf(t, delivery.id)).toEqual([
      expect.objectContaining({ status_code: null, error: expect.stringMatching(/ECONNREFUSED/) }),
    ]);

    await rx.up();
    await d.step(5_000);
    expect(onlyDelivery(t, watch.id).status).toBe("delivered");
  });
});

describe("Retry-After", () => {
  it.each([429, 503])("on a %i lengthens the next delay", async (status) => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const t0 = t.clock.now();
    const watch = await oneEvent(w);
    rx.enqueue({ status, headers: { "retry-after": "60" }, body: "slow down" });

    await d.step();
    await d.step(5_000);
    await d.step(54_999);
    expect(rx.requests).toHaveLength(1);
    await d.step(1);
    expect(rx.requests.map((r) => r.at - t0)).toEqual([0, 60_000]);
    expect(onlyDelivery(t, watch.id).status).toBe("delivered");
  });

  it("as an HTTP date counts from the attempt", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const t0 = t.clock.now();
    await oneEvent(w);
    rx.enqueue({ status: 429, headers: { "retry-after": new Date(t0 + 120_000).toUTCString() } });

    await d.step();
    await d.step(119_999);
    expect(rx.requests).toHaveLength(1);
    await d.step(1);
    expect(rx.requests.map((r) => r.at - t0)).toEqual([0, 120_000]);
  });

  it("never shortens the schedule, and is ignored on other statuses", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const t0 = t.clock.now();
    await oneEvent(w);
    rx.enqueue([
      { status: 429, headers: { "retry-after": "1" } },
      { status: 500, headers: { "retry-after": "600" } },
    ]);

    await d.step();
    await d.step(1_000);
    await d.step(4_000);
    await d.step(10_000);
    expect(rx.requests.map((r) => r.at - t0)).toEqual([0, 5_000, 15_000]);
  });
});

describe("under load", () => {
  it("waits, at most DELIVERY_GATHER_MS after its last claim, for half of the slots before it records and claims again", async () => {
    const w = await startWorld({ deliverer: { concurrency: 8 } });
    const { t, d, rx } = w;
    const watches: Array<{ id: string }> = [];
    for (let i = 0; i < 10; i++) {
      watches.push(
        await watchTask(w, `task_${i}`, `/hook/${i}`, { lifecycle: [processing(t.clock.now())] }),
      );
    }
    await w.s.step();
    // Three attempts are answered at once, the five others hang: three slots of eight free.
    const ok = { status: 200 };
    rx.enqueue([ok, ok, ok, "hang", "hang", "hang", "hang", "hang"]);
    await d.deliverer.tick();
    await rx.waitFor(8);
    const finished = async () =>
      (
        await d.metrics.registry.getSingleMetricAsString(
          "taskhook_delivery_attempt_duration_seconds",
        )
      ).match(/_count (\d+)/)?.[1];
    await vi.waitFor(async () => expect(await finished()).toBe("3"));
    const answered = rx.requests[0]?.path ?? "";
    const watchOf = (path: string) => watches[Number(path.split("/").pop())]?.id ?? "";

    // Fewer than half free and within the window since the claim: nothing recorded, nothing claimed.
    t.clock.advance(1);
    expect(await d.deliverer.tick()).toBe(DELIVERY_GATHER_MS - 1);
    t.clock.advance(DELIVERY_GATHER_MS - 2);
    expect(await d.deliverer.tick()).toBe(1);
    expect(rx.requests).toHaveLength(8);
    expect(onlyDelivery(t, watchOf(answered)).status).toBe("pending");

    // The window after the claim: the finished attempts are recorded and their slots refilled.
    t.clock.advance(1);
    await d.deliverer.tick();
    expect(onlyDelivery(t, watchOf(answered)).status).toBe("delivered");
    await rx.waitFor(10);
  });
});

describe("a tenant whose signing secret no longer decrypts", () => {
  it("waits alone: the other tenants' webhooks of the same tick go out", async () => {
    const w = await startWorld();
    const { t, d, rx } = w;
    const lifecycle = [processing(t.clock.now())];
    await watchTask(w, "task_a", "/a", { lifecycle, key: KEY_A });
    const b = await watchTask(w, "task_b", "/b", { lifecycle, key: KEY_B });
    await w.s.step();
    // KEY_A's secret as if sealed with another ENCRYPTION_KEY.
    t.db.$client
      .prepare("UPDATE tenants SET signing_secret_enc = ? WHERE id = ?")
      .run(encryptSecret(Buffer.alloc(32, 7), "whsec_AAAA"), hashApiKey(KEY_A));

    await d.step();
    expect(rx.requests.map((r) => r.path)).toEqual(["/b"]);
    expect(onlyDelivery(t, b.id).status).toBe("delivered");
    expect(t.logLines.some((l) => l.includes("signing secret unreadable"))).toBe(true);
  });
});
