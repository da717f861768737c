import { describe, expect, it } from "vitest";
import { encodeCursor } from "../../src/http/cursor.js";
import { createTestContext, KEY_B, tableCounts } from "../support/context.js";
import { created, deliveryRow, insertAttempt, insertEvent } from "./fixtures.js";

const EVENT_ID = /^evt_[0-9A-HJKMNP-TV-Z]{26}$/;

describe("GET /v1/watches/{id}/events", () => {
  it("is empty before the first event", async () => {
    const t = createTestContext();
    const w = await created(t);
    const res = await t.call("GET", `/v1/watches/${w.id}/events`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [], next_cursor: null });
  });

  it("lists events oldest first with their delivery and every attempt", async () => {
    const t = createTestContext();
    const w = await created(t);
    const first = insertEvent(t, w.id, {
      type: "task.queued",
      delivery: { status: "delivered", attempts: 2 },
    });
    insertAttempt(t, first.deliveryId ?? "", {
      at: t.clock.now(),
      durationMs: 15000,
      statusCode: null,
      error: "timeout",
    });
    insertAttempt(t, first.deliveryId ?? "", {
      at: t.clock.now() + 5000,
      durationMs: 12,
      statusCode: 200,
      error: null,
    });
    t.clock.advance(60_000);
    const second = insertEvent(t, w.id, { type: "task.processing" });
    t.clock.advance(1000);
    const third = insertEvent(t, w.id, { type: "task.completed", delivery: null });

    const res = await t.call("GET", `/v1/watches/${w.id}/events`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: [
        {
          id: first.eventId,
          watch_id: w.id,
          type: "task.queued",
          sequence: 1,
          created_at: "2026-01-04T12:00:00.000Z",
          payload: first.payload,
          delivery: {
            id: first.deliveryId,
            status: "delivered",
            attempts: [
              {
                at: "2026-01-04T12:00:00.000Z",
                status_code: null,
                duration_ms: 15000,
                error: "timeout",
              },
              { at: "2026-01-04T12:00:05.000Z", status_code: 200, duration_ms: 12, error: null },
            ],
          },
        },
        {
          id: second.eventId,
          watch_id: w.id,
          type: "task.processing",
          sequence: 2,
          created_at: "2026-01-04T12:01:00.000Z",
          payload: second.payload,
          delivery: { id: second.deliveryId, status: "pending", attempts: [] },
        },
        {
          id: third.eventId,
          watch_id: w.id,
          type: "task.completed",
          sequence: 3,
          created_at: "2026-01-04T12:01:01.000Z",
          payload: third.payload,
          delivery: null,
        },
      ],
      next_cursor: null,
    });
    expect(first.eventId).toMatch(EVENT_ID);
  });

  it("shows only that watch's events, and pages them with limit and cursor", async () => {
    const t = createTestContext();
    const w = await created(t, { task_id: "t1" });
    const other = await created(t, { task_id: "t2" });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(insertEvent(t, w.id).eventId);
      insertEvent(t, other.id);
      t.clock.advance(1000);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor === null ? "?limit=2" : `?limit=2&cursor=${cursor}`;
      const res = await t.call("GET", `/v1/watches/${w.id}/events${q}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.data.map((e: { id: string }) => e.id));
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual(ids);
  });

  it.each([["limit=0"], ["limit=201"], ["limit=abc"], ["cursor=%24%24"], ["cursor=Zm9vYmFy"]])(
    "refuses %s with 400",
    async (query) => {
      const t = createTestContext();
      const w = await created(t);
      const res = await t.call("GET", `/v1/watches/${w.id}/events?${query}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("VALIDATION_ERROR");
    },
  );

  it("refuses a watch cursor where an event cursor is expected", async () => {
    const t = createTestContext();
    const w = await created(t);
    const res = await t.call("GET", `/v1/watches/${w.id}/events?cursor=${encodeCursor(w.id)}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: {
        code: "VALIDATION_ERROR",
        message: "cursor: is not a cursor this API returned",
        details: [{ path: "cursor", message: "invalid cursor" }],
      },
    });
  });
});

describe("GET /v1/events, the catch-up feed", () => {
  it("starts empty with a null cursor", async () => {
    const t = createTestContext();
    const res = await t.call("GET", "/v1/events");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [], next_cursor: null });
  });

  it("reads all the tenant's events across watches, oldest first, and then only what is new", async () => {
    const t = createTestContext();
    const w1 = await created(t, { task_id: "t1" });
    const w2 = await created(t, { task_id: "t2" });
    const b = await created(t, { task_id: "t1" }, KEY_B);
    const e1 = insertEvent(t, w1.id).eventId;
    t.clock.advance(10);
    const e2 = insertEvent(t, w2.id).eventId;
    insertEvent(t, b.id);
    t.clock.advance(10);
    const e3 = insertEvent(t, w1.id, { type: "task.processing" }).eventId;

    const page1 = await t.call("GET", "/v1/events?limit=2");
    expect(page1.body.data.map((e: { id: string }) => e.id)).toEqual([e1, e2]);
    expect(page1.body.data[1].watch_id).toBe(w2.id);
    const page2 = await t.call("GET", `/v1/events?limit=2&after=${page1.body.next_cursor}`);
    expect(page2.body.data.map((e: { id: string }) => e.id)).toEqual([e3]);

    // The cursor of the last page never goes null: keeping it yields only later events.
    const caughtUp = await t.call("GET", `/v1/events?after=${page2.body.next_cursor}`);
    expect(caughtUp.body.data).toEqual([]);
    expect(caughtUp.body.next_cursor).toBe(page2.body.next_cursor);

    t.clock.advance(1000);
    const e4 = insertEvent(t, w2.id, { type: "task.completed" }).eventId;
    const later = await t.call("GET", `/v1/events?after=${caughtUp.body.next_cursor}`);
    expect(later.body.data.map((e: { id: string }) => e.id)).toEqual([e4]);
  });

  it.each([["limit=0"], ["limit=201"], ["limit=x"], ["after=***"], ["after=Zm9vYmFy"]])(
    "refuses %s with 400",
    async (query) => {
      const t = createTestContext();
      const res = await t.call("GET", `/v1/events?${query}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("VALIDATION_ERROR");
    },
  );
});

