import { describe, expect, it } from "vitest";
import { signingSecrets } from "../../src/db/tenants.js";
import { createTestContext, KEY_A, KEY_B, tableCounts } from "../support/context.js";
import { created, deliveryRow, HOOK, insertEvent, tenantId, watchRow } from "./fixtures.js";

const CLIENT_ROUTES: ReadonlyArray<readonly [string, string]> = [
  ["POST", "/v1/watches"],
  ["GET", "/v1/watches"],
  ["GET", "/v1/watches/wch_01KE4E1TG08P31S5BMXM0VHB4E"],
  ["DELETE", "/v1/watches/wch_01KE4E1TG08P31S5BMXM0VHB4E"],
  ["GET", "/v1/watches/wch_01KE4E1TG08P31S5BMXM0VHB4E/events"],
  ["GET", "/v1/events"],
  ["POST", "/v1/deliveries/dlv_01KE4E1TG08P31S5BMXM0VHB4E/retry"],
  ["POST", "/v1/webhook-test"],
  ["GET", "/v1/signing-secret"],
  ["POST", "/v1/signing-secret/rotate"],
];

const unauthorized = {
  error: {
    code: "UNAUTHORIZED",
    message: "Authorization must be `Bearer vpk_...` (your VibePeak API key)",
  },
};

describe("every /v1 route answers 401 UNAUTHORIZED to missing or malformed credentials", () => {
  const badHeaders: ReadonlyArray<readonly [string, string | null]> = [
    ["no header", null],
    ["an empty header", ""],
    ["Basic auth", `Basic ${Buffer.from("user:pass").toString("base64")}`],
    ["a bearer token without vpk_", "Bearer sk_live_0123456789"],
    ["Bearer vpk_ and nothing", "Bearer vpk_"],
    ["Bearer vpk_ with bad characters", "Bearer vpk_abc!def"],
    ["Bearer vpk_ with a space inside", "Bearer vpk_abc def"],
    ["a key of 257 characters after vpk_", `Bearer vpk_${"a".repeat(257)}`],
    ["the key without a scheme", KEY_A],
    ["two spaces after Bearer", `Bearer  ${KEY_A}`],
    ["the admin scheme on a client key", `Token ${KEY_A}`],
  ];

  for (const [method, path] of CLIENT_ROUTES) {
    it.each(badHeaders)(`${method} ${path} with %s`, async (_, header) => {
      const t = createTestContext();
      await created(t);
      const before = tableCounts(t.db);
      const headers: Record<string, string> = header === null ? {} : { authorization: header };
      const res = await t.call(method, path, {
        key: null,
        headers,
        body: method === "POST" ? { task_id: "t2", callback_url: HOOK } : undefined,
      });
      expect(res.status).toBe(401);
      expect(res.body).toEqual(unauthorized);
      expect(tableCounts(t.db)).toEqual(before);
    });
  }

  it("accepts the scheme name in any case (RFC 9110), naming the same tenant", async () => {
    const t = createTestContext();
    const w = await created(t);
    const res = await t.call("GET", `/v1/watches/${w.id}`, {
      key: null,
      headers: { authorization: `bearer ${KEY_A}` },
    });
    expect(res.status).toBe(200);
  });

  it("the admin token is not a client key", async () => {
    const t = createTestContext();
    const res = await t.call("GET", "/v1/watches", { key: t.config.ADMIN_TOKEN ?? "" });
    expect(res.status).toBe(401);
  });
});

