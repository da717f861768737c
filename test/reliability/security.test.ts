import * as crypto from "node:crypto";
import type { LookupAddress } from "node:dns";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { createGuardedLookup, type LookupAll } from "../../src/delivery/guard.js";
import { createSender } from "../../src/delivery/sender.js";
import { insertEvent } from "../http/fixtures.js";
import { type ServiceProcess, startService } from "../support/child.js";
import {
  ADMIN,
  createTestContext,
  KEY_A,
  KEY_B,
  type TestContext,
  tableCounts,
} from "../support/context.js";
import { completed, processing, startFakeUpstream } from "../support/fake-upstream.js";
import { startReceiver } from "../support/receiver.js";
import { ADMIN_TOKEN, call, serviceEnv, tempDir, waitUntil } from "./harness.js";
import { Figures } from "./report.js";

// Spies on the two primitives the admin token check must go through; they still do the real work.
vi.mock("node:crypto", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:crypto")>();
  return {
    ...actual,
    default: actual,
    createHash: vi.fn(actual.createHash),
    timingSafeEqual: vi.fn(actual.timingSafeEqual),
  };
});

const figures = new Figures(
  "security",
  "Security: tenants, admin, secrets, SSRF",
  "Two tenants against every client route (in process); the admin token rules with and without ADMIN_TOKEN; how the admin token is compared; a child process whose database file, WAL and log lines (at debug level) are searched for every client key and signing secret in every encoding; and the SSRF matrix — callback URLs refused at registration (literal IPv4 and IPv6, IPv4-mapped, decimal, octal and hex forms, localhost names) and addresses refused at delivery, where the sender's resolver is scripted (a name that resolves to loopback, one that re-resolves to a private address).",
);

afterEach((ctx) => figures.outcome(ctx.task.name, ctx.task.result?.state));
afterAll(() => figures.save());

const HOOK = "https://hooks.example.com/security";

async function createdBy(t: TestContext, key: string, taskId: string) {
  const res = await t.call("POST", "/v1/watches", {
    key,
    body: { task_id: taskId, callback_url: HOOK },
  });
  expect(res.status).toBe(201);
  return res.body as { id: string };
}

describe("tenant isolation: tenant B against everything of tenant A", () => {
  it("sees, changes and replays nothing of A's, on any route, and learns nothing from the answers", async () => {
    const t = createTestContext();
    const a = await createdBy(t, KEY_A, "task_shared");
    const { eventId, deliveryId } = insertEvent(t, a.id, {
      delivery: { status: "failed", attempts: 10 },
    });
    const missing = "wch_01KE4E1TG08P31S5BMXM0VHB4E";
    const missingDelivery = "dlv_01KE4E1TG08P31S5BMXM0VHB4E";
    const aSecret = (await t.call("GET", "/v1/signing-secret", { key: KEY_A })).body.secret;
    const aList = await t.call("GET", "/v1/watches?limit=1", { key: KEY_A });
    const before = tableCounts(t.db);
    let checks = 0;

    // Another tenant's resource answers exactly as a missing one.
    for (const [method, path, missingPath] of [
      ["GET", `/v1/watches/${a.id}`, `/v1/watches/${missing}`],
      ["DELETE", `/v1/watches/${a.id}`, `/v1/watches/${missing}`],
      ["GET", `/v1/watches/${a.id}/events`, `/v1/watches/${missing}/events`],
      ["POST", `/v1/deliveries/${deliveryId}/retry`, `/v1/deliveries/${missingDelivery}/retry`],
    ] as const) {
      const theirs = await t.call(method, path, { key: KEY_B });
      const none = await t.call(method, missingPath, { key: KEY_B });
      expect(theirs.status, `${method} ${path}`).toBe(404);
      expect(theirs.body).toEqual(none.body);
      checks += 1;
    }
    expect(tableCounts(t.db)).toEqual(before);
    expect((await t.call("GET", `/v1/watches/${a.id}`, { key: KEY_A })).body.status).toBe("active");
    const aEvents = await t.call("GET", `/v1/watches/${a.id}/events`, { key: KEY_A });
    expect(aEvents.body.data[0].delivery.status).toBe("failed");

    // Lists and feeds hold only B's own, whatever the filter or cursor.
    for (const path of [
      "/v1/watches",
      "/v1/watches?task_id=task_shared",
      "/v1/watches?status=active",
      `/v1/watches?cursor=${aList.body.next_cursor ?? ""}`,
      "/v1/events",
      `/v1/events?after=${Buffer.from(`c1:evt_00000000000000000000000000`).toString("base64url")}`,
    ]) {
      const res = await t.call("GET", path, { key: KEY_B });
      expect(res.status, path).toBe(200);
      expect(JSON.stringify(res.body), path).not.toContain(a.id);
      expect(JSON.stringify(res.body), path).not.toContain(eventId);
      checks += 1;
    }

    // B's secret is B's own; rotating it leaves A's alone.
    const bSecret = (await t.call("GET", "/v1/signing-secret", { key: KEY_B })).body.secret;
    expect(bSecret).not.toBe(aSecret);
    await t.call("POST", "/v1/signing-secret/rotate", { key: KEY_B });
    expect((await t.call("GET", "/v1/signing-secret", { key: KEY_A })).body.secret).toBe(aSecret);
    checks += 2;

    // The same task and callback URL make B a watch of its own, not A's 200 or 409.
    const b = await t.call("POST", "/v1/watches", {
      key: KEY_B,
      body: { task_id: "task_shared", callback_url: HOOK, metadata: { other: true } },
    });
    expect(b.status).toBe(201);
    expect(b.body.id).not.toBe(a.id);
    checks += 1;

    // Client keys are no admin credentials.
    for (const path of ["/admin/watches", "/admin/deliveries", "/admin/stats"]) {
      expect((await t.call("GET", path, { key: KEY_A })).status).toBe(401);
      checks += 1;
    }
    expect(
      (await t.call("POST", `/admin/deliveries/${deliveryId}/retry`, { key: KEY_B })).status,
    ).toBe(401);
    checks += 1;
    figures.set("cross-tenant checks", checks);
  });
});

