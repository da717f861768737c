import { afterEach, describe, expect, it } from "vitest";
import { completed, processing } from "../support/fake-upstream.js";
import {
  attemptsOf,
  closeWorlds,
  deliveriesOf,
  json,
  onlyDelivery,
  startWorld,
  type World,
  watchTask,
} from "./helpers.js";

afterEach(closeWorlds);

const sequences = (w: World, path: string) =>
  w.rx.requestsTo(path).map((r) => json(r).data.sequence);

/** Watches A (/a) and B (/b) on two tasks that go processing → completed: two events each. */
async function twoWatches(w: World) {
  const now = w.t.clock.now();
  const a = await watchTask(w, "task_a", "/a", { lifecycle: [processing(now), completed()] });
  const b = await watchTask(w, "task_b", "/b", { lifecycle: [processing(now), completed()] });
  await w.s.step();
  return { a, b };
}

describe("order per watch", () => {
  it("holds a watch's next event until the earlier one is delivered, while other watches flow", async () => {
    const w = await startWorld({ env: { DELIVERY_RETRY_SCHEDULE: "0s,5s,10s" } });
    const { t, s, d, rx } = w;
    const { a, b } = await twoWatches(w);
    rx.respondWith(500, 2, "/a");

    await d.step();
    await s.step(5_000);
    expect(deliveriesOf(t, a.id)).toHaveLength(2);
    await d.step();
    expect(sequences(w, "/a")).toEqual([1, 1]);
    expect(sequences(w, "/b")).toEqual([1, 2]);
    expect(deliveriesOf(t, b.id).map((x) => x.status)).toEqual(["delivered", "delivered"]);

    // A's second event is due, but not before its first: nothing goes to /a until then.
    await d.step(9_999);
    await d.step();
    expect(sequences(w, "/a")).toEqual([1, 1]);
    await d.step(1);
    await d.step();
    expect(sequences(w, "/a")).toEqual([1, 1, 1, 2]);
    expect(deliveriesOf(t, a.id).map((x) => x.status)).toEqual(["delivered", "delivered"]);
  });

  it("lets the next event go once the earlier one has failed for good", async () => {
    const w = await startWorld({ env: { DELIVERY_RETRY_SCHEDULE: "0s,5s" } });
    const { t, s, d } = w;
    const { a } = await twoWatches(w);
    w.rx.respondWith(500, 2, "/a");

    await d.step();
    await s.step(5_000);
    await d.step();
    await d.step();

    expect(sequences(w, "/a")).toEqual([1, 1, 2]);
    expect(deliveriesOf(t, a.id).map((x) => [x.status, x.attempts])).toEqual([
      ["failed", 2],
      ["delivered", 1],
    ]);
  });

  it("does not let a hanging endpoint hold up another watch", async () => {
    // A's time-out is long enough that B is answered and recorded well before it, however loaded
    // the machine: the test is about B not waiting for A, not about the time-out.
    const w = await startWorld({ deliverer: { timeoutMs: 3_000 } });
    const { t, d, rx } = w;
    const { a, b } = await twoWatches(w);
    rx.enqueue("hang", "/a");

    await d.deliverer.tick();
    await rx.waitFor((rs) => rs.some((r) => r.path === "/b"), 2_500);
    // B's answer is recorded by the next ticks while A's attempt still hangs (the clock stands still).
    for (let i = 0; i < 100 && onlyDelivery(t, b.id).status !== "delivered"; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await d.deliverer.tick();
    }
    expect(onlyDelivery(t, b.id).status).toBe("delivered");
    const hanging = onlyDelivery(t, a.id);
    expect(hanging.status).toBe("pending");
    expect(attemptsOf(t, hanging.id)).toEqual([]);

    await d.deliverer.idle();
    expect(attemptsOf(t, hanging.id)[0]?.error).toMatch(/timeout/);
  });
});

describe("410 Gone", () => {
  it("fails the delivery without a retry, ends the watch CALLBACK_GONE and stops polling its task", async () => {
    const w = await startWorld();
    const { t, s, d, rx, up } = w;
    const watch = await watchTask(w, "task_g", "/gone", {
      lifecycle: [processing(t.clock.now()), completed()],
    });
    rx.respondWith(410, undefined, "/gone");

    await s.step();
    await d.step();
    await d.step(24 * 3_600_000);
    await s.step(60_000);
    await s.step(60_000);

    expect(rx.requests).toHaveLength(1);
    const delivery = onlyDelivery(t, watch.id);
    expect(delivery).toMatchObject({ status: "failed", attempts: 1 });
    expect(attemptsOf(t, delivery.id)).toEqual([
      expect.objectContaining({ status_code: 410, error: "HTTP 410" }),
    ]);
    const res = await t.call("GET", `/v1/watches/${watch.id}`);
    expect(res.body).toMatchObject({
      status: "failed",
      end_reason: "CALLBACK_GONE",
      ended_at: expect.any(String),
    });
    expect(up.requestsFor("task_g")).toHaveLength(1);
  });

  it("keeps polling the task for another watch that still needs it", async () => {
    const w = await startWorld();
    const { t, s, d, rx, up } = w;
    const gone = await watchTask(w, "task_g", "/gone", {
      lifecycle: [processing(t.clock.now()), completed()],
    });
    const other = await watchTask(w, "task_g", "/other");
    rx.respondWith(410, undefined, "/gone");

    await s.step();
    await d.step();
    await s.step(5_000);
    await d.step();

    expect((await t.call("GET", `/v1/watches/${gone.id}`)).body.status).toBe("failed");
    expect((await t.call("GET", `/v1/watches/${other.id}`)).body.status).toBe("done");
    expect(up.requestsFor("task_g")).toHaveLength(2);
    expect(sequences(w, "/other")).toEqual([1, 2]);
    expect(sequences(w, "/gone")).toEqual([1]);
  });
});

describe("DELETE of a watch", () => {
  it("still delivers the events already created, retries included, and polls no more", async () => {
    const w = await startWorld({ env: { DELIVERY_RETRY_SCHEDULE: "0s,5s" } });
    const { t, s, d, rx, up } = w;
    const watch = await watchTask(w, "task_del", "/hook", {
      lifecycle: [processing(t.clock.now()), completed()],
    });
    rx.respondWith(500, 1);
    await s.step();
    await d.step();

    const deleted = await t.call("DELETE", `/v1/watches/${watch.id}`);
    expect(deleted.body.status).toBe("cancelled");
    await d.step(5_000);
    await s.step(60_000);
    await d.step();

    expect(sequences(w, "/hook")).toEqual([1, 1]);
    expect(onlyDelivery(t, watch.id).status).toBe("delivered");
    expect(up.requestsFor("task_del")).toHaveLength(1);
  });
});
