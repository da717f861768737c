import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { pollTargets } from "../../src/db/schema.js";
import { encodeCursor } from "../../src/http/cursor.js";
import { ADMIN, createTestContext, KEY_A, KEY_B, tableCounts } from "../support/context.js";
import {
  admin,
  adminHeaders,
  created,
  deliveryRow,
  insertEvent,
  tenantId,
  WATCH_ID,
} from "./fixtures.js";

const ADMIN_ROUTES: ReadonlyArray<readonly [string, string]> = [
  ["GET", "/admin/watches"],
  ["GET", "/admin/stats"],
  ["GET", "/admin/deliveries"],
  ["POST", "/admin/deliveries/dlv_01KE4E1TG08P31S5BMXM0VHB4E/retry"],
];

const ids = (res: { body: { data: Array<{ id: string }> } }) => res.body.data.map((r) => r.id);

describe("admin authentication", () => {
  it.each(ADMIN_ROUTES)(
    "%s %s answers 403 FORBIDDEN when ADMIN_TOKEN is unset, whatever is sent",
    async (method, path) => {
      const t = createTestContext({ ADMIN_TOKEN: "" });
      expect(t.config.ADMIN_TOKEN).toBeUndefined();
      for (const headers of [{}, adminHeaders, { authorization: `Bearer ${KEY_A}` }]) {
        const res = await t.call(method, path, { key: null, headers });
        expect(res.status).toBe(403);
        expect(res.body).toEqual({
          error: {
            code: "FORBIDDEN",
            message: "admin API is disabled: set ADMIN_TOKEN to enable it",
          },
        });
      }
    },
  );

  const badTokens: ReadonlyArray<readonly [string, string | null]> = [
    ["no header", null],
    ["an empty bearer", "Bearer "],
    ["a wrong token", "Bearer not-the-admin-token-0000000"],
    ["the token with a suffix", `Bearer ${ADMIN}x`],
    ["a prefix of the token", `Bearer ${ADMIN.slice(0, -1)}`],
    ["the token without a scheme", ADMIN],
    ["the token as Basic", `Basic ${ADMIN}`],
    ["a client API key", `Bearer ${KEY_A}`],
  ];
  for (const [method, path] of ADMIN_ROUTES) {
    it.each(badTokens)(`${method} ${path} with %s answers 401`, async (_, header) => {
      const t = createTestContext();
      const headers: Record<string, string> = header === null ? {} : { authorization: header };
      const res = await t.call(method, path, { key: null, headers });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({
        error: { code: "UNAUTHORIZED", message: "admin token required" },
      });
    });
  }

  it("a retry with a bad token changes nothing", async () => {
    const t = createTestContext();
    const w = await created(t);
    const { deliveryId } = insertEvent(t, w.id, { delivery: { status: "failed", attempts: 10 } });
    const res = await t.call("POST", `/admin/deliveries/${deliveryId}/retry`, { key: KEY_A });
    expect(res.status).toBe(401);
    expect(deliveryRow(t, deliveryId ?? "")).toMatchObject({ status: "failed", attempts: 10 });
  });
});