describe("admin token", () => {
  const ROUTES = [
    ["GET", "/admin/watches"],
    ["GET", "/admin/deliveries?status=failed"],
    ["POST", "/admin/deliveries/dlv_01KE4E1TG08P31S5BMXM0VHB4E/retry"],
    ["GET", "/admin/stats"],
  ] as const;

  it("without ADMIN_TOKEN every /admin route is 403 FORBIDDEN, whatever is sent", async () => {
    const t = createTestContext({ ADMIN_TOKEN: "" });
    for (const [method, path] of ROUTES) {
      for (const header of [undefined, `Bearer ${ADMIN}`, "Bearer ", `Bearer ${KEY_A}`]) {
        const res = await t.call(method, path, {
          key: null,
          headers: header === undefined ? {} : { authorization: header },
        });
        expect(res.status, `${method} ${path} ${header}`).toBe(403);
        expect(res.body.error.code).toBe("FORBIDDEN");
      }
    }
  });

  it("with ADMIN_TOKEN: only the exact token opens /admin; near misses are 401", async () => {
    const t = createTestContext();
    const nearMisses = [
      "",
      ADMIN.slice(0, -1),
      `${ADMIN}x`,
      ADMIN.toUpperCase(),
      // (A trailing space is no near miss: HTTP strips it from the field value before anyone reads it.)
      ` ${ADMIN}`,
      ADMIN.slice(1),
      "x".repeat(ADMIN.length),
      "x".repeat(10_000),
    ];
    let tried = 0;
    for (const [method, path] of ROUTES) {
      for (const token of nearMisses) {
        const res = await t.call(method, path, {
          key: null,
          headers: { authorization: `Bearer ${token}` },
        });
        expect(res.status, `${path} with ${JSON.stringify(token.slice(0, 40))}`).toBe(401);
        expect(res.body.error.code).toBe("UNAUTHORIZED");
        tried += 1;
      }
      for (const headers of [
        {},
        { authorization: ADMIN },
        { authorization: `Basic ${ADMIN}` },
      ] as Array<Record<string, string>>) {
        expect((await t.call(method, path, { key: null, headers })).status).toBe(401);
        tried += 1;
      }
      const ok = await t.call(method, path, {
        key: null,
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(ok.status, path).toBeLessThan(400 + (method === "POST" ? 5 : 0));
    }
    figures.set("admin near-miss tokens refused", tried);
  });

  it("compares every token through SHA-256 digests and timingSafeEqual, whatever its length", async () => {
    const t = createTestContext();
    const createHash = vi.mocked(crypto.createHash);
    const timingSafeEqual = vi.mocked(crypto.timingSafeEqual);
    // Lengths around and far from the real one's: none may take a shortcut (no early length check).
    for (const token of [
      "",
      "a",
      ADMIN.slice(0, -1),
      "x".repeat(ADMIN.length),
      ADMIN,
      "y".repeat(5_000),
    ]) {
      createHash.mockClear();
      timingSafeEqual.mockClear();
      await t.call("GET", "/admin/stats", {
        key: null,
        headers: { authorization: `Bearer ${token}` },
      });
      expect(timingSafeEqual, `token of ${token.length} chars`).toHaveBeenCalledTimes(1);
      const [left, right] = timingSafeEqual.mock.calls[0] ?? [];
      expect((left as Buffer).length).toBe(32);
      expect((right as Buffer).length).toBe(32);
      expect(
        createHash.mock.calls.filter(([alg]) => alg === "sha256").length,
      ).toBeGreaterThanOrEqual(2);
    }
    // And nothing else in the check compares the token with the configured one directly.
    const source = readFileSync(new URL("../../src/http/auth.ts", import.meta.url), "utf8");
    const adminCheck = source.slice(source.indexOf("export const adminAuth"));
    expect(adminCheck).toContain("constantTimeEqual(token, expected)");
    expect(adminCheck).not.toMatch(
      /(token|expected)\s*(===|!==|==|!=)|(===|!==|==|!=)\s*(token|expected)\b/,
    );
    expect(adminCheck).not.toMatch(/\.length/);
  });
});

describe("secrets at rest and in logs (a child process)", () => {
  it("the database file, its WAL and the log lines never hold a client key or a signing secret in clear", async () => {
    const up = await startFakeUpstream();
    const rx = await startReceiver();
    const dir = tempDir("security");
    let svc: ServiceProcess | undefined;
    try {
      const keys = ["vpk_secret_tenant_one_0123456789", "vpk_secret_tenant_two_9876543210"];
      const env = serviceEnv(dir.path, up.url, {
        LOG_LEVEL: "debug",
        POLL_INTERVAL_MIN_MS: "100",
        POLL_INTERVAL_MAX_MS: "300",
        DELIVERY_RETRY_SCHEDULE: "0s,100ms",
      });
      svc = await startService(env);
      const secrets: string[] = [];
      for (const key of keys) {
        up.addTask({
          taskId: `task_${key.slice(-4)}`,
          apiKey: key,
          lifecycle: [processing(Date.now()), completed()],
        });
        secrets.push((await call(svc.url, "GET", "/v1/signing-secret", { key })).body.secret);
        const res = await call(svc.url, "POST", "/v1/watches", {
          key,
          body: { task_id: `task_${key.slice(-4)}`, callback_url: `${rx.url}/hook` },
        });
        expect(res.status).toBe(201);
      }
      // A rotation keeps the old secret (encrypted) for 24 h: both must stay out of sight.
      secrets.push(
        (await call(svc.url, "POST", "/v1/signing-secret/rotate", { key: keys[0] })).body.secret,
      );
      rx.respondWith(500, 1);
      await call(svc.url, "POST", "/v1/webhook-test", {
        key: keys[1],
        body: { callback_url: `${rx.url}/ping` },
      });
      await call(svc.url, "GET", "/v1/watches", { key: "vpk_wrong_key_never_registered" });
      await call(svc.url, "GET", "/admin/stats", { key: "not-the-admin-token-but-close" });
      await waitUntil(
        "both tasks' final webhooks arrived",
        () =>
          rx.requests.filter((r) => (r.json as { type?: string } | null)?.type === "task.completed")
            .length >= 2,
        { timeoutMs: 15_000 },
      );
      const dbPath = join(dir.path, "taskhook.db");
      const read = (p: string) => (existsSync(p) ? readFileSync(p) : Buffer.alloc(0));
      const whileOpen = [read(dbPath), read(`${dbPath}-wal`), read(`${dbPath}-shm`)];
      svc.kill("SIGTERM");
      expect(await svc.exited).toBe(0);
      const afterClose = [read(dbPath), read(`${dbPath}-wal`)];
      const files = Buffer.concat([...whileOpen, ...afterClose]);
      const log = svc.lines.join("\n");
      // The search finds what is stored and logged in clear: the tenants' tasks.
      expect(files.includes("task_6789")).toBe(true);
      expect(log).toContain("task_6789");

      const signatures = rx.requests
        .flatMap((r) => (r.headers["webhook-signature"] ?? "").split(" "))
        .map((s) => s.slice(3));
      const needles: Array<[string, string | Buffer]> = [];
      for (const key of [...keys, "vpk_wrong_key_never_registered"]) {
        needles.push(
          [`key ${key.slice(0, 12)}…`, key],
          ["key without vpk_", key.slice(4)],
          ["key in base64", Buffer.from(key).toString("base64")],
        );
      }
      for (const secret of secrets) {
        const b64 = secret.slice("whsec_".length);
        needles.push(
          ["secret", secret],
          ["secret's base64", b64],
          ["secret's bytes", Buffer.from(b64, "base64")],
        );
      }
      needles.push(["ENCRYPTION_KEY", env.ENCRYPTION_KEY ?? ""], ["admin token", ADMIN_TOKEN]);
      for (const signature of signatures) needles.push(["a signature", signature]);
      const found = needles.filter(
        ([, needle]) => files.includes(needle) || log.includes(needle.toString()),
      );
      figures.set("log lines searched (debug level)", svc.lines.length);
      figures.set("bytes of database, WAL and SHM searched", files.length);
      figures.set("needles (keys, secrets, signatures, in clear, base64 and raw)", needles.length);
      figures.set("needles found", found.length);
      expect(found.map(([what]) => what)).toEqual([]);
    } finally {
      svc?.kill("SIGKILL");
      await svc?.exited;
      await rx.close();
      await up.close();
      dir.remove();
    }
  }, 60_000);
});

describe("SSRF at registration", () => {
  const REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://2130706433/",
    "http://3232235777/",
    "http://167772161/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://0300.0250.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://0xA9FEA9FE/",
    "http://[::1]/",
    "http://[::]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://localhost/",
    "http://LOCALHOST:8080/",
    "http://localhost./",
    "http://api.localhost/",
    "http://ip6-localhost/",
    "http://localhost.localdomain/",
  ];

  it.each(REFUSED)(
    "%s is refused with 400, on registration and on webhook-test, nothing stored",
    async (url) => {
      const t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "false" });
      const before = tableCounts(t.db);
      for (const [path, body] of [
        ["/v1/watches", { task_id: "task_ssrf", callback_url: url }],
        ["/v1/webhook-test", { callback_url: url }],
      ] as const) {
        const res = await t.call("POST", path, { body });
        expect(res.status, `${path} ${url}`).toBe(400);
        expect(res.body.error.code).toBe("VALIDATION_ERROR");
        expect(res.body.error.message).toMatch(/^callback_url: /);
      }
      expect(tableCounts(t.db)).toEqual(before);
      figures.add("registration URLs refused");
    },
  );

  it.each([
    "https://93.184.216.34/hook",
    "https://[2606:2800:220:1::]/hook",
    "https://hooks.example.com/hook",
  ])("%s (public) is accepted", async (url) => {
    const t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "false" });
    const res = await t.call("POST", "/v1/watches", {
      body: { task_id: "task_ssrf", callback_url: url },
    });
    expect(res.status).toBe(201);
  });

  it("plain http is refused when REQUIRE_HTTPS_CALLBACKS=true", async () => {
    const t = createTestContext({ REQUIRE_HTTPS_CALLBACKS: "true" });
    const res = await t.call("POST", "/v1/watches", {
      body: { task_id: "task_ssrf", callback_url: "http://hooks.example.com/" },
    });
    expect(res.status).toBe(400);
  });
});

