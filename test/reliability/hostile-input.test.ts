import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ERROR_STATUS } from "../../src/http/errors.js";
import {
  ADMIN,
  createTestContext,
  KEY_A,
  KEY_B,
  type TestContext,
  tableCounts,
} from "../support/context.js";
import { Figures } from "./report.js";

/**
 * Random bodies, headers, ids, cursors and query strings against every route, in process (a fresh
 * in-memory database per property): never a 5xx, never a row stored by a request that was refused,
 * never a stack trace or a file path in a response; plus oversize, deeply nested and mistyped bodies.
 */

const figures = new Figures(
  "hostile-input",
  "Hostile input: property-based tests of every route",
  "fast-check generates requests for every route of the API (client, admin and operations routes, and paths that are none of them): random JSON and non-JSON bodies, near-valid registrations, Authorization headers of every shape, content types, ids, cursors and query strings. Each request is checked for: no 5xx; an error envelope whose code matches its status; no stack trace, file path or internal error name in the body; and, when refused (4xx), the same row counts in every table before and after. The app runs in process on an in-memory database seeded with two tenants' watches, events and deliveries; POST /v1/webhook-test gets a sender stub, so nothing leaves the machine.",
);

const ID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEAK =
  /\bat [\w$.<>]+ \(|\/work\/|\/home\/|\/tmp\/|node_modules|\.[cm]?[jt]s:\d+|SqliteError|DrizzleQueryError|TypeError|RangeError|ReferenceError|SyntaxError: Unexpected/;
const CODE_OF_STATUS = new Map<number, string>(
  Object.entries(ERROR_STATUS).map(([code, status]) => [status, code]),
);

let tried = 0;
let refused = 0;
const statuses = new Map<number, number>();

afterEach((ctx) => figures.outcome(ctx.task.name, ctx.task.result?.state));
afterAll(() => {
  figures.set("requests tried", tried);
  figures.set("refused with a 4xx (table counts compared)", refused);
  for (const [status, n] of [...statuses].sort((a, b) => a[0] - b[0]))
    figures.set(`answers ${status}`, n);
  figures.set(
    "answers 5xx",
    [...statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0),
  );
  figures.save();
});

/** A context seeded with what ids and cursors can point at: both tenants' watches, events, deliveries. */
async function seededContext(): Promise<TestContext> {
  const t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "false" });
  // POST /v1/webhook-test would reach out to whatever URL it is given: not from here.
  t.deps.sender = {
    send: async (_message, now) => ({
      at: now,
      durationMs: 1,
      statusCode: 204,
      error: null,
      responseBody: "",
      retryAfterMs: null,
    }),
    close: async () => undefined,
    destroy: async () => undefined,
  };
  for (const key of [KEY_A, KEY_B]) {
    for (let i = 0; i < 3; i += 1) {
      const res = await t.call("POST", "/v1/watches", {
        key,
        body: { task_id: `task_seed_${i}`, callback_url: `https://hooks.example.com/${i}` },
      });
      if (res.status !== 201) throw new Error(`seeding failed: ${JSON.stringify(res.body)}`);
    }
  }
  return t;
}

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** Sends one request and checks what must hold of every answer; returns the status. */
async function check(t: TestContext, req: Sent): Promise<number> {
  const before = tableCounts(t.db);
  const res = await t.app.request(req.path, {
    method: req.method,
    headers: req.headers,
    body: req.body,
  });
  const text = await res.text();
  tried += 1;
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  const what = `${req.method} ${req.path} ${JSON.stringify(req.headers)} ${req.body?.slice(0, 300) ?? ""}`;
  expect(res.status, `${what} → ${text.slice(0, 300)}`).toBeLessThan(500);
  expect(LEAK.test(text), `${what} leaks: ${text.slice(0, 500)}`).toBe(false);
  if (res.status >= 400) {
    refused += 1;
    // HEAD answers carry no body to check.
    if (req.method === "HEAD") {
      expect(tableCounts(t.db), `${what} stored something though refused`).toEqual(before);
      return res.status;
    }
    const body = JSON.parse(text) as { error: { code: string; message: string } };
    expect(body.error.code, what).toBe(CODE_OF_STATUS.get(res.status));
    expect(body.error.message, what).toEqual(expect.any(String));
    expect(tableCounts(t.db), `${what} stored something though refused`).toEqual(before);
  }
  return res.status;
}

