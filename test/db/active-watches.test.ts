import { afterEach, describe, expect, it } from "vitest";
import { closeWorlds, startWorld, watchTask } from "../delivery/helpers.js";
import type { TestContext } from "../support/context.js";
import { completed, processing } from "../support/fake-upstream.js";

afterEach(closeWorlds);

/** The kept count of KEY_A's tenant, its count from the rows, and whether its key is stored. */
function tenantState(t: TestContext) {
  return t.db.$client
    .prepare(
      `SELECT t.active_watches AS kept,
         (SELECT count(*) FROM watches w WHERE w.tenant_id = t.id AND w.status = 'active') AS real,
         t.api_key_enc IS NOT NULL AS keyStored
       FROM tenants t`,
    )
    .get() as { kept: number; real: number; keyStored: number };
}

function setKept(t: TestContext, n: number) {
  t.db.$client.prepare("UPDATE tenants SET active_watches = ?").run(n);
}

describe("each tenant's count of active watches", () => {
  it("stays exact through every way a watch ends, and the key goes with the last one", async () => {
    const w = await startWorld({ env: { POLL_INTERVAL_MIN_MS: "5000" } });
    const { t, s, d, rx, up } = w;
    const now = t.clock.now();
    await watchTask(w, "task_done", "/done", { lifecycle: [processing(now), completed()] });
    await watchTask(w, "task_exp", "/exp", {
      lifecycle: [processing(now)],
      body: { expires_in: 60 },
    });
    await watchTask(w, "task_gone", "/gone", { lifecycle: [processing(now)] });
    rx.respondWith(410, undefined, "/gone");
    await watchTask(w, "task_404", "/rej", { lifecycle: [processing(now)] });
    const cancelled = await watchTask(w, "task_cancel", "/cancel", {
      lifecycle: [processing(now)],
    });
    const kept = await watchTask(w, "task_keep", "/keep", { lifecycle: [processing(now)] });
    expect(tenantState(t)).toEqual({ kept: 6, real: 6, keyStored: 1 });

    await s.step();
    up.removeTask("task_404");
    await d.step(); // task_gone's first event is answered 410: that watch ends
    expect(tenantState(t)).toMatchObject({ kept: 5, real: 5 });
    await t.call("DELETE", `/v1/watches/${cancelled.id}`);
    expect(tenantState(t)).toMatchObject({ kept: 4, real: 4 });
    // task_done completes, task_404 answers 404 three times, task_exp runs out of time.
    for (let i = 0; i < 14; i++) await s.step(5_000);
    expect(tenantState(t)).toEqual({ kept: 1, real: 1, keyStored: 1 });

    await t.call("DELETE", `/v1/watches/${kept.id}`);
    expect(tenantState(t)).toEqual({ kept: 0, real: 0, keyStored: 0 });
  });

  it("is checked against the rows where it matters, after an older release left it wrong", async () => {
    const w = await startWorld({ env: { MAX_ACTIVE_WATCHES_PER_KEY: "3" } });
    const { t, s } = w;
    const lifecycle = [processing(t.clock.now())];
    const first = await watchTask(w, "task_1", "/1", { lifecycle });
    await watchTask(w, "task_2", "/2", { lifecycle });

    // Too low (a watch made by an older release was not counted): the key is not dropped while a
    // watch still needs it.
    setKept(t, 1);
    await t.call("DELETE", `/v1/watches/${first.id}`);
    expect(tenantState(t)).toEqual({ kept: 1, real: 1, keyStored: 1 });

    // Too high (watches ended by an older release were not counted out): no 429 below the limit,
    // and the count is set right.
    setKept(t, 3);
    await watchTask(w, "task_3", "/3", { lifecycle });
    expect(tenantState(t)).toMatchObject({ kept: 2, real: 2 });

    // Taking the scheduler over recounts every tenant.
    setKept(t, 9);
    await s.step();
    expect(tenantState(t)).toEqual({ kept: 2, real: 2, keyStored: 1 });
  });
});