describe("POST /v1/deliveries/{id}/retry", () => {
  it("queues a failed delivery again now with a fresh attempt count (202)", async () => {
    const t = createTestContext();
    const w = await created(t);
    const { deliveryId, eventId } = insertEvent(t, w.id, {
      delivery: { status: "failed", attempts: 10, lastError: "HTTP 500", lastStatusCode: 500 },
    });
    t.clock.advance(3 * 86_400_000);
    const before = tableCounts(t.db);
    const res = await t.call("POST", `/v1/deliveries/${deliveryId}/retry`);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: deliveryId, status: "pending" });
    expect(deliveryRow(t, deliveryId ?? "")).toMatchObject({
      eventId,
      status: "pending",
      attempts: 0,
      nextAttemptAt: t.clock.now(),
    });
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("replays a delivered one too", async () => {
    const t = createTestContext();
    const w = await created(t);
    const { deliveryId } = insertEvent(t, w.id, { delivery: { status: "delivered", attempts: 1 } });
    expect((await t.call("POST", `/v1/deliveries/${deliveryId}/retry`)).status).toBe(202);
    expect(deliveryRow(t, deliveryId ?? "")?.status).toBe("pending");
  });

  it("answers 404 for an unknown delivery", async () => {
    const t = createTestContext();
    const res = await t.call("POST", "/v1/deliveries/dlv_01KE4E1TG08P31S5BMXM0VHB4E/retry");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "NOT_FOUND", message: "delivery not found" } });
  });
});