// —— generators ——

const printable = fc.string({
  unit: fc.constantFrom(
    ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-./:;,!?'\"=+*&%$#@()[]{}<>|\\^`~\t\u00e9\u00ff",
  ),
  maxLength: 80,
});

// Valid credentials most of the time, so that requests get past authentication to the route itself.
const authorization = fc.oneof(
  {
    arbitrary: fc.constantFrom(`Bearer ${KEY_A}`, `Bearer ${KEY_B}`, `bearer ${KEY_A}`),
    weight: 6,
  },
  { arbitrary: fc.constant(`Bearer ${ADMIN}`), weight: 3 },
  {
    arbitrary: fc.oneof(
      fc.constantFrom(
        KEY_A,
        "",
        "Bearer ",
        "Bearer vpk_",
        `Bearer vpk_${"a".repeat(300)}`,
        `Basic ${Buffer.from("user:pass").toString("base64")}`,
      ),
      fc.stringMatching(/^Bearer vpk_[A-Za-z0-9_-]{1,40}$/),
      printable.map((s) => `Bearer ${s}`),
      printable,
    ),
    weight: 3,
  },
);

const contentType = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      "application/json",
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
    ),
    weight: 5,
  },
  {
    arbitrary: fc.oneof(
      fc.constantFrom(
        "application/json-patch+json",
        "application/vnd.api+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
      ),
      printable,
    ),
    weight: 2,
  },
);

const wellFormedId = (prefix: string) =>
  fc
    .string({ unit: fc.constantFrom(...ID_CHARS), minLength: 26, maxLength: 26 })
    .map((s) => `${prefix}_${s}`);

const id = fc.oneof(
  wellFormedId("wch"),
  wellFormedId("dlv"),
  wellFormedId("evt"),
  printable.filter((s) => s.length > 0),
  fc.constant("..%2F..%2Fetc%2Fpasswd"),
  fc.constant("%00"),
  fc.constant("%E0%A4%A"),
  fc.string({ minLength: 65, maxLength: 300 }),
);

const cursor = fc.oneof(
  printable,
  fc.constant(""),
  fc.string().map((s) => Buffer.from(`c1:${s}`).toString("base64url")),
  wellFormedId("wch").map((s) => Buffer.from(`c1:${s}`).toString("base64url")),
  wellFormedId("evt").map((s) => Buffer.from(`c1:${s}`).toString("base64url")),
  fc.string({ minLength: 150, maxLength: 400 }),
);

const queryValue = fc.oneof(
  printable,
  fc.integer().map(String),
  fc.double().map(String),
  fc.constantFrom(
    "",
    "0",
    "-1",
    "201",
    "200",
    "1e3",
    "NaN",
    "Infinity",
    "active",
    "failed",
    "done",
    "true",
  ),
  cursor,
);

const query = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom("limit", "cursor", "after", "status", "task_id", "tenant", "callback_host"),
        printable,
      ),
      queryValue,
    ),
    { maxLength: 5 },
  )
  .map((pairs) => {
    const q = new URLSearchParams();
    for (const [k, v] of pairs) q.append(k, v);
    const text = q.toString();
    return text === "" ? "" : `?${text}`;
  });

const callbackUrl = fc.oneof(
  fc.webUrl(),
  fc.constantFrom(
    "https://hooks.example.com/x",
    "http://127.0.0.1/x",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://localhost./",
    "http://169.254.169.254/latest/meta-data",
    "https://user:pass@example.com/",
    "ftp://example.com/",
    "javascript:alert(1)",
    `https://example.com/${"a".repeat(2100)}`,
    "https://exa mple.com/",
    "",
  ),
  printable,
);

const EVENT_TYPES = [
  "task.queued",
  "task.processing",
  "task.completed",
  "task.failed",
  "task.queue_position_changed",
  "watch.expired",
  "watch.failed",
] as const;

