import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { createTestContext, KEY_A } from "../support/context.js";
import { delivererFor } from "../support/deliverer.js";
import {
  completed,
  type FakeUpstream,
  processing,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { schedulerFor } from "../support/scheduler.js";

let up: FakeUpstream;
afterEach(async () => {
  await up.close();
});

/**
 * The hot paths must stay O(batch) however many rows the tables hold: every statement they prepare is
 * checked with EXPLAIN QUERY PLAN for a full table scan (a plain index on `status`, for one, made
 * SQLite scan every active watch instead of using the partial indexes).
 */
describe("query plans of the hot paths", () => {
  it("registration, polling, recording, expiry and delivery never scan a whole table", async () => {
    const prepared = new Set<string>();
    const original = Database.prototype.prepare;
    Database.prototype.prepare = function (this: Database.Database, source: string) {
      prepared.add(source);
      return original.call(this, source);
    } as typeof original;
    try {
      const t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "true" });
      up = await startFakeUpstream({ clock: t.clock });
      const s = schedulerFor(t, up.url);
      const d = delivererFor(t);
      up.addTask({
        taskId: "task_1",
        apiKey: KEY_A,
        lifecycle: [processing(t.clock.now()), completed()],
      });
      prepared.clear();
      const res = await t.call("POST", "/v1/watches", {
        body: { task_id: "task_1", callback_url: "http://127.0.0.1:9/hook", expires_in: 60 },
      });
      expect(res.status).toBe(201);
      await t.call("POST", "/v1/watches", {
        body: { task_id: "task_2", callback_url: "http://127.0.0.1:9/h" },
      });
      await s.step();
      await d.step();
      await s.step(5000);
      await s.step(61_000);
      await d.step(61_000);
      await s.close();
      await d.close();

      const hot = [...prepared].filter((sql) => /^\s*(select|update|delete|insert)/i.test(sql));
      expect(hot.length).toBeGreaterThan(10);
      for (const sql of hot) {
        const params = (sql.match(/\?/g) ?? []).map(() => null);
        const plan = (
          t.db.$client.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{
            detail: string;
          }>
        )
          .map((r) => r.detail)
          .join(" | ");
        expect(plan, sql).not.toMatch(
          /\bSCAN (watches|poll_targets|deliveries|events|delivery_attempts)\b/,
        );
      }
    } finally {
      Database.prototype.prepare = original;
    }
  });
});
