import { describe, expect, it } from "vitest";
import { encodeCursor } from "../../src/http/cursor.js";
import { createTestContext, KEY_A, type TestContext, tableCounts } from "../support/context.js";
import { created, HOOK, register } from "./fixtures.js";

/** A context that already holds one watch, so "nothing stored" also means "nothing changed". */
async function seeded(env: Record<string, string> = {}) {
  const t = createTestContext(env);
  await created(t, { task_id: "seed" });
  return { t, before: tableCounts(t.db) };
}

const valid = { task_id: "task_1", callback_url: HOOK };

function expectValidationError(res: { status: number; body: any }, path: string) {
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe("VALIDATION_ERROR");
  expect(Object.keys(res.body)).toEqual(["error"]);
  expect(res.body.error.details).toEqual(
    expect.arrayContaining([expect.objectContaining({ path })]),
  );
  const prefix = path === "" ? "body" : path;
  expect(res.body.error.message.startsWith(`${prefix}: `)).toBe(true);
}

describe("POST /v1/watches refuses a bad body with 400 VALIDATION_ERROR and stores nothing", () => {
  it.each<[string, Record<string, unknown>, string]>([
    ["task_id missing", { task_id: undefined }, "task_id"],
    ["task_id empty", { task_id: "" }, "task_id"],
    ["task_id of 129 characters", { task_id: "a".repeat(129) }, "task_id"],
    ["task_id with a slash", { task_id: "task/1" }, "task_id"],
    ["task_id with a space", { task_id: "task 1" }, "task_id"],
    ["task_id with a dot-dot", { task_id: "../etc" }, "task_id"],
    ["task_id with a non-ASCII letter", { task_id: "täsk" }, "task_id"],
    ["task_id a number", { task_id: 123 }, "task_id"],
    ["callback_url missing", { callback_url: undefined }, "callback_url"],
    ["callback_url empty", { callback_url: "" }, "callback_url"],
    ["callback_url a number", { callback_url: 42 }, "callback_url"],
    ["events empty", { events: [] }, "events"],
    ["events with an unknown type", { events: ["task.completed", "task.started"] }, "events.1"],
    ["events naming ping (webhook-test only)", { events: ["ping"] }, "events.0"],
    ["events not an array", { events: "task.completed" }, "events"],
    ["metadata null", { metadata: null }, "metadata"],
    ["metadata an array", { metadata: [1, 2] }, "metadata"],
    ["metadata a string", { metadata: "order 42" }, "metadata"],
    ["metadata a number", { metadata: 42 }, "metadata"],
    ["metadata of 4097 bytes", { metadata: { x: "a".repeat(4089) } }, "metadata"],
    ["metadata over 4 KiB in UTF-8 bytes", { metadata: { x: "é".repeat(2045) } }, "metadata"],
    ["expires_in below 60", { expires_in: 59 }, "expires_in"],
    ["expires_in zero", { expires_in: 0 }, "expires_in"],
    ["expires_in negative", { expires_in: -60 }, "expires_in"],
    ["expires_in above 604800", { expires_in: 604801 }, "expires_in"],
    ["expires_in not an integer", { expires_in: 60.5 }, "expires_in"],
    ["expires_in a string", { expires_in: "600" }, "expires_in"],
    ["expires_in null", { expires_in: null }, "expires_in"],
    ["an unknown extra field", { foo: 1 }, ""],
    ["a camelCase field name", { taskId: "task_1" }, ""],
  ])("%s", async (_, patch, path) => {
    const { t, before } = await seeded();
    const res = await t.call("POST", "/v1/watches", { body: { ...valid, ...patch } });
    expectValidationError(res, path);
    expect(tableCounts(t.db)).toEqual(before);
  });

  it.each([
    ['{"__proto__": {"admin": true}, "order_id": 1}'],
    ['{"order": {"lines": [{"__proto__": 1}]}}'],
  ])("metadata with a __proto__ key (%s), which copies would silently drop", async (metadata) => {
    const { t, before } = await seeded();
    const body = `{"task_id": "task_1", "callback_url": "${HOOK}", "metadata": ${metadata}}`;
    const res = await t.call("POST", "/v1/watches", { body });
    expectValidationError(res, "metadata");
    expect(res.body.error.message).toBe("metadata: must not use the key __proto__");
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("words the SPEC's example message for a non-http(s) scheme exactly", async () => {
    const { t, before } = await seeded();
    const res = await register(t, { callback_url: "ftp://example.com/hook" });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: {
        code: "VALIDATION_ERROR",
        message: "callback_url: must be an https or http URL",
        details: [{ path: "callback_url", message: "callback_url: must be an https or http URL" }],
      },
    });
    expect(tableCounts(t.db)).toEqual(before);
  });
});