/** Each field valid most of the time and anything at all otherwise, so that some registrations succeed. */
const registration = fc.record(
  {
    task_id: fc.oneof(
      { arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,128}$/), weight: 4 },
      { arbitrary: fc.oneof(printable, fc.integer(), fc.constant(null)), weight: 1 },
    ),
    callback_url: fc.oneof(
      {
        arbitrary: fc.constantFrom("https://hooks.example.com/a", "https://hooks.example.com/b"),
        weight: 3,
      },
      { arbitrary: callbackUrl, weight: 2 },
    ),
    events: fc.oneof(
      { arbitrary: fc.subarray([...EVENT_TYPES], { minLength: 1 }), weight: 3 },
      {
        arbitrary: fc.array(fc.oneof(fc.constantFrom(...EVENT_TYPES, "ping"), printable), {
          maxLength: 20,
        }),
        weight: 1,
      },
      { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
    ),
    metadata: fc.oneof(
      {
        arbitrary: fc.dictionary(printable, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
        weight: 3,
      },
      { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 1 },
    ),
    expires_in: fc.oneof(
      { arbitrary: fc.integer({ min: 60, max: 604800 }), weight: 3 },
      {
        arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(59, 604801), printable),
        weight: 1,
      },
    ),
  },
  { requiredKeys: ["task_id", "callback_url"] },
);
const registrationOrWorse = fc.oneof(
  { arbitrary: registration, weight: 4 },
  fc
    .tuple(registration, printable, fc.jsonValue({ maxDepth: 2 }))
    .map(([r, k, v]) => ({ ...r, [k]: v })),
);

const body = fc.oneof(
  { arbitrary: registrationOrWorse.map((r) => JSON.stringify(r)), weight: 4 },
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.record({ callback_url: callbackUrl }, { requiredKeys: [] }).map((r) => JSON.stringify(r)),
  printable,
  fc.constantFrom(
    "",
    "{",
    '{"task_id":',
    "[1,2",
    "\u0000",
    '{"__proto__":{"polluted":1}}',
    "null",
    "true",
    "1e999",
  ),
);

const headers = fc
  .record(
    {
      authorization,
      "content-type": contentType,
      "x-request-id": printable,
      accept: fc.constantFrom("application/json", "*/*", "text/html"),
    },
    { requiredKeys: ["authorization", "content-type"] },
  )
  .map(
    (h) =>
      Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<
        string,
        string
      >,
  );

/** Every route of the API, as a template its generated parts fill in. */
const ROUTES: ReadonlyArray<{ method: string; path: (id: string) => string; body: boolean }> = [
  { method: "POST", path: () => "/v1/watches", body: true },
  { method: "GET", path: () => "/v1/watches", body: false },
  { method: "GET", path: (i) => `/v1/watches/${i}`, body: false },
  { method: "DELETE", path: (i) => `/v1/watches/${i}`, body: false },
  { method: "GET", path: (i) => `/v1/watches/${i}/events`, body: false },
  { method: "GET", path: () => "/v1/events", body: false },
  { method: "POST", path: (i) => `/v1/deliveries/${i}/retry`, body: false },
  { method: "POST", path: () => "/v1/webhook-test", body: true },
  { method: "GET", path: () => "/v1/signing-secret", body: false },
  { method: "POST", path: () => "/v1/signing-secret/rotate", body: false },
  { method: "GET", path: () => "/admin/watches", body: false },
  { method: "GET", path: () => "/admin/deliveries", body: false },
  { method: "POST", path: (i) => `/admin/deliveries/${i}/retry`, body: false },
  { method: "GET", path: () => "/admin/stats", body: false },
  { method: "GET", path: () => "/healthz", body: false },
  { method: "GET", path: () => "/readyz", body: false },
  { method: "GET", path: () => "/metrics", body: false },
  { method: "GET", path: () => "/openapi.json", body: false },
];

const RUNS = Number(process.env.HOSTILE_RUNS ?? 300);

