import { afterEach, describe, expect, it } from "vitest";
import { PINGS_PER_MINUTE } from "../../src/http/routes/deliveries.js";
import { VERSION } from "../../src/version.js";
import { createTestContext, KEY_B, tableCounts } from "../support/context.js";
import { closeWorlds, json, refusedByBoth, secretOf, startWorld, verifyBoth } from "./helpers.js";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

afterEach(closeWorlds);

describe("POST /v1/webhook-test", () => {
  it("sends a signed ping now and answers with the attempt", async () => {
    const { t, rx } = await startWorld();
    rx.enqueue({ status: 204 });
    const before = tableCounts(t.db);

    const res = await t.call("POST", "/v1/webhook-test", {
      body: { callback_url: `${rx.url}/ping?x=1` },
    });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      event_id: expect.stringMatching(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/),
      attempt: {
        at: new Date(t.clock.now()).toISOString(),
        status_code: 204,
        duration_ms: expect.any(Number),
        error: null,
        response_body: "",
      },
    });
    expect(rx.requests).toHaveLength(1);
    const [ping] = rx.requests;
    if (!ping) throw new Error("no ping");
    expect(ping.path).toBe("/ping");
    expect(ping.query).toBe("?x=1");
    expect(ping.headers["webhook-id"]).toBe(res.body.event_id);
    expect(ping.headers["content-type"]).toBe("application/json");
    expect(ping.headers["user-agent"]).toBe(`taskhook/${VERSION}`);
    expect(verifyBoth(await secretOf(t), ping)).toEqual(json(ping));
    expect(json(ping)).toEqual({
      type: "ping",
      timestamp: new Date(t.clock.now()).toISOString(),
      data: expect.objectContaining({ event_id: res.body.event_id }),
    });
    // A ping is not an event of any watch: nothing but the tenant's secret is stored.
    const after = tableCounts(t.db);
    expect({ ...after, tenants: 0 }).toEqual({ ...before, tenants: 0 });
  });

  it("is signed with the tenant's secret, by both secrets during a rotation", async () => {
    const { t, rx } = await startWorld();
    const old = await secretOf(t);
    const rotated = (await t.call("POST", "/v1/signing-secret/rotate")).body.secret;

    await t.call("POST", "/v1/webhook-test", { body: { callback_url: `${rx.url}/ping` } });

    const [ping] = rx.requests;
    if (!ping) throw new Error("no ping");
    expect(ping.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    verifyBoth(old, ping);
    verifyBoth(rotated, ping);
    expect(refusedByBoth(await secretOf(t, "vpk_test_carol_5555555"), ping)).toBe(true);
  });

  it("answers 200 with the failure when the endpoint answers an error", async () => {
    const { t, rx } = await startWorld();
    rx.enqueue({ status: 401, body: '{"error":"bad signature"}' });

    const res = await t.call("POST", "/v1/webhook-test", { body: { callback_url: rx.url } });

    expect(res.status).toBe(200);
    expect(res.body.attempt).toMatchObject({
      status_code: 401,
      error: "HTTP 401",
      response_body: '{"error":"bad signature"}',
    });
    expect(res.body.attempt.at).toMatch(ISO);
  });

  it("answers 200 with the error when nothing answers: refused, or too slow", async () => {
    const { t, rx } = await startWorld({ env: { DELIVERY_TIMEOUT_MS: "300" } });
    rx.enqueue("hang");
    const slow = await t.call("POST", "/v1/webhook-test", { body: { callback_url: rx.url } });
    await rx.down();
    const refused = await t.call("POST", "/v1/webhook-test", { body: { callback_url: rx.url } });

    expect(slow.status).toBe(200);
    expect(slow.body.attempt).toMatchObject({ status_code: null, response_body: null });
    expect(slow.body.attempt.error).toMatch(/timeout/);
    expect(slow.body.attempt.duration_ms).toBeGreaterThanOrEqual(250);
    expect(refused.status).toBe(200);
    expect(refused.body.attempt.status_code).toBeNull();
    expect(refused.body.attempt.error).toMatch(/ECONNREFUSED/);
  });

  it.each([
    "http://127.0.0.1:9/hook",
    "http://localhost:9/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:10.0.0.5]/hook",
  ])(
    "refuses the private URL %s without ALLOW_PRIVATE_CALLBACKS: 400, nothing sent",
    async (url) => {
      const { t, rx } = await startWorld({ env: { ALLOW_PRIVATE_CALLBACKS: "false" } });
      const res = await t.call("POST", "/v1/webhook-test", { body: { callback_url: url } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("VALIDATION_ERROR");
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: "callback_url" })]);
      expect(rx.requests).toEqual([]);
    },
  );

  it("refuses plain http when REQUIRE_HTTPS_CALLBACKS is set", async () => {
    const { t, rx } = await startWorld({ env: { REQUIRE_HTTPS_CALLBACKS: "true" } });
    const res = await t.call("POST", "/v1/webhook-test", { body: { callback_url: rx.url } });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: "VALIDATION_ERROR",
      message: "callback_url: must use https",
    });
    expect(rx.requests).toEqual([]);
  });

  it.each([
    { name: "no callback_url", body: {} },
    { name: "not a URL", body: { callback_url: "not a url" } },
    { name: "an ftp URL", body: { callback_url: "ftp://example.com/x" } },
    { name: "credentials in the URL", body: { callback_url: "https://u:p@example.com/x" } },
    { name: "an unknown field", body: { callback_url: "https://example.com/x", extra: 1 } },
    { name: "a body that is not JSON", body: "{callback_url:" },
  ])("answers 400 VALIDATION_ERROR for $name", async ({ body }) => {
    const { t, rx } = await startWorld();
    const res = await t.call("POST", "/v1/webhook-test", { body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("VALIDATION_ERROR");
    expect(rx.requests).toEqual([]);
  });

  it("answers 401 without an API key, and sends nothing", async () => {
    const { t, rx } = await startWorld();
    const res = await t.call("POST", "/v1/webhook-test", {
      key: null,
      body: { callback_url: rx.url },
    });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("UNAUTHORIZED");
    expect(rx.requests).toEqual([]);
  });
});

describe("POST /v1/webhook-test rate limit", () => {
  it("allows a few pings a minute per API key, then answers 429 RATE_LIMITED", async () => {
    const t = createTestContext();
    const body = { callback_url: "http://127.0.0.1:9/never" };
    for (let i = 0; i < PINGS_PER_MINUTE; i++) {
      // A private URL is refused before the limit is counted; a refused ping does not use it up.
      expect((await t.call("POST", "/v1/webhook-test", { body })).status).toBe(400);
    }
    const t2 = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "true", DELIVERY_TIMEOUT_MS: "500" });
    for (let i = 0; i < PINGS_PER_MINUTE; i++) {
      expect((await t2.call("POST", "/v1/webhook-test", { body })).status).toBe(200);
    }
    const limited = await t2.call("POST", "/v1/webhook-test", { body });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe("RATE_LIMITED");
    expect((await t2.call("POST", "/v1/webhook-test", { body, key: KEY_B })).status).toBe(200);
    t2.clock.advance(60_000);
    expect((await t2.call("POST", "/v1/webhook-test", { body })).status).toBe(200);
  });
});
