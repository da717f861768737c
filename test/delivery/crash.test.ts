import { afterEach, expect, it } from "vitest";
import { delivererFor } from "../support/deliverer.js";
import { processing } from "../support/fake-upstream.js";
import {
  attemptsOf,
  closeWorlds,
  onlyDelivery,
  startWorld,
  type World,
  watchTask,
} from "./helpers.js";

const TIMEOUT_MS = 300;
const LEASE_MS = TIMEOUT_MS + 5_000;
/** The successor's attempts must get their answer, however loaded the machine: only the first deliverer's attempt is meant to time out. */
const PATIENT_MS = 10_000;

afterEach(closeWorlds);

/** An event whose first attempt is in flight (the endpoint hangs) in the world's deliverer. */
async function inFlight(w: World) {
  const watch = await watchTask(w, "task_c", "/hook", {
    lifecycle: [processing(w.t.clock.now())],
  });
  await w.s.step();
  w.rx.enqueue("hang");
  await w.d.deliverer.tick();
  await w.rx.waitFor(1, 1_000);
  return watch;
}

it("sends a delivery again, same webhook-id, once the lease of a deliverer that died runs out", async () => {
  const w = await startWorld({ deliverer: { timeoutMs: TIMEOUT_MS } });
  const { t, rx } = w;
  const t0 = t.clock.now();
  const watch = await inFlight(w);
  expect(onlyDelivery(t, watch.id).lease_until).toBe(t0 + LEASE_MS);

  // The first deliverer is gone: never ticked or recorded again. A new process takes over.
  const successor = delivererFor(t, { timeoutMs: PATIENT_MS });
  w.more.push(successor);
  await successor.step();
  await successor.step(LEASE_MS - 1);
  expect(rx.requests).toHaveLength(1);
  await successor.step(1);

  const [first, second] = rx.requests;
  expect(second?.at).toBe(t0 + LEASE_MS);
  expect(second?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
  expect(second?.body).toBe(first?.body);
  const delivery = onlyDelivery(t, watch.id);
  expect(delivery).toMatchObject({ status: "delivered", attempts: 1, lease_until: null });
  expect(attemptsOf(t, delivery.id).map((a) => a.status_code)).toEqual([200]);
});

it("ignores the late outcome of an attempt whose lease ran out and was taken over", async () => {
  const w = await startWorld({ deliverer: { timeoutMs: TIMEOUT_MS } });
  const { t, rx, d } = w;
  const watch = await inFlight(w);

  const successor = delivererFor(t, { timeoutMs: PATIENT_MS });
  w.more.push(successor);
  await successor.step(LEASE_MS);
  expect(rx.requests).toHaveLength(2);

  // The first deliverer was only stalled: its attempt times out and it records it late.
  await d.deliverer.idle();

  const delivery = onlyDelivery(t, watch.id);
  expect(delivery).toMatchObject({ status: "delivered", attempts: 1 });
  const attempts = attemptsOf(t, delivery.id);
  expect(attempts.map((a) => a.status_code)).toEqual([200, null]);
  expect(attempts[1]?.error).toMatch(/timeout/);
  await d.step(60_000);
  await successor.step();
  expect(rx.requests).toHaveLength(2);
});

it("hands what is in flight back at a shutdown past its grace period: due again at once", async () => {
  const w = await startWorld({ deliverer: { timeoutMs: TIMEOUT_MS } });
  const { t, rx, d } = w;
  const watch = await inFlight(w);

  d.deliverer.release();
  expect(onlyDelivery(t, watch.id)).toMatchObject({
    status: "pending",
    lease_until: null,
    next_attempt_at: t.clock.now(),
  });
  const successor = delivererFor(t, { timeoutMs: PATIENT_MS });
  w.more.push(successor);
  await successor.step();
  expect(rx.requests).toHaveLength(2);
  expect(rx.requests[1]?.headers["webhook-id"]).toBe(rx.requests[0]?.headers["webhook-id"]);
  expect(onlyDelivery(t, watch.id).status).toBe("delivered");
});