describe("tenant isolation: another tenant's resources answer exactly like missing ones", () => {
  async function twoTenants() {
    const t = createTestContext();
    const a = await created(t, { metadata: { owner: "alice" } });
    const { eventId, deliveryId } = insertEvent(t, a.id, {
      delivery: { status: "failed", attempts: 10 },
    });
    return { t, a, eventId, deliveryId: deliveryId ?? "" };
  }

  it("GET /v1/watches/{id} of A's watch with B's key is 404 with the missing-id envelope", async () => {
    const { t, a } = await twoTenants();
    const missing = await t.call("GET", "/v1/watches/wch_01KE4E1TG08P31S5BMXM0VHB4E", {
      key: KEY_B,
    });
    const other = await t.call("GET", `/v1/watches/${a.id}`, { key: KEY_B });
    expect(other.status).toBe(404);
    expect(other.body).toEqual(missing.body);
    expect(other.body).toEqual({ error: { code: "NOT_FOUND", message: "watch not found" } });
  });

  it("DELETE of A's watch by B is 404 and leaves it active", async () => {
    const { t, a } = await twoTenants();
    const before = tableCounts(t.db);
    const res = await t.call("DELETE", `/v1/watches/${a.id}`, { key: KEY_B });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "NOT_FOUND", message: "watch not found" } });
    expect(watchRow(t, a.id)).toMatchObject({ status: "active", endedAt: null });
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("GET /v1/watches/{id}/events of A's watch by B is 404", async () => {
    const { t, a } = await twoTenants();
    const res = await t.call("GET", `/v1/watches/${a.id}/events`, { key: KEY_B });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "NOT_FOUND", message: "watch not found" } });
  });

  it("B's lists and event feed show none of A's watches or events", async () => {
    const { t, a, eventId } = await twoTenants();
    const bWatch = await created(t, { task_id: "task_b" }, KEY_B);
    const list = await t.call("GET", "/v1/watches", { key: KEY_B });
    expect(list.body.data.map((w: { id: string }) => w.id)).toEqual([bWatch.id]);
    const byTask = await t.call("GET", "/v1/watches?task_id=task_1", { key: KEY_B });
    expect(byTask.body.data).toEqual([]);
    const feed = await t.call("GET", "/v1/events", { key: KEY_B });
    expect(feed.body).toEqual({ data: [], next_cursor: null });
    const aFeed = await t.call("GET", "/v1/events");
    expect(aFeed.body.data.map((e: { id: string }) => e.id)).toEqual([eventId]);
    expect((await t.call("GET", "/v1/watches")).body.data[0].id).toBe(a.id);
  });

  it("POST /v1/deliveries/{id}/retry of A's delivery by B is 404 and changes nothing", async () => {
    const { t, deliveryId } = await twoTenants();
    const before = deliveryRow(t, deliveryId);
    t.clock.advance(1000);
    const res = await t.call("POST", `/v1/deliveries/${deliveryId}/retry`, { key: KEY_B });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "NOT_FOUND", message: "delivery not found" } });
    expect(deliveryRow(t, deliveryId)).toEqual(before);
    const own = await t.call("POST", `/v1/deliveries/${deliveryId}/retry`);
    expect(own.status).toBe(202);
  });

  it("B rotating its signing secret leaves A's alone", async () => {
    const t = createTestContext();
    const a = await t.call("GET", "/v1/signing-secret");
    await t.call("POST", "/v1/signing-secret/rotate", { key: KEY_B });
    expect((await t.call("GET", "/v1/signing-secret")).body).toEqual(a.body);
    const aSecrets = signingSecrets(t.db, t.deps.encryptionKey, tenantId(KEY_A), t.clock.now());
    expect(aSecrets.previous).toBeNull();
  });

  it("B's signing secret differs from A's", async () => {
    const t = createTestContext();
    const a = await t.call("GET", "/v1/signing-secret");
    const b = await t.call("GET", "/v1/signing-secret", { key: KEY_B });
    expect(a.body.secret).toMatch(/^whsec_/);
    expect(b.body.secret).toMatch(/^whsec_/);
    expect(a.body.secret).not.toBe(b.body.secret);
    expect(signingSecrets(t.db, t.deps.encryptionKey, tenantId(KEY_B), t.clock.now()).current).toBe(
      b.body.secret,
    );
  });
});

describe("the API key stays secret", () => {
  it("never appears in a response, a log line or a stored column in clear", async () => {
    const t = createTestContext();
    const w = await created(t, { metadata: { note: "hello" } });
    insertEvent(t, w.id);
    const responses = [
      await t.call("GET", "/v1/watches"),
      await t.call("GET", `/v1/watches/${w.id}`),
      await t.call("GET", `/v1/watches/${w.id}/events`),
      await t.call("GET", "/v1/events"),
      await t.call("GET", "/v1/signing-secret"),
      await t.call("DELETE", `/v1/watches/${w.id}`),
      await t.call("GET", "/v1/watches", { key: "vpk_wrong!" }),
    ];
    for (const res of responses) expect(JSON.stringify(res.body)).not.toContain(KEY_A);
    expect(t.logLines.length).toBeGreaterThan(0);
    expect(t.logLines.join("")).not.toContain(KEY_A);
    expect(t.logLines.join("")).not.toContain(KEY_A.slice(4));
    const dump = t.db.$client
      .prepare("select * from tenants")
      .all()
      .map((row) => JSON.stringify(row))
      .join();
    expect(dump).not.toContain(KEY_A);
  });

  it("tags every response with a request id, echoing a given one", async () => {
    const t = createTestContext();
    const given = await t.call("GET", "/v1/watches", { headers: { "x-request-id": "req-123" } });
    expect(given.headers.get("x-request-id")).toBe("req-123");
    const generated = await t.call("GET", "/v1/watches", { key: null });
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});