describe("GET /admin/watches", () => {
  it("lists every tenant's watches newest first, with a tenant label and delivery counts", async () => {
    const t = createTestContext();
    const a = await created(t, { task_id: "task_a" });
    t.clock.advance(1000);
    const b = await created(t, { task_id: "task_b" }, KEY_B);
    insertEvent(t, a.id, { delivery: { status: "pending" } });
    insertEvent(t, a.id, { delivery: { status: "pending" } });
    insertEvent(t, a.id, { delivery: { status: "failed" } });
    insertEvent(t, a.id, { delivery: { status: "delivered" } });
    const res = await admin(t, "GET", "/admin/watches");
    expect(res.status).toBe(200);
    expect(ids(res)).toEqual([b.id, a.id]);
    const clientView = (await t.call("GET", `/v1/watches/${a.id}`)).body;
    expect(res.body.data[1]).toEqual({
      ...clientView,
      tenant: tenantId(KEY_A).slice(0, 12),
      pending_deliveries: 2,
      failed_deliveries: 1,
    });
    expect(res.body.data[0]).toMatchObject({
      id: expect.stringMatching(WATCH_ID),
      tenant: tenantId(KEY_B).slice(0, 12),
      pending_deliveries: 0,
      failed_deliveries: 0,
    });
    expect(res.body.next_cursor).toBeNull();
    expect(JSON.stringify(res.body)).not.toContain(KEY_A);
    expect(JSON.stringify(res.body)).not.toContain(tenantId(KEY_A));
  });

  async function fleet() {
    const t = createTestContext();
    const w = {
      a1: await created(t, { task_id: "task_1", callback_url: "https://one.example.com/h" }),
      a2: await created(t, { task_id: "task_2", callback_url: "https://Two.Example.com:8443/h" }),
      a3: await created(t, { task_id: "task_3", callback_url: "https://one.example.com/other" }),
      b1: await created(t, { task_id: "task_1", callback_url: "https://two.example.com/h" }, KEY_B),
    };
    await t.call("DELETE", `/v1/watches/${w.a3.id}`);
    return { t, w };
  }

  it("filters by status", async () => {
    const { t, w } = await fleet();
    expect(ids(await admin(t, "GET", "/admin/watches?status=active"))).toEqual([
      w.b1.id,
      w.a2.id,
      w.a1.id,
    ]);
    expect(ids(await admin(t, "GET", "/admin/watches?status=cancelled"))).toEqual([w.a3.id]);
    expect(ids(await admin(t, "GET", "/admin/watches?status=expired"))).toEqual([]);
  });

  it("filters by task_id across tenants", async () => {
    const { t, w } = await fleet();
    expect(ids(await admin(t, "GET", "/admin/watches?task_id=task_1"))).toEqual([w.b1.id, w.a1.id]);
  });

  it("filters by tenant label, or any prefix of it", async () => {
    const { t, w } = await fleet();
    const labelA = tenantId(KEY_A).slice(0, 12);
    const labelB = tenantId(KEY_B).slice(0, 12);
    expect(ids(await admin(t, "GET", `/admin/watches?tenant=${labelA}`))).toEqual([
      w.a3.id,
      w.a2.id,
      w.a1.id,
    ]);
    expect(ids(await admin(t, "GET", `/admin/watches?tenant=${labelB.slice(0, 6)}`))).toEqual([
      w.b1.id,
    ]);
    expect(ids(await admin(t, "GET", `/admin/watches?tenant=${tenantId(KEY_B)}`))).toEqual([
      w.b1.id,
    ]);
    const none = labelA[0] === "0" ? "1" : "0";
    const unknown = `${none}${labelA.slice(1)}`;
    if (!labelB.startsWith(unknown)) {
      expect(ids(await admin(t, "GET", `/admin/watches?tenant=${unknown}`))).toEqual([]);
    }
  });

  it("filters by callback host with or without port, case-insensitively, with other filters", async () => {
    const { t, w } = await fleet();
    expect(ids(await admin(t, "GET", "/admin/watches?callback_host=ONE.example.com"))).toEqual([
      w.a3.id,
      w.a1.id,
    ]);
    expect(
      ids(await admin(t, "GET", "/admin/watches?callback_host=one.example.com&status=active")),
    ).toEqual([w.a1.id]);
    expect(ids(await admin(t, "GET", "/admin/watches?callback_host=two.example.com"))).toEqual([
      w.b1.id,
      w.a2.id,
    ]);
    expect(ids(await admin(t, "GET", "/admin/watches?callback_host=two.example.com:8443"))).toEqual(
      [w.a2.id],
    );
    expect(ids(await admin(t, "GET", "/admin/watches?callback_host=two.example.com:443"))).toEqual(
      [],
    );
    expect(ids(await admin(t, "GET", "/admin/watches?callback_host=example.com"))).toEqual([]);
    expect(ids(await admin(t, "GET", "/admin/watches?callback_host=two.example"))).toEqual([]);
  });

  it("pages with limit and cursor, without overlap", async () => {
    const t = createTestContext();
    const all: string[] = [];
    for (let i = 0; i < 5; i++) {
      all.unshift((await created(t, { task_id: `t${i}` }, i % 2 ? KEY_A : KEY_B)).id);
    }
    const p1 = await admin(t, "GET", "/admin/watches?limit=2");
    const p2 = await admin(t, "GET", `/admin/watches?limit=2&cursor=${p1.body.next_cursor}`);
    const p3 = await admin(t, "GET", `/admin/watches?limit=2&cursor=${p2.body.next_cursor}`);
    expect([...ids(p1), ...ids(p2), ...ids(p3)]).toEqual(all);
    expect(p3.body.next_cursor).toBeNull();
  });

  it.each([
    ["status=bogus", "status"],
    ["tenant=XYZ", "tenant"],
    ["tenant=", "tenant"],
    ["task_id=a%20b", "task_id"],
    ["callback_host=", "callback_host"],
    ["limit=0", "limit"],
    ["limit=201", "limit"],
    ["limit=abc", "limit"],
    ["cursor=%21%21", "cursor"],
    [`cursor=${encodeCursor("dlv_01KE4E1TG08P31S5BMXM0VHB4E")}`, "cursor"],
  ])("refuses %s with 400", async (query, path) => {
    const t = createTestContext();
    const res = await admin(t, "GET", `/admin/watches?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("VALIDATION_ERROR");
    expect(res.body.error.details[0].path).toBe(path);
  });
});

describe("GET /admin/stats", () => {
  it("counts nothing on an empty database", async () => {
    const t = createTestContext();
    const res = await admin(t, "GET", "/admin/stats");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      watches: { active: 0, done: 0, expired: 0, failed: 0, cancelled: 0 },
      poll_targets: { active: 0, due: 0, overdue: 0 },
      upstream_last_minute: { requests: 0, errors: 0 },
      deliveries: { pending: 0, failed: 0, oldest_pending_age_s: null },
    });
  });

  it("reports watches by status, due and overdue targets, the outbox and upstream traffic", async () => {
    const t = createTestContext();
    t.deps.upstreamLastMinute = () => ({ requests: 42, errors: 3 });
    const w1 = await created(t, { task_id: "t1" });
    await created(t, { task_id: "t2" });
    const w3 = await created(t, { task_id: "t3" });
    await t.call("DELETE", `/v1/watches/${w3.id}`);
    insertEvent(t, w1.id, { delivery: { status: "pending" } });
    insertEvent(t, w1.id, { delivery: { status: "failed" } });
    t.clock.advance(2500);
    insertEvent(t, w1.id, { delivery: { status: "pending" } });
    const now = await admin(t, "GET", "/admin/stats");
    expect(now.body).toEqual({
      watches: { active: 2, done: 0, expired: 0, failed: 0, cancelled: 1 },
      poll_targets: { active: 2, due: 2, overdue: 0 },
      upstream_last_minute: { requests: 42, errors: 3 },
      deliveries: { pending: 2, failed: 1, oldest_pending_age_s: 2.5 },
    });
    t.clock.advance(2500);
    const later = await admin(t, "GET", "/admin/stats");
    expect(later.body.poll_targets).toEqual({ active: 2, due: 2, overdue: 2 });
    expect(later.body.deliveries.oldest_pending_age_s).toBe(5);
  });

  it("does not count a target as due before its due time, nor while a poll is in flight", async () => {
    const t = createTestContext();
    await created(t, { task_id: "t1" });
    await created(t, { task_id: "t2" });
    const now = t.clock.now();
    t.db
      .update(pollTargets)
      .set({ nextPollAt: now + 10_000, dueAt: now + 10_000 })
      .where(eq(pollTargets.taskId, "t1"))
      .run();
    t.db
      .update(pollTargets)
      .set({ leaseUntil: now + 30_000, nextPollAt: now + 30_000 })
      .where(eq(pollTargets.taskId, "t2"))
      .run();
    t.clock.advance(9_999);
    const res = await admin(t, "GET", "/admin/stats");
    expect(res.body.poll_targets).toEqual({ active: 2, due: 0, overdue: 0 });
    t.clock.advance(1);
    const due = await admin(t, "GET", "/admin/stats");
    expect(due.body.poll_targets).toEqual({ active: 2, due: 1, overdue: 0 });
  });
});

describe("GET /admin/deliveries", () => {
  async function outbox() {
    const t = createTestContext();
    const a = await created(t);
    const b = await created(t, {}, KEY_B);
    const d1 = insertEvent(t, a.id, { delivery: { status: "delivered", attempts: 1 } });
    t.clock.advance(1000);
    const d2 = insertEvent(t, b.id, {
      delivery: { status: "failed", attempts: 10, lastStatusCode: 500, lastError: "HTTP 500" },
    });
    t.clock.advance(1000);
    const d3 = insertEvent(t, a.id, { delivery: { status: "pending" } });
    return { t, a, b, d1, d2, d3 };
  }

  it("lists all tenants' deliveries newest first, in full", async () => {
    const { t, b, d1, d2, d3 } = await outbox();
    const res = await admin(t, "GET", "/admin/deliveries");
    expect(res.status).toBe(200);
    expect(ids(res)).toEqual([d3.deliveryId, d2.deliveryId, d1.deliveryId]);
    expect(res.body.data[1]).toEqual({
      id: d2.deliveryId,
      event_id: d2.eventId,
      watch_id: b.id,
      tenant: tenantId(KEY_B).slice(0, 12),
      callback_url: "https://hooks.example.com/vibepeak",
      status: "failed",
      attempts: 10,
      next_attempt_at: null,
      last_attempt_at: null,
      last_status_code: 500,
      last_error: "HTTP 500",
      created_at: "2026-01-04T12:00:01.000Z",
    });
    expect(res.body.data[0].next_attempt_at).toBe("2026-01-04T12:00:02.000Z");
    expect(res.body.next_cursor).toBeNull();
  });

  it("filters by status and pages", async () => {
    const { t, d1, d2, d3 } = await outbox();
    expect(ids(await admin(t, "GET", "/admin/deliveries?status=failed"))).toEqual([d2.deliveryId]);
    expect(ids(await admin(t, "GET", "/admin/deliveries?status=pending"))).toEqual([d3.deliveryId]);
    const p1 = await admin(t, "GET", "/admin/deliveries?limit=2");
    expect(ids(p1)).toEqual([d3.deliveryId, d2.deliveryId]);
    const p2 = await admin(t, "GET", `/admin/deliveries?limit=2&cursor=${p1.body.next_cursor}`);
    expect(ids(p2)).toEqual([d1.deliveryId]);
    expect(p2.body.next_cursor).toBeNull();
  });

  it.each([["status=lost"], ["limit=0"], ["limit=201"], ["cursor=nope"]])(
    "refuses %s with 400",
    async (query) => {
      const t = createTestContext();
      const res = await admin(t, "GET", `/admin/deliveries?${query}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("VALIDATION_ERROR");
    },
  );
});

describe("POST /admin/deliveries/{id}/retry", () => {
  it("queues any tenant's delivery again now with a fresh attempt count (202)", async () => {
    const t = createTestContext();
    const b = await created(t, {}, KEY_B);
    const { deliveryId, eventId } = insertEvent(t, b.id, {
      delivery: { status: "failed", attempts: 10 },
    });
    t.clock.advance(60_000);
    const before = tableCounts(t.db);
    const res = await admin(t, "POST", `/admin/deliveries/${deliveryId}/retry`);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: deliveryId, status: "pending" });
    expect(deliveryRow(t, deliveryId ?? "")).toMatchObject({
      eventId,
      status: "pending",
      attempts: 0,
      nextAttemptAt: t.clock.now(),
      updatedAt: t.clock.now(),
    });
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("answers 404 NOT_FOUND for an unknown delivery", async () => {
    const t = createTestContext();
    const res = await admin(t, "POST", "/admin/deliveries/dlv_01KE4E1TG08P31S5BMXM0VHB4E/retry");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "NOT_FOUND", message: "delivery not found" } });
  });
});
