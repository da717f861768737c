import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { loadConfig } from "../../src/config.js";
import { openDatabase } from "../../src/db/client.js";
import { createApp } from "../../src/http/app.js";
import { createTestContext, KEY_A, memoryLogger, tableCounts } from "../support/context.js";
import { HOOK } from "./fixtures.js";

describe("GET /healthz", () => {
  it("answers 200 without credentials", async () => {
    const t = createTestContext();
    const res = await t.call("GET", "/healthz", { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
  });

  it("still answers 200 when the database is gone: the process runs", async () => {
    const t = createTestContext();
    t.db.$client.close();
    expect((await t.call("GET", "/healthz", { key: null })).status).toBe(200);
  });
});

describe("GET /readyz", () => {
  it("answers 200 when the database answers and the loops run", async () => {
    const t = createTestContext();
    t.deps.loops = () => ({ scheduler: true, deliverer: true });
    const res = await t.call("GET", "/readyz", { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: "ready",
      checks: { database: true, scheduler: true, deliverer: true },
    });
  });

  it.each([
    ["scheduler", { scheduler: false, deliverer: true }],
    ["deliverer", { scheduler: true, deliverer: false }],
    ["scheduler, deliverer", { scheduler: false, deliverer: false }],
  ])("answers 503 UNAVAILABLE naming the stopped loop (%s)", async (names, loops) => {
    const t = createTestContext();
    t.deps.loops = () => loops;
    const res = await t.call("GET", "/readyz", { key: null });
    expect(res.status).toBe(503);
    expect(res.body).toEqual({
      error: {
        code: "UNAVAILABLE",
        message: `not ready: ${names}`,
        details: [{ database: true, ...loops }],
      },
    });
  });

  it("answers 503 when the database does not answer", async () => {
    const t = createTestContext();
    t.db.$client.close();
    const res = await t.call("GET", "/readyz", { key: null });
    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({
      code: "UNAVAILABLE",
      message: "not ready: database",
      details: [{ database: false, scheduler: true, deliverer: true }],
    });
  });
});

describe("unexpected failures", () => {
  it("answer 500 INTERNAL with the envelope, log the error, and leak no internals", async () => {
    const t = createTestContext();
    t.db.$client.close();
    const res = await t.call("GET", "/v1/watches");
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: "INTERNAL", message: "internal error" } });
    const logged = t.logLines.map((l) => JSON.parse(l)).find((l) => l.msg === "unhandled error");
    expect(logged?.level).toBe(50);
    expect(logged?.requestId).toBe(res.headers.get("x-request-id"));
  });
});

describe("a busy database", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("answers 503 UNAVAILABLE (retry) when another process holds the write lock", async () => {
    dir = mkdtempSync(join(tmpdir(), "taskhook-busy-"));
    const path = join(dir, "t.db");
    const db = openDatabase(path, { busyTimeoutMs: 20 });
    const config = loadConfig({ DATABASE_URL: path });
    const { logger } = memoryLogger();
    const app = createApp({
      db,
      config,
      clock: new ManualClock(),
      logger,
      encryptionKey: Buffer.alloc(32, 7),
      sender: {
        send: () => Promise.reject(new Error("no webhooks in this test")),
        close: () => Promise.resolve(),
        destroy: () => Promise.resolve(),
      },
    });
    const other = new Database(path);
    try {
      other.exec("BEGIN IMMEDIATE");
      const res = await app.request("/v1/watches", {
        method: "POST",
        headers: { authorization: `Bearer ${KEY_A}`, "content-type": "application/json" },
        body: JSON.stringify({ task_id: "t1", callback_url: HOOK }),
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        error: { code: "UNAVAILABLE", message: "the database is busy; retry shortly" },
      });
      other.exec("ROLLBACK");
      expect(tableCounts(db).watches).toBe(0);
    } finally {
      other.close();
      db.$client.close();
    }
  });
});

describe("GET /metrics", () => {
  it("serves Prometheus text without credentials, and never a key", async () => {
    const t = createTestContext();
    await t.call("POST", "/v1/watches", { body: { task_id: "t1", callback_url: HOOK } });
    const res = await t.app.request("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^# HELP taskhook_/m);
    expect(text).not.toContain(KEY_A);
  });
});

describe("GET /docs", () => {
  it("serves an HTML API reference built from /openapi.json", async () => {
    const t = createTestContext();
    const res = await t.app.request("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/<html/i);
    expect(html).toContain("/openapi.json");
  });
});

describe("unknown paths", () => {
  it("answer 404 NOT_FOUND with the one envelope", async () => {
    const t = createTestContext();
    const res = await t.call("GET", "/nope", { key: null });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "NOT_FOUND", message: "no route for GET /nope" } });
  });
});
