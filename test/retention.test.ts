import { describe, expect, it } from "vitest";
import { transaction } from "../src/db/client.js";
import { appendEvent } from "../src/db/outbox.js";
import { endWatches } from "../src/db/watches.js";
import { purgeBatch, Retention } from "../src/retention.js";
import { createTestContext, type TestContext, tableCounts } from "./support/context.js";

const DAY = 24 * 60 * 60 * 1000;

async function watchWithEvents(t: TestContext, taskId: string) {
  const res = await t.call("POST", "/v1/watches", {
    body: { task_id: taskId, callback_url: "https://example.com/hook" },
  });
  const id = res.body.id as string;
  const row = t.db.$client.prepare("select * from watches where id = ?").get(id) as Record<
    string,
    string
  >;
  transaction(t.db, () => {
    const w = {
      id,
      tenantId: String(row.tenant_id),
      taskId,
      callbackUrl: String(row.callback_url),
      events: String(row.events),
      metadata: null,
      sequence: 0,
    };
    appendEvent(
      t.db,
      w,
      { type: "task.queued", status: "queued", previousStatus: null, task: null },
      t.clock.now(),
    );
    appendEvent(
      t.db,
      w,
      { type: "task.completed", status: "completed", previousStatus: "queued", task: null },
      t.clock.now(),
    );
  });
  const [d] = t.db.$client
    .prepare("select id from deliveries where watch_id = ?")
    .all(id) as Array<{ id: string }>;
  t.db.$client
    .prepare(
      "insert into delivery_attempts (delivery_id, at, duration_ms, status_code) values (?, ?, 5, 200)",
    )
    .run(d?.id, t.clock.now());
  return id;
}

describe("retention", () => {
  it("purges ended watches older than RETENTION_DAYS with their events, deliveries and attempts", async () => {
    const t = createTestContext({ RETENTION_DAYS: "30" });
    const old = await watchWithEvents(t, "task_old");
    const active = await watchWithEvents(t, "task_active");
    transaction(t.db, () => endWatches(t.db, [old], "done", null, t.clock.now()));
    t.clock.advance(29 * DAY);
    const recent = await watchWithEvents(t, "task_recent");
    transaction(t.db, () => endWatches(t.db, [recent], "cancelled", null, t.clock.now()));
    t.clock.advance(2 * DAY);

    const before = tableCounts(t.db);
    const retention = new Retention({
      db: t.db,
      clock: t.clock,
      logger: t.deps.logger,
      retentionDays: 30,
    });
    await retention.tick();
    const after = tableCounts(t.db);

    expect(before.watches - after.watches).toBe(1);
    expect(before.events - after.events).toBe(2);
    expect(before.deliveries - after.deliveries).toBe(2);
    expect(before.delivery_attempts - after.delivery_attempts).toBe(1);
    expect(before.poll_targets - after.poll_targets).toBe(1);
    const left = (
      t.db.$client.prepare("select id from watches order by id").all() as Array<{ id: string }>
    ).map((r) => r.id);
    expect(left).toEqual([active, recent]);
    expect(t.logLines.some((l) => l.includes("retention: purged"))).toBe(true);
  });

  it("works in small batches", async () => {
    const t = createTestContext();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await watchWithEvents(t, `task_${i}`));
    transaction(t.db, () => endWatches(t.db, ids, "done", null, t.clock.now()));
    t.clock.advance(31 * DAY);
    const cutoff = t.clock.now() - 30 * DAY;
    expect(purgeBatch(t.db, cutoff, 2)).toBe(2);
    expect(purgeBatch(t.db, cutoff, 2)).toBe(2);
    expect(purgeBatch(t.db, cutoff, 2)).toBe(1);
    expect(purgeBatch(t.db, cutoff, 2)).toBe(0);
    expect(tableCounts(t.db)).toMatchObject({
      watches: 0,
      events: 0,
      deliveries: 0,
      delivery_attempts: 0,
      poll_targets: 0,
    });
  });
});