describe("SSRF at delivery (the sender's resolver scripted)", () => {
  const HOST = "hooks.rebind.test";
  const v4 = (address: string): LookupAddress => ({ address, family: 4 });
  const v6 = (address: string): LookupAddress => ({ address, family: 6 });

  /** Answers from a script, one per call (the last repeats), and records each call. */
  function scripted(...answers: LookupAddress[][]): LookupAll & { asked: number } {
    const lookup = Object.assign(
      (
        _host: string,
        _options: unknown,
        callback: (err: NodeJS.ErrnoException | null, a: LookupAddress[]) => void,
      ) => {
        const answer = answers[Math.min(lookup.asked, answers.length - 1)] ?? [];
        lookup.asked += 1;
        setImmediate(() => callback(null, answer));
      },
      { asked: 0 },
    );
    return lookup;
  }

  it.each([
    ["loopback", [v4("127.0.0.1")]],
    ["IPv6 loopback", [v6("::1")]],
    ["IPv4-mapped loopback", [v6("::ffff:127.0.0.1")]],
    ["a private network", [v4("10.0.0.5")]],
    ["cloud metadata", [v4("169.254.169.254")]],
    ["unique-local IPv6", [v6("fd00::1")]],
    ["the unspecified address", [v4("0.0.0.0")]],
    ["a public and a loopback address", [v4("93.184.216.34"), v4("127.0.0.1")]],
  ] as const)(
    "a name that resolves to %s fails the attempt; the receiver on loopback gets nothing",
    async (_, answer) => {
      const rx = await startReceiver();
      const lookup = scripted([...answer]);
      const sender = createSender({ timeoutMs: 2_000, allowPrivate: false, lookup });
      try {
        const attempt = await sender.send(
          {
            url: `http://${HOST}:${rx.port}/hook`,
            id: "evt_01KE4E1TG08P31S5BMXM0VHB4E",
            body: "{}",
            secrets: ["whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ="],
          },
          Date.now(),
        );
        expect(attempt.statusCode).toBeNull();
        expect(attempt.error).toMatch(
          /^EADDRBLOCKED: callback host hooks\.rebind\.test resolved to .*: refused$/,
        );
        expect(lookup.asked).toBe(1);
        expect(rx.requests).toEqual([]);
        figures.add("delivery addresses refused");
      } finally {
        await sender.close();
        await rx.close();
      }
    },
  );

  it("a name accepted at registration that re-resolves to a private address is refused at delivery", async () => {
    // Registration judges the name (it has no address yet); every connection judges what it resolves to now.
    const t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "false" });
    const res = await t.call("POST", "/v1/watches", {
      body: { task_id: "task_rebind", callback_url: `https://${HOST}/hook` },
    });
    expect(res.status).toBe(201);

    const lookup = scripted(
      [v4("93.184.216.34")],
      [v4("10.0.0.5")],
      [v6("::ffff:169.254.169.254")],
    );
    const guarded = createGuardedLookup({ allowPrivate: false, lookup });
    const resolve = () =>
      new Promise<{ err: NodeJS.ErrnoException | null; address: string }>((done) =>
        guarded(HOST, { family: 0 }, (err, address) => done({ err, address: String(address) })),
      );
    const first = await resolve();
    expect(first).toEqual({ err: null, address: "93.184.216.34" });
    const second = await resolve();
    expect(second.err?.code).toBe("EADDRBLOCKED");
    expect(second.err?.message).toMatch(/resolved to 10\.0\.0\.5 \(private\): refused/);
    const third = await resolve();
    expect(third.err?.code).toBe("EADDRBLOCKED");
    expect(lookup.asked).toBe(3);

    // The same through the sender: the re-resolved private address is never connected to.
    const rx = await startReceiver();
    const rebinding = scripted([v4("10.0.0.5")]);
    const sender = createSender({ timeoutMs: 2_000, allowPrivate: false, lookup: rebinding });
    try {
      const attempt = await sender.send(
        {
          url: `http://${HOST}:${rx.port}/hook`,
          id: "evt_01KE4E1TG08P31S5BMXM0VHB4F",
          body: "{}",
          secrets: ["whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ="],
        },
        Date.now(),
      );
      expect(attempt.error).toMatch(/^EADDRBLOCKED: .*10\.0\.0\.5 \(private\): refused$/);
      expect(rx.requests).toEqual([]);
    } finally {
      await sender.close();
      await rx.close();
    }
    figures.add("delivery addresses refused", 3);
  });

  it("a literal private address is refused before connecting, even one stored while private callbacks were allowed", async () => {
    const rx = await startReceiver();
    const sender = createSender({ timeoutMs: 2_000, allowPrivate: false });
    try {
      for (const host of ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"]) {
        const attempt = await sender.send(
          {
            url: `http://${host}:${rx.port}/hook`,
            id: "evt_01KE4E1TG08P31S5BMXM0VHB4G",
            body: "{}",
            secrets: ["whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ="],
          },
          Date.now(),
        );
        expect(attempt.error, host).toMatch(
          /^EADDRBLOCKED: callback host .* is a loopback address: refused$/,
        );
        figures.add("delivery addresses refused");
      }
      expect(rx.requests).toEqual([]);
    } finally {
      await sender.close();
      await rx.close();
    }
  });
});
