import { afterEach, expect, it } from "vitest";
import { KEY_A, KEY_B } from "../support/context.js";
import { completed, processing, queued } from "../support/fake-upstream.js";
import { closeWorlds, startWorld, storedPayload, type World, watchTask } from "./helpers.js";

afterEach(closeWorlds);

async function page(w: World, key: string, query: string) {
  const res = await w.t.call("GET", `/v1/events${query}`, { key });
  expect(res.status).toBe(200);
  return res.body as { data: any[]; next_cursor: string | null };
}

/** Reads the whole feed from `after` in pages of `limit`; returns the events and the last cursor. */
async function readAll(w: World, key: string, after: string | null, limit: number) {
  const seen: any[] = [];
  let cursor = after;
  for (;;) {
    const query = `?limit=${limit}${cursor === null ? "" : `&after=${encodeURIComponent(cursor)}`}`;
    const body = await page(w, key, query);
    seen.push(...body.data);
    if (body.data.length === 0) {
      expect(body.next_cursor).toBe(cursor);
      return { seen, cursor };
    }
    expect(body.next_cursor).not.toBeNull();
    cursor = body.next_cursor;
  }
}

it("lets a consumer catch up after an outage, oldest first, from after cursors, tenant-isolated", async () => {
  const w = await startWorld({ env: { DELIVERY_RETRY_SCHEDULE: "0s" } });
  const { t, s, d, rx } = w;
  expect(await page(w, KEY_A, "")).toEqual({ data: [], next_cursor: null });

  const now = t.clock.now();
  const a1 = await watchTask(w, "task_1", "/a", {
    lifecycle: [queued(2, now + 60_000), processing(now), completed()],
  });
  const a2 = await watchTask(w, "task_2", "/a", { lifecycle: [processing(now), completed()] });
  const b = await watchTask(w, "task_3", "/b", {
    key: KEY_B,
    lifecycle: [processing(now), completed()],
  });
  await rx.down();
  for (let i = 0; i < 3; i += 1) {
    await s.step(i === 0 ? 0 : 15_000);
    await d.step();
  }
  expect(rx.requests).toEqual([]);

  const { seen, cursor } = await readAll(w, KEY_A, null, 2);
  // Oldest first: by creation, i.e. by poll; two polls of one tick may land in either order.
  const byPoll = (e: any) => [Date.parse(e.created_at) - now, e.watch_id, e.sequence, e.type];
  expect(seen.map(byPoll).sort()).toEqual(
    [
      [0, a1.id, 1, "task.queued"],
      [0, a2.id, 1, "task.processing"],
      [15_000, a1.id, 2, "task.processing"],
      [15_000, a2.id, 2, "task.completed"],
      [30_000, a1.id, 3, "task.completed"],
    ].sort(),
  );
  expect(seen.map((e) => e.created_at)).toEqual(seen.map((e) => e.created_at).sort());
  expect(seen.map((e) => e.id)).toEqual(seen.map((e) => e.id).sort());
  for (const e of seen) {
    expect(JSON.stringify(e.payload)).toBe(storedPayload(t, e.id));
    expect(e.payload.data.event_id).toBe(e.id);
    expect(e.delivery).toMatchObject({ status: "failed", attempts: [expect.any(Object)] });
    expect(e.delivery.attempts[0].error).toMatch(/ECONNREFUSED/);
  }

  const other = await readAll(w, KEY_B, null, 50);
  expect(other.seen.map((e) => [e.watch_id, e.sequence])).toEqual([
    [b.id, 1],
    [b.id, 2],
  ]);
  // A's cursor lends B nothing of A's.
  const borrowed = await page(w, KEY_B, `?after=${encodeURIComponent(cursor ?? "")}`);
  expect(borrowed.data.every((e) => e.watch_id === b.id)).toBe(true);

  // Later events are read from the saved cursor, and only they.
  w.up.addTask({ taskId: "task_4", apiKey: KEY_A, lifecycle: [processing(t.clock.now())] });
  const a3 = await watchTask(w, "task_4", "/a");
  await s.step();
  const fresh = await readAll(w, KEY_A, cursor, 50);
  expect(fresh.seen.map((e) => [e.watch_id, e.type])).toEqual([[a3.id, "task.processing"]]);
});

it("refuses a cursor that is not one it gave out", async () => {
  const w = await startWorld();
  const res = await w.t.call("GET", "/v1/events?after=not-a-cursor");
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe("VALIDATION_ERROR");
});
