import { afterEach, describe, expect, it } from "vitest";
import { ADMIN, KEY_B } from "../support/context.js";
import { processing } from "../support/fake-upstream.js";
import {
  attemptsOf,
  closeWorlds,
  onlyDelivery,
  secretOf,
  startWorld,
  verifyBoth,
  type World,
  watchTask,
} from "./helpers.js";

const SCHEDULE = { DELIVERY_RETRY_SCHEDULE: "0s,5s" };
const asAdmin = { key: null, headers: { authorization: `Bearer ${ADMIN}` } };

afterEach(closeWorlds);

/** One event whose delivery failed for good (two 500s). */
async function failedDelivery(w: World) {
  const watch = await watchTask(w, "task_r", "/hook", {
    lifecycle: [processing(w.t.clock.now())],
  });
  w.rx.respondWith(500, 2);
  await w.s.step();
  await w.d.step();
  await w.d.step(5_000);
  const delivery = onlyDelivery(w.t, watch.id);
  expect(delivery).toMatchObject({ status: "failed", attempts: 2 });
  return { watch, delivery };
}

describe.each([
  { route: "POST /v1/deliveries/{id}/retry", path: "/v1/deliveries", options: {} },
  { route: "POST /admin/deliveries/{id}/retry", path: "/admin/deliveries", options: asAdmin },
])("$route", ({ path, options }) => {
  it("queues a failed delivery now with a fresh attempt count; it is delivered with the same webhook-id", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const { watch, delivery } = await failedDelivery(w);
    t.clock.advance(3_600_000);

    const res = await t.call("POST", `${path}/${delivery.id}/retry`, options);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: delivery.id, status: "pending" });
    expect(onlyDelivery(t, watch.id)).toMatchObject({
      status: "pending",
      attempts: 0,
      next_attempt_at: t.clock.now(),
    });

    await d.step();

    const [first, , replayed] = rx.requests;
    expect(rx.requests).toHaveLength(3);
    expect(replayed?.at).toBe(t.clock.now());
    expect(replayed?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
    expect(replayed?.body).toBe(first?.body);
    if (replayed) verifyBoth(await secretOf(t), replayed);
    expect(onlyDelivery(t, watch.id)).toMatchObject({ status: "delivered", attempts: 1 });
    expect(attemptsOf(t, delivery.id).map((a) => a.status_code)).toEqual([500, 500, 200]);
  });

  it("restarts the retry schedule from its first step", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const { watch, delivery } = await failedDelivery(w);
    rx.respondWith(500);
    const replayedAt = t.clock.now() + 60_000;
    t.clock.set(replayedAt);

    expect((await t.call("POST", `${path}/${delivery.id}/retry`, options)).status).toBe(202);
    await d.step();
    await d.step(5_000);
    await d.step(60_000);

    expect(rx.requests.slice(2).map((r) => r.at - replayedAt)).toEqual([0, 5_000]);
    expect(onlyDelivery(t, watch.id)).toMatchObject({ status: "failed", attempts: 2 });
  });

  it("sends a delivered one again, whatever its state", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const watch = await watchTask(w, "task_r", "/hook", {
      lifecycle: [processing(t.clock.now())],
    });
    await w.s.step();
    await d.step();
    const delivery = onlyDelivery(t, watch.id);
    expect(delivery.status).toBe("delivered");

    expect((await t.call("POST", `${path}/${delivery.id}/retry`, options)).status).toBe(202);
    await d.step();

    expect(rx.requests).toHaveLength(2);
    expect(rx.requests[1]?.headers["webhook-id"]).toBe(rx.requests[0]?.headers["webhook-id"]);
  });

  it("answers 404 for an unknown delivery", async () => {
    const w = await startWorld();
    const res = await w.t.call("POST", `${path}/dlv_01JGZ3V5S8W9K2M4N6P8Q0R2T4/retry`, options);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("NOT_FOUND");
  });
});

describe("tenant and operator scoping", () => {
  it("another tenant's replay answers 404, exactly as a missing delivery, and changes nothing", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t, d, rx } = w;
    const { watch, delivery } = await failedDelivery(w);

    const foreign = await t.call("POST", `/v1/deliveries/${delivery.id}/retry`, { key: KEY_B });
    const missing = await t.call("POST", "/v1/deliveries/dlv_01JGZ3V5S8W9K2M4N6P8Q0R2T4/retry", {
      key: KEY_B,
    });
    expect(foreign.status).toBe(404);
    expect(foreign.body).toEqual(missing.body);
    await d.step(60_000);
    expect(rx.requests).toHaveLength(2);
    expect(onlyDelivery(t, watch.id)).toMatchObject({ status: "failed", attempts: 2 });
  });

  it("refuses the client route without a key and the admin route without the token", async () => {
    const w = await startWorld({ env: SCHEDULE });
    const { t } = w;
    const { delivery } = await failedDelivery(w);

    const anonymous = await t.call("POST", `/v1/deliveries/${delivery.id}/retry`, { key: null });
    const wrongToken = await t.call("POST", `/admin/deliveries/${delivery.id}/retry`, {
      key: null,
      headers: { authorization: "Bearer not-the-admin-token-at-all" },
    });
    const clientKey = await t.call("POST", `/admin/deliveries/${delivery.id}/retry`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe("UNAUTHORIZED");
    expect(wrongToken.status).toBe(401);
    expect(clientKey.status).toBe(401);
    expect(onlyDelivery(t, delivery.watch_id).status).toBe("failed");
  });
});

it("a replay of an attempt in flight sends again; the late outcome of the old claim is not applied", async () => {
  const w = await startWorld({ env: SCHEDULE, deliverer: { timeoutMs: 1_000 } });
  const { t, d, rx } = w;
  const watch = await watchTask(w, "task_r", "/hook", {
    lifecycle: [processing(t.clock.now())],
  });
  await w.s.step();
  rx.enqueue("hang");
  await d.deliverer.tick();
  await rx.waitFor(1, 1_000);
  const delivery = onlyDelivery(t, watch.id);

  t.clock.advance(1_000);
  expect((await t.call("POST", `/v1/deliveries/${delivery.id}/retry`)).status).toBe(202);
  await d.step();

  expect(rx.requests).toHaveLength(2);
  expect(onlyDelivery(t, watch.id)).toMatchObject({ status: "delivered", attempts: 1 });
  const attempts = attemptsOf(t, delivery.id);
  expect(attempts.map((a) => a.status_code)).toEqual([200, null]);
  expect(attempts[1]?.error).toMatch(/timeout/);
});
