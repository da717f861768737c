import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { ManualClock } from "../../src/clock.js";
import { type Config, loadConfig } from "../../src/config.js";
import { type Db, openDatabase } from "../../src/db/client.js";
import { createSender } from "../../src/delivery/sender.js";
import { createApp } from "../../src/http/app.js";
import type { AppDeps } from "../../src/http/context.js";
import { createLogger, type Logger } from "../../src/log.js";

export const KEY_A = "vpk_test_alice_0123456789";
export const KEY_B = "vpk_test_bob_9876543210";
export const ADMIN = "admin-token-for-tests-0123456789";

/** Captures log lines so tests can assert what was (and was never) logged. */
export function memoryLogger(level = "debug"): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}

export interface TestContext {
  db: Db;
  clock: ManualClock;
  config: Config;
  deps: AppDeps;
  app: ReturnType<typeof createApp>;
  logLines: string[];
  /** A request through the app (no socket), JSON in and out. */
  call(
    method: string,
    path: string,
    options?: { body?: unknown; key?: string | null; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Headers }>;
}

/** A fresh, migrated in-memory database and app per test; env overrides as strings, like the real env. */
export function createTestContext(
  env: Record<string, string> = {},
  dbPath = ":memory:",
): TestContext {
  const config = loadConfig({ ADMIN_TOKEN: ADMIN, DATABASE_URL: dbPath, ...env });
  const db = openDatabase(dbPath);
  const clock = new ManualClock();
  const { logger, lines } = memoryLogger();
  const sender = createSender({
    timeoutMs: config.DELIVERY_TIMEOUT_MS,
    allowPrivate: config.ALLOW_PRIVATE_CALLBACKS,
  });
  const deps: AppDeps = { db, config, clock, logger, encryptionKey: randomBytes(32), sender };
  const app = createApp(deps);
  const call: TestContext["call"] = async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    const key = options.key === undefined ? KEY_A : options.key;
    if (key !== null && headers.authorization === undefined)
      headers.authorization = `Bearer ${key}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await app.request(path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return { db, clock, config, deps, app, logLines: lines, call };
}

const TABLES = [
  "tenants",
  "poll_targets",
  "watches",
  "events",
  "deliveries",
  "delivery_attempts",
] as const;
type TableName = (typeof TABLES)[number];

/** Row counts of every table: "nothing was stored" is asserted as "these did not change". */
export function tableCounts(db: Db): Record<TableName, number> {
  const count = (t: TableName) =>
    (db.$client.prepare(`select count(*) as n from ${t}`).get() as { n: number }).n;
  return Object.fromEntries(TABLES.map((t) => [t, count(t)])) as Record<TableName, number>;
}