describe("POST /v1/watches refuses unsafe or malformed callback URLs (SPEC §6) and stores nothing", () => {
  it.each<[string, string, string]>([
    ["not a URL", "not a url", "must be an absolute https or http URL"],
    ["a relative URL", "/hooks/vibepeak", "must be an absolute https or http URL"],
    ["a scheme-relative URL", "//example.com/hook", "must be an absolute https or http URL"],
    ["javascript:", "javascript:alert(1)", "must be an https or http URL"],
    [
      "credentials",
      "https://user:pass@example.com/hook",
      "must not contain a username or password",
    ],
    ["a username only", "https://user@example.com/hook", "must not contain a username or password"],
    [
      "over 2048 characters",
      `https://example.com/${"a".repeat(2029)}`,
      "must be at most 2048 characters",
    ],
    ["IPv4 loopback", "http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"],
    ["the rest of 127/8", "http://127.10.20.30/", "127.10.20.30 is a loopback address"],
    ["10/8", "https://10.0.0.1/hook", "10.0.0.1 is a private address"],
    ["172.16/12", "https://172.16.5.4/hook", "172.16.5.4 is a private address"],
    ["192.168/16", "https://192.168.1.1/hook", "192.168.1.1 is a private address"],
    ["carrier-grade NAT", "https://100.64.0.1/hook", "100.64.0.1 is a private address"],
    ["cloud metadata", "http://169.254.169.254/latest", "169.254.169.254 is a link-local address"],
    ["unspecified", "http://0.0.0.0/", "0.0.0.0 is an unspecified address"],
    ["multicast", "http://224.0.0.1/", "224.0.0.1 is a multicast address"],
    ["a decimal IPv4 literal", "http://2130706433/", "127.0.0.1 is a loopback address"],
    ["a hex IPv4 literal", "http://0x7f000001/", "127.0.0.1 is a loopback address"],
    ["an octal IPv4 literal", "http://0177.0.0.1/", "127.0.0.1 is a loopback address"],
    ["IPv6 loopback", "http://[::1]/hook", "::1 is a loopback address"],
    ["IPv6 unspecified", "http://[::]/hook", ":: is an unspecified address"],
    ["IPv6 link-local", "http://[fe80::1]/hook", "fe80::1 is a link-local address"],
    ["IPv6 unique-local", "http://[fd12:3456::1]/hook", "fd12:3456::1 is a unique-local address"],
    ["IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address"],
    [
      "IPv4-mapped metadata",
      "http://[::ffff:169.254.169.254]/",
      "::ffff:a9fe:a9fe is a link-local address",
    ],
    ["localhost", "http://localhost:3000/hook", "localhost is a loopback name"],
    ["LOCALHOST with a trailing dot", "http://LOCALHOST./hook", "localhost. is a loopback name"],
    ["a .localhost name", "https://app.localhost/hook", "app.localhost is a loopback name"],
  ])("%s", async (_, url, reason) => {
    const { t, before } = await seeded();
    const res = await register(t, { callback_url: url });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("VALIDATION_ERROR");
    expect(res.body.error.message).toBe(`callback_url: ${reason}`);
    expect(res.body.error.details[0].path).toBe("callback_url");
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("refuses plain http under REQUIRE_HTTPS_CALLBACKS=true, and accepts https", async () => {
    const { t, before } = await seeded({ REQUIRE_HTTPS_CALLBACKS: "true" });
    const res = await register(t, { callback_url: "http://hooks.example.com/x" });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe("callback_url: must use https");
    expect(tableCounts(t.db)).toEqual(before);
    expect((await register(t, { callback_url: "https://hooks.example.com/x" })).status).toBe(201);
  });

  it("accepts plain http by default", async () => {
    const t = createTestContext();
    expect((await register(t, { callback_url: "http://hooks.example.com/x" })).status).toBe(201);
  });

  it("lets loopback and private addresses through under ALLOW_PRIVATE_CALLBACKS=true", async () => {
    const t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "true" });
    for (const url of ["http://127.0.0.1:9000/hook", "http://localhost/x", "http://[::1]/y"]) {
      const res = await register(t, { callback_url: url });
      expect(res.status).toBe(201);
    }
    const creds = await register(t, { callback_url: "http://u:p@127.0.0.1/hook" });
    expect(creds.status).toBe(400);
  });
});