describe("every route, random requests", () => {
  let t: TestContext;
  beforeAll(async () => {
    t = await seededContext();
  });

  for (const route of ROUTES) {
    it(`${route.method} ${route.path("{id}")}: no 5xx, no leak, nothing stored when refused`, async () => {
      await fc.assert(
        fc.asyncProperty(
          id,
          query,
          headers,
          fc.option(body, { nil: undefined, freq: route.body ? 8 : 2 }),
          async (rawId, q, h, b) => {
            const path = `${route.path(encodeURIComponent(rawId))}${q}`;
            const sendBody = route.method === "GET" ? undefined : b;
            await check(t, { method: route.method, path, headers: h, body: sendBody });
          },
        ),
        { numRuns: RUNS },
      );
    });
  }

  it("any method on any path: no 5xx, no leak", async () => {
    const segment = fc.oneof(
      printable.map(encodeURIComponent),
      fc.constantFrom("v1", "admin", "watches", "events", "..", "%2e%2e", "%", "%zz"),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"),
        fc.array(segment, { minLength: 1, maxLength: 5 }),
        query,
        headers,
        fc.option(body, { nil: undefined }),
        async (method, segments, q, h, b) => {
          const sendBody = method === "GET" || method === "HEAD" ? undefined : b;
          await check(t, {
            method,
            path: `/${segments.join("/")}${q}`,
            headers: h,
            body: sendBody,
          });
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });
});

describe("bodies built to hurt", () => {
  const json = { "content-type": "application/json", authorization: `Bearer ${KEY_A}` };
  let t: TestContext;
  beforeAll(async () => {
    t = await seededContext();
  });

  /** `{"a":` ×depth … `}` ×depth, or `[` ×depth … `]` ×depth. */
  const nested = (depth: number, kind: "object" | "array") =>
    kind === "object"
      ? `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`
      : `${"[".repeat(depth)}1${"]".repeat(depth)}`;

  it.each([
    ["metadata nested 10,000 objects deep", 10_000, "object", "metadata"],
    ["metadata nested 10,000 arrays deep", 10_000, "array", "metadata"],
    ["metadata nested 30,000 arrays deep (just under 64 KiB)", 30_000, "array", "metadata"],
    ["events nested 10,000 arrays deep", 10_000, "array", "events"],
    ["an unknown field nested 10,000 objects deep", 10_000, "object", "extra"],
  ] as const)("%s is a 400", async (_, depth, kind, field) => {
    const text = `{"task_id":"task_deep","callback_url":"https://hooks.example.com/deep","${field}":${nested(depth, kind)}}`;
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(64 * 1024);
    expect(await check(t, { method: "POST", path: "/v1/watches", headers: json, body: text })).toBe(
      400,
    );
  });

  it.each([
    ["objects", "object"],
    ["arrays", "array"],
  ] as const)(
    "a whole body nested 10,000 %s deep is a 400 on every body route",
    async (_, kind) => {
      for (const path of ["/v1/watches", "/v1/webhook-test"]) {
        expect(
          await check(t, { method: "POST", path, headers: json, body: nested(10_000, kind) }),
        ).toBe(400);
      }
    },
  );

  it("bodies over 64 KiB are 413 on every route, parsed or not", async () => {
    const big = JSON.stringify({
      task_id: "task_big",
      callback_url: "https://hooks.example.com/",
      metadata: { x: "a".repeat(70_000) },
    });
    for (const route of ROUTES.filter((r) => r.method === "POST")) {
      const path = route.path("dlv_01KE4E1TG08P31S5BMXM0VHB4E");
      expect(await check(t, { method: "POST", path, headers: json, body: big })).toBe(413);
    }
    const huge = `[${"1,".repeat(2_000_000)}1]`;
    expect(await check(t, { method: "POST", path: "/v1/watches", headers: json, body: huge })).toBe(
      413,
    );
  });

  it("a JSON body sent with another content type is 415 on every body route", async () => {
    const valid = JSON.stringify({
      task_id: "task_ct",
      callback_url: "https://hooks.example.com/ct",
    });
    for (const path of ["/v1/watches", "/v1/webhook-test"]) {
      for (const type of [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
      ]) {
        const status = await check(t, {
          method: "POST",
          path,
          headers: { ...json, "content-type": type },
          body: valid,
        });
        expect(status, `${path} as ${type}`).toBe(415);
      }
    }
  });
});
