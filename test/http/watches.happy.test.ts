import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { pollTargets, tenants, watches } from "../../src/db/schema.js";
import { decryptSecret, encryptSecret } from "../../src/domain/crypto.js";
import { createTestContext, KEY_A, KEY_B, tableCounts } from "../support/context.js";
import {
  created,
  DEFAULT_EVENTS,
  HOOK,
  recordPoll,
  register,
  tenantId,
  WATCH_ID,
  watchRow,
} from "./fixtures.js";

const T0 = "2026-01-04T12:00:00.000Z";

describe("POST /v1/watches creates a watch", () => {
  it("answers 201 with the watch object of SPEC §3, defaults filled in", async () => {
    const t = createTestContext();
    const res = await register(t, { task_id: "task_abc123xyz" });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.body).toEqual({
      id: expect.stringMatching(WATCH_ID),
      task_id: "task_abc123xyz",
      callback_url: HOOK,
      events: DEFAULT_EVENTS,
      metadata: null,
      status: "active",
      task_status: null,
      task: null,
      created_at: T0,
      expires_at: "2026-01-05T12:00:00.000Z",
      ended_at: null,
      end_reason: null,
      last_polled_at: null,
    });
    expect(Object.keys(res.body)).toHaveLength(13);
  });

  it("echoes events, metadata and expires_in as given", async () => {
    const t = createTestContext();
    const res = await register(t, {
      events: ["task.failed", "task.completed", "task.queue_position_changed"],
      metadata: { order_id: 42, nested: { a: [1, "two", null] } },
      expires_in: 60,
    });
    expect(res.status).toBe(201);
    expect(res.body.events).toEqual([
      "task.completed",
      "task.failed",
      "task.queue_position_changed",
    ]);
    expect(res.body.metadata).toEqual({ order_id: 42, nested: { a: [1, "two", null] } });
    expect(res.body.expires_at).toBe("2026-01-04T12:01:00.000Z");
  });

  it("accepts the bounds of expires_in (60 and 604800 s) and metadata of exactly 4 KiB", async () => {
    const t = createTestContext();
    const max = await register(t, { task_id: "t_max", expires_in: 604800 });
    expect(max.body.expires_at).toBe("2026-01-11T12:00:00.000Z");
    // {"x":"…"} is 8 bytes around the string.
    const md = await register(t, { task_id: "t_md", metadata: { x: "a".repeat(4088) } });
    expect(md.status).toBe(201);
  });

  it("takes its default lifetime from WATCH_TTL_S", async () => {
    const t = createTestContext({ WATCH_TTL_S: "3600" });
    t.clock.advance(1234);
    const res = await register(t);
    expect(res.body.created_at).toBe("2026-01-04T12:00:01.234Z");
    expect(res.body.expires_at).toBe("2026-01-04T13:00:01.234Z");
  });

  it("stores the callback URL normalized and answers with it", async () => {
    const t = createTestContext();
    const res = await register(t, { callback_url: "HTTPS://Hooks.Example.COM:8443/a?b=1" });
    expect(res.status).toBe(201);
    expect(res.body.callback_url).toBe("https://hooks.example.com:8443/a?b=1");
  });

  it("accepts application/json with a charset", async () => {
    const t = createTestContext();
    const res = await t.call("POST", "/v1/watches", {
      body: { task_id: "task_1", callback_url: HOOK },
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(res.status).toBe(201);
  });

  it("stores one tenant, one poll target due now, one watch, and the API key only encrypted", async () => {
    const t = createTestContext();
    await register(t);
    expect(tableCounts(t.db)).toEqual({
      tenants: 1,
      poll_targets: 1,
      watches: 1,
      events: 0,
      deliveries: 0,
      delivery_attempts: 0,
    });
    const tenant = t.db.select().from(tenants).get();
    expect(tenant?.id).toBe(tenantId(KEY_A));
    expect(tenant?.apiKeyEnc).not.toContain(KEY_A);
    expect(decryptSecret(t.deps.encryptionKey, tenant?.apiKeyEnc ?? "")).toBe(KEY_A);
    const target = t.db.select().from(pollTargets).get();
    expect(target).toMatchObject({ taskId: "task_1", active: true, nextPollAt: t.clock.now() });
  });

  it("replaces a stored API key blob that no longer decrypts (ENCRYPTION_KEY replaced)", async () => {
    const t = createTestContext();
    await created(t, { task_id: "t1" });
    const other = encryptSecret(Buffer.alloc(32, 3), KEY_A);
    t.db.update(tenants).set({ apiKeyEnc: other }).run();
    await created(t, { task_id: "t2" });
    const row = t.db.select().from(tenants).get();
    expect(decryptSecret(t.deps.encryptionKey, row?.apiKeyEnc ?? "")).toBe(KEY_A);
  });

  it("makes the key's ciphertext once per tenant, and stores it again after the tenant's last watch ended", async () => {
    const t = createTestContext();
    await created(t, { task_id: "t1" });
    const stored = () => t.db.select().from(tenants).get()?.apiKeyEnc ?? null;
    const blob = stored();
    await created(t, { task_id: "t2" });
    expect(stored()).toBe(blob);
    for (const w of (await t.call("GET", "/v1/watches")).body.data)
      expect((await t.call("DELETE", `/v1/watches/${w.id}`)).status).toBe(200);
    // No watch needs the key any more: it is forgotten...
    expect(stored()).toBeNull();
    // ...and stored again by the next registration.
    await created(t, { task_id: "t3" });
    expect(decryptSecret(t.deps.encryptionKey, stored() ?? "")).toBe(KEY_A);
  });

  it("keeps each tenant's count of active watches equal to its active watches", async () => {
    const t = createTestContext();
    const a1 = await created(t, { task_id: "t1" });
    await created(t, { task_id: "t2" });
    await created(t, { task_id: "t3" }, KEY_B);
    expect((await register(t, { task_id: "t1" })).status).toBe(200); // the same again: no new watch
    await t.call("DELETE", `/v1/watches/${a1.id}`);
    await t.call("DELETE", `/v1/watches/${a1.id}`); // already cancelled: counted once
    const counts = t.db.$client
      .prepare(
        `SELECT t.active_watches AS kept,
           (SELECT count(*) FROM watches w WHERE w.tenant_id = t.id AND w.status = 'active') AS real
         FROM tenants t ORDER BY t.id`,
      )
      .all() as Array<{ kept: number; real: number }>;
    expect(counts).toHaveLength(2);
    for (const c of counts) expect(c.kept).toBe(c.real);
    expect(counts.map((c) => c.kept).sort()).toEqual([1, 1]);
  });

  it("shares one poll target among a tenant's watches of one task, not across tenants", async () => {
    const t = createTestContext();
    await created(t, { callback_url: "https://a.example.com/" });
    await created(t, { callback_url: "https://b.example.com/" });
    expect(tableCounts(t.db)).toMatchObject({ tenants: 1, poll_targets: 1, watches: 2 });
    await created(t, { callback_url: "https://a.example.com/" }, KEY_B);
    expect(tableCounts(t.db)).toMatchObject({ tenants: 2, poll_targets: 2, watches: 3 });
  });
});

describe("registering the same task and callback_url again", () => {
  it("answers 200 with the existing watch when events and metadata are equal", async () => {
    const t = createTestContext();
    const first = await register(t, {
      events: ["task.completed", "task.failed"],
      metadata: { order_id: 42, customer: { id: 7, tier: "gold" } },
    });
    const before = tableCounts(t.db);
    t.clock.advance(60_000);
    const again = await register(t, {
      events: ["task.failed", "task.completed"],
      metadata: { customer: { tier: "gold", id: 7 }, order_id: 42 },
      expires_in: 600,
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("treats omitted events as the default set, duplicates and URL spelling as equal", async () => {
    const t = createTestContext();
    const first = await register(t);
    const explicit = await register(t, {
      events: [...DEFAULT_EVENTS].reverse().concat(["task.failed"]),
      callback_url: "HTTPS://HOOKS.EXAMPLE.COM/vibepeak",
    });
    expect(explicit.status).toBe(200);
    expect(explicit.body.id).toBe(first.body.id);
    expect(tableCounts(t.db).watches).toBe(1);
  });

  it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ["different events", { events: ["task.completed"] }, { events: ["task.failed"] }],
    ["different metadata", { metadata: { a: 1 } }, { metadata: { a: 2 } }],
    ["metadata added", {}, { metadata: { a: 1 } }],
    ["metadata removed", { metadata: { a: 1 } }, {}],
    ["an empty metadata object against none", {}, { metadata: {} }],
  ])("answers 409 WATCH_EXISTS naming the existing watch for %s", async (_, first, second) => {
    const t = createTestContext();
    const existing = await register(t, first);
    expect(existing.status).toBe(201);
    const before = tableCounts(t.db);
    const res = await register(t, second);
    expect(res.status).toBe(409);
    expect(res.body).toEqual({
      error: {
        code: "WATCH_EXISTS",
        message: `an active watch ${existing.body.id} exists for this task_id and callback_url with different events or metadata`,
        details: [{ watch_id: existing.body.id }],
      },
    });
    expect(tableCounts(t.db)).toEqual(before);
    expect(watchRow(t, existing.body.id)?.status).toBe("active");
  });

  it("creates a new watch (201) once the previous one was deleted, never a duplicate active one", async () => {
    const t = createTestContext();
    const first = await created(t);
    expect((await t.call("DELETE", `/v1/watches/${first.id}`)).status).toBe(200);
    const second = await register(t, { events: ["task.completed"] });
    expect(second.status).toBe(201);
    expect(second.body.id).not.toBe(first.id);
    expect(second.body.id > first.id).toBe(true);
    const third = await register(t, { events: ["task.completed"] });
    expect(third.status).toBe(200);
    expect(third.body.id).toBe(second.body.id);
    const list = await t.call("GET", "/v1/watches");
    expect(list.body.data.map((w: { status: string }) => w.status)).toEqual([
      "active",
      "cancelled",
    ]);
    expect(tableCounts(t.db)).toMatchObject({ watches: 2, poll_targets: 1 });
  });

  it("another tenant registering the same task and URL gets its own watch", async () => {
    const t = createTestContext();
    const a = await created(t);
    const b = await register(t, { events: ["task.completed"] }, KEY_B);
    expect(b.status).toBe(201);
    expect(b.body.id).not.toBe(a.id);
  });
});

describe("MAX_ACTIVE_WATCHES_PER_KEY", () => {
  it("refuses one more active watch with 429 RATE_LIMITED, storing nothing", async () => {
    const t = createTestContext({ MAX_ACTIVE_WATCHES_PER_KEY: "2" });
    await created(t, { task_id: "t1" });
    await created(t, { task_id: "t2" });
    const before = tableCounts(t.db);
    const res = await register(t, { task_id: "t3" });
    expect(res.status).toBe(429);
    expect(res.body).toEqual({
      error: { code: "RATE_LIMITED", message: "at most 2 active watches per API key" },
    });
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("still answers an identical registration at the limit, counts per key, and frees a slot on delete", async () => {
    const t = createTestContext({ MAX_ACTIVE_WATCHES_PER_KEY: "2" });
    const w1 = await created(t, { task_id: "t1" });
    await created(t, { task_id: "t2" });
    expect((await register(t, { task_id: "t1" })).status).toBe(200);
    expect((await register(t, { task_id: "t1" }, KEY_B)).status).toBe(201);
    await t.call("DELETE", `/v1/watches/${w1.id}`);
    expect((await register(t, { task_id: "t3" })).status).toBe(201);
    expect((await register(t, { task_id: "t4" })).status).toBe(429);
  });
});

describe("GET /v1/watches/{id}", () => {
  it("returns the watch as created", async () => {
    const t = createTestContext();
    const res = await register(t, { metadata: { k: "v" } });
    const got = await t.call("GET", `/v1/watches/${res.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
  });

  it("shows the task's last known state once it was polled", async () => {
    const t = createTestContext();
    const w = await created(t, { task_id: "task_abc" });
    t.clock.advance(5120);
    const task = {
      task_id: "task_abc",
      status: "processing",
      started_at: "2026-01-04T12:00:03.000Z",
      created_at: "2026-01-04T11:59:00.000Z",
      unknown_extra: { kept: true },
    };
    recordPoll(t, w.id, task);
    const got = await t.call("GET", `/v1/watches/${w.id}`);
    expect(got.body).toMatchObject({
      status: "active",
      task_status: "processing",
      task,
      last_polled_at: "2026-01-04T12:00:05.120Z",
    });
  });
});

describe("GET /v1/watches", () => {
  it("is empty for a new tenant", async () => {
    const t = createTestContext();
    const res = await t.call("GET", "/v1/watches");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [], next_cursor: null });
  });

  it("pages newest first with limit and an opaque cursor, without overlap or gaps", async () => {
    const t = createTestContext();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await created(t, { task_id: `task_${i}` })).id);
      t.clock.advance(1000);
    }
    const newestFirst = [...ids].reverse();
    const seen: string[] = [];
    let cursor: string | null = null;
    const pages: number[] = [];
    do {
      const q: string = cursor === null ? "?limit=3" : `?limit=3&cursor=${cursor}`;
      const res = await t.call("GET", `/v1/watches${q}`);
      expect(res.status).toBe(200);
      pages.push(res.body.data.length);
      seen.push(...res.body.data.map((w: { id: string }) => w.id));
      cursor = res.body.next_cursor;
      if (cursor !== null) expect(cursor).not.toContain("wch_");
    } while (cursor !== null);
    expect(pages).toEqual([3, 3, 1]);
    expect(seen).toEqual(newestFirst);
  });

  it("has no next page when the last page is exactly full", async () => {
    const t = createTestContext();
    for (let i = 0; i < 4; i++) await created(t, { task_id: `task_${i}` });
    const first = await t.call("GET", "/v1/watches?limit=2");
    const second = await t.call("GET", `/v1/watches?limit=2&cursor=${first.body.next_cursor}`);
    expect(second.body.data).toHaveLength(2);
    expect(second.body.next_cursor).toBeNull();
  });

  it("defaults to 50 per page and accepts up to 200", async () => {
    const t = createTestContext();
    for (let i = 0; i < 51; i++) await created(t, { task_id: `task_${i}` });
    const page = await t.call("GET", "/v1/watches");
    expect(page.body.data).toHaveLength(50);
    expect(page.body.next_cursor).not.toBeNull();
    const all = await t.call("GET", "/v1/watches?limit=200");
    expect(all.body.data).toHaveLength(51);
    expect(all.body.next_cursor).toBeNull();
  });

  it("filters by status and task_id", async () => {
    const t = createTestContext();
    const a = await created(t, { task_id: "task_a" });
    const b = await created(t, { task_id: "task_b" });
    const a2 = await created(t, { task_id: "task_a", callback_url: "https://other.example.com/" });
    await t.call("DELETE", `/v1/watches/${b.id}`);
    const ids = async (q: string) =>
      (await t.call("GET", `/v1/watches${q}`)).body.data.map((w: { id: string }) => w.id);
    expect(await ids("?status=active")).toEqual([a2.id, a.id]);
    expect(await ids("?status=cancelled")).toEqual([b.id]);
    expect(await ids("?status=done")).toEqual([]);
    expect(await ids("?task_id=task_a")).toEqual([a2.id, a.id]);
    expect(await ids("?task_id=task_b&status=active")).toEqual([]);
    expect(await ids("?task_id=task_b&status=cancelled")).toEqual([b.id]);
  });
});

describe("DELETE /v1/watches/{id}", () => {
  it("cancels an active watch and stamps ended_at", async () => {
    const t = createTestContext();
    const w = await created(t);
    t.clock.advance(90_000);
    const res = await t.call("DELETE", `/v1/watches/${w.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: w.id,
      status: "cancelled",
      ended_at: "2026-01-04T12:01:30.000Z",
      end_reason: null,
      created_at: T0,
    });
    expect((await t.call("GET", `/v1/watches/${w.id}`)).body).toEqual(res.body);
  });

  it("makes the poll target inactive only when no active watch needs it", async () => {
    const t = createTestContext();
    const w1 = await created(t, { callback_url: "https://a.example.com/" });
    const w2 = await created(t, { callback_url: "https://b.example.com/" });
    const target = () => t.db.select().from(pollTargets).get();
    await t.call("DELETE", `/v1/watches/${w1.id}`);
    expect(target()?.active).toBe(true);
    await t.call("DELETE", `/v1/watches/${w2.id}`);
    expect(target()?.active).toBe(false);
    await created(t, { callback_url: "https://c.example.com/" });
    expect(target()?.active).toBe(true);
    expect(tableCounts(t.db).poll_targets).toBe(1);
  });

  it("forgets the tenant's API key once it has no active watch, and stores it again on the next", async () => {
    const t = createTestContext();
    const w1 = await created(t, { task_id: "t1" });
    const w2 = await created(t, { task_id: "t2" });
    const keyEnc = () =>
      t.db
        .select()
        .from(tenants)
        .where(eq(tenants.id, tenantId(KEY_A)))
        .get()?.apiKeyEnc;
    await t.call("DELETE", `/v1/watches/${w1.id}`);
    expect(keyEnc()).not.toBeNull();
    await t.call("DELETE", `/v1/watches/${w2.id}`);
    expect(keyEnc()).toBeNull();
    await created(t, { task_id: "t3" });
    expect(decryptSecret(t.deps.encryptionKey, keyEnc() ?? "")).toBe(KEY_A);
  });

  it("keeps another tenant's key when one tenant goes idle", async () => {
    const t = createTestContext();
    const a = await created(t);
    await created(t, {}, KEY_B);
    await t.call("DELETE", `/v1/watches/${a.id}`);
    const b = t.db
      .select()
      .from(tenants)
      .where(eq(tenants.id, tenantId(KEY_B)))
      .get();
    expect(b?.apiKeyEnc).not.toBeNull();
  });

  it("answers 200 and changes nothing for a watch that already ended", async () => {
    const t = createTestContext();
    const w = await created(t);
    const first = await t.call("DELETE", `/v1/watches/${w.id}`);
    t.clock.advance(60_000);
    const second = await t.call("DELETE", `/v1/watches/${w.id}`);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
  });

  it("leaves a done watch done", async () => {
    const t = createTestContext();
    const w = await created(t);
    recordPoll(t, w.id, { task_id: "task_1", status: "completed", created_at: T0 });
    t.db
      .update(watches)
      .set({ status: "done", endedAt: t.clock.now() })
      .where(eq(watches.id, w.id))
      .run();
    const before = (await t.call("GET", `/v1/watches/${w.id}`)).body;
    t.clock.advance(1000);
    const res = await t.call("DELETE", `/v1/watches/${w.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(before);
    expect(res.body.status).toBe("done");
  });
});