async function raw(t: TestContext, init: RequestInit & { duplex?: "half" }) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${KEY_A}`);
  const res = await t.app.request("/v1/watches", { method: "POST", ...init, headers });
  return { status: res.status, body: (await res.json()) as any };
}

function streamOf(text: string, chunkSize = 8192): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

/** A valid registration padded with JSON whitespace to exactly `bytes` bytes. */
function paddedBody(bytes: number): string {
  const json = JSON.stringify({ ...valid, task_id: "padded" });
  return json + " ".repeat(bytes - json.length);
}

const tooLarge = { error: { code: "PAYLOAD_TOO_LARGE", message: "request body is over 64 KiB" } };

describe("request bodies", () => {
  it("malformed JSON is a 400 VALIDATION_ERROR, not a 500", async () => {
    const { t, before } = await seeded();
    for (const body of ["{bad", '{"task_id": "x",}', "", "\u0000"]) {
      const res = await t.call("POST", "/v1/watches", { body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("VALIDATION_ERROR");
      expect(res.body.error.message).toMatch(/^body: /);
    }
    expect(tableCounts(t.db)).toEqual(before);
  });

  it.each([["[]"], ["null"], ['"a string"'], ["42"]])(
    "a JSON body that is not an object (%s) is a 400",
    async (body) => {
      const { t, before } = await seeded();
      const res = await t.call("POST", "/v1/watches", { body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("VALIDATION_ERROR");
      expect(tableCounts(t.db)).toEqual(before);
    },
  );

  it("a body of exactly 64 KiB is accepted; one byte more is 413 PAYLOAD_TOO_LARGE", async () => {
    const { t } = await seeded();
    const ok = await t.call("POST", "/v1/watches", { body: paddedBody(65536) });
    expect(ok.status).toBe(201);
    const before = tableCounts(t.db);
    const res = await t.call("POST", "/v1/watches", {
      body: paddedBody(65537).replace("padded", "padde2"),
    });
    expect(res.status).toBe(413);
    expect(res.body).toEqual(tooLarge);
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("a large body is refused with 413 before it is validated", async () => {
    const { t, before } = await seeded();
    const res = await register(t, { metadata: { x: "a".repeat(70_000) } });
    expect(res.status).toBe(413);
    expect(res.body).toEqual(tooLarge);
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("a streamed body without content-length is counted and refused with 413", async () => {
    const { t, before } = await seeded();
    const res = await raw(t, {
      headers: { "content-type": "application/json" },
      body: streamOf(paddedBody(70_000)),
      duplex: "half",
    });
    expect(res.status).toBe(413);
    expect(res.body).toEqual(tooLarge);
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("a content-length that understates the body does not let it through", async () => {
    const { t, before } = await seeded();
    const res = await raw(t, {
      headers: { "content-type": "application/json", "content-length": "100" },
      body: streamOf(paddedBody(70_000)),
      duplex: "half",
    });
    expect(res.status).toBe(413);
    expect(res.body).toEqual(tooLarge);
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("a declared content-length over 64 KiB is refused up front", async () => {
    const { t, before } = await seeded();
    const res = await raw(t, {
      headers: { "content-type": "application/json", "content-length": "70000" },
      body: streamOf(paddedBody(200)),
      duplex: "half",
    });
    expect(res.status).toBe(413);
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("a small streamed body without content-length is read normally", async () => {
    const t = createTestContext();
    const res = await raw(t, {
      headers: { "content-type": "application/json" },
      body: streamOf(paddedBody(300), 7),
      duplex: "half",
    });
    expect(res.status).toBe(201);
    expect(res.body.task_id).toBe("padded");
  });

  it.each<[string, Record<string, string>]>([
    ["text/plain", { "content-type": "text/plain" }],
    ["form-encoded", { "content-type": "application/x-www-form-urlencoded" }],
    ["no content type", {}],
  ])("a JSON body sent as %s is 415 UNSUPPORTED_MEDIA_TYPE", async (_, headers) => {
    const { t, before } = await seeded();
    const res = await raw(t, { headers, body: JSON.stringify(valid) });
    expect(res.status).toBe(415);
    expect(res.body).toEqual({
      error: { code: "UNSUPPORTED_MEDIA_TYPE", message: "request body must be application/json" },
    });
    expect(tableCounts(t.db)).toEqual(before);
  });
});

describe("GET /v1/watches refuses bad query parameters", () => {
  const eventCursor = encodeCursor("evt_01KE4E1TG08P31S5BMXM0VHB4E");
  it.each<[string, string]>([
    ["limit=0", "limit"],
    ["limit=201", "limit"],
    ["limit=abc", "limit"],
    ["limit=1.5", "limit"],
    ["limit=-1", "limit"],
    ["cursor=not*a*cursor", "cursor"],
    ["cursor=Zm9v", "cursor"],
    [`cursor=${eventCursor}`, "cursor"],
    [`cursor=${"A".repeat(201)}`, "cursor"],
    ["status=running", "status"],
    ["task_id=task%2F1", "task_id"],
  ])("%s → 400", async (query, path) => {
    const { t } = await seeded();
    const res = await t.call("GET", `/v1/watches?${query}`);
    expectValidationError(res, path);
  });

  it("words the limit error for people", async () => {
    const { t } = await seeded();
    const res = await t.call("GET", "/v1/watches?limit=201");
    expect(res.body).toEqual({
      error: {
        code: "VALIDATION_ERROR",
        message: "limit: must be between 1 and 200",
        details: [{ path: "limit", message: "must be between 1 and 200" }],
      },
    });
  });
});

describe("missing watches", () => {
  const missing = { error: { code: "NOT_FOUND", message: "watch not found" } };

  it.each([["wch_01KE4E1TG08P31S5BMXM0VHB4E"], ["nope"], ["wch_"]])(
    "GET, DELETE and /events of %s answer 404 NOT_FOUND",
    async (id) => {
      const { t, before } = await seeded();
      for (const [method, path] of [
        ["GET", `/v1/watches/${id}`],
        ["DELETE", `/v1/watches/${id}`],
        ["GET", `/v1/watches/${id}/events`],
      ] as const) {
        const res = await t.call(method, path);
        expect(res.status).toBe(404);
        expect(res.body).toEqual(missing);
      }
      expect(tableCounts(t.db)).toEqual(before);
    },
  );

  it("an unknown route or method answers the same envelope", async () => {
    const t = createTestContext();
    const res = await t.call("PUT", "/v1/watches");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      error: { code: "NOT_FOUND", message: "no route for PUT /v1/watches" },
    });
  });
});
