/**
 * What the reliability scenarios share: a scratch folder and environment for the child service,
 * JSON calls to it, waiting for conditions (never fixed sleeps), and the audit that compares what the
 * receiver got with the outbox in the database file.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll } from "vitest";
import type { ServiceProcess } from "../support/child.js";
import {
  type FakeUpstream,
  type RecordedUpstreamRequest,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { type ReceivedRequest, type Receiver, startReceiver } from "../support/receiver.js";
import type { Figures } from "./report.js";

export const ADMIN_TOKEN = "reliability-admin-token-0123456789";

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `taskhook-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** The child's environment: a database file in `dir`, a fixed ENCRYPTION_KEY (restarts must share it). */
export function serviceEnv(
  dir: string,
  upstreamUrl: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    DATABASE_URL: join(dir, "taskhook.db"),
    ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    ADMIN_TOKEN,
    UPSTREAM_BASE_URL: upstreamUrl,
    ALLOW_PRIVATE_CALLBACKS: "true",
    ...extra,
  };
}

export interface CallResult {
  status: number;
  body: any;
  ms: number;
}

/** One JSON call to the service; `key` is a client key, `admin: true` sends the admin token. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: { key?: string; admin?: boolean; body?: unknown; timeoutMs?: number } = {},
): Promise<CallResult> {
  const headers: Record<string, string> = {};
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.admin) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const started = performance.now();
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body, ms: performance.now() - started };
}

/** Polls `check` until it holds; the error names what was awaited and the last state seen. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; state?: () => unknown },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      const state = options.state ? ` (last state: ${JSON.stringify(options.state())})` : "";
      throw new Error(`timed out after ${options.timeoutMs} ms waiting until ${what}${state}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

/**
 * Waits until every watch has ended and no delivery is pending, as GET /admin/stats tells. `base` is
 * read at each try: the process answering may be a restarted one.
 */
export async function untilSettled(base: () => string, timeoutMs: number): Promise<void> {
  let last: unknown;
  await waitUntil(
    "every watch has ended and the outbox is empty",
    async () => {
      const stats = await call(base(), "GET", "/admin/stats", { admin: true });
      last = stats.body;
      return (
        stats.status === 200 &&
        stats.body.watches.active === 0 &&
        stats.body.deliveries.pending === 0
      );
    },
    { timeoutMs, intervalMs: 200, state: () => last },
  );
}

/** Runs `fn` on a read-only connection to the database file (the service may still hold it open). */
export function withDb<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export interface StoredEvent {
  id: string;
  watch_id: string;
  sequence: number;
  type: string;
}

export function storedEvents(path: string): StoredEvent[] {
  return withDb(
    path,
    (db) =>
      db
        .prepare("select id, watch_id, sequence, type from events order by id")
        .all() as StoredEvent[],
  );
}

/** Deliveries whose attempt had not been recorded: leased, so sent again after a restart. */
export function leasedDeliveries(path: string): string[] {
  return withDb(path, (db) =>
    (
      db
        .prepare(
          "select event_id from deliveries where status = 'pending' and lease_until is not null",
        )
        .all() as Array<{ event_id: string }>
    ).map((r) => r.event_id),
  );
}

/** The fields of a service log line that the scenarios read. */
export interface LogRecord {
  msg?: string;
  time?: string;
  taskId?: string;
  outcome?: string;
  status?: number;
  ms?: number;
}

/** The service's JSON log lines, parsed; a line that is not JSON (a runtime warning) is left out. */
export function logRecords(lines: readonly string[]): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of lines) {
    try {
      records.push(JSON.parse(line) as LogRecord);
    } catch {
      // not one of ours
    }
  }
  return records;
}

/**
 * Upstream answers the service never saw: its own time-out for the poll fired first (an "upstream
 * fault" line with outcome timeout, logged for that task within the time-out after the request
 * arrived). On a loaded machine a 200 can reach a process whose deadline timer runs before it reads
 * the answer; such an answer may, but need not, yield an event. `slackMs` covers a timer that fires
 * late on a stalled event loop; a poll wrongly counted here only makes the check more lenient.
 */
export function abandonedBy(
  lines: readonly string[],
  timeoutMs: number,
  slackMs = 500,
): (r: RecordedUpstreamRequest) => boolean {
  const timeouts = logRecords(lines)
    .filter((l) => l.msg === "upstream fault" && l.outcome === "timeout" && l.taskId !== undefined)
    .map((l) => ({ taskId: l.taskId, at: Date.parse(l.time ?? "") }));
  return (r) =>
    timeouts.some(
      (t) => t.taskId === r.taskId && t.at >= r.at - 50 && t.at <= r.at + timeoutMs + slackMs,
    );
}

/**
 * Event ids with an attempt recorded as a time-out: the consumer may have had that webhook, and the
 * retry sends it again (at least once, as SPEC promises), so a duplicate of it is expected.
 */
export function timedOutDeliveries(path: string): Set<string> {
  return withDb(
    path,
    (db) =>
      new Set(
        (
          db
            .prepare(
              `select distinct d.event_id from delivery_attempts a join deliveries d on d.id = a.delivery_id
               where a.error like 'timeout%'`,
            )
            .all() as Array<{ event_id: string }>
        ).map((r) => r.event_id),
      ),
  );
}

export interface ReceiverAudit {
  /** Every webhook received, duplicates included. */
  received: number;
  /** Distinct webhook-ids. */
  unique: number;
  /** webhook-id → times received, for those received more than once. */
  duplicates: Map<string, number>;
  badSignatures: number;
  /** Per watch, its events in the order of their first arrival. */
  byWatch: Map<string, Array<{ id: string; sequence: number; type: string }>>;
}

interface WebhookJson {
  type: string;
  data: { event_id: string; watch_id: string | null; sequence: number };
}

/** Checks every signature with the watch's tenant secret and groups first arrivals by watch. */
export function auditReceiver(
  requests: readonly ReceivedRequest[],
  secretOf: (watchId: string) => string | undefined,
): ReceiverAudit {
  const seen = new Map<string, number>();
  const byWatch = new Map<string, Array<{ id: string; sequence: number; type: string }>>();
  let badSignatures = 0;
  for (const req of requests) {
    const id = req.headers["webhook-id"] ?? "";
    const json = req.json as WebhookJson | null;
    const watchId = json?.data?.watch_id ?? "";
    const secret = secretOf(watchId);
    try {
      if (!secret) throw new Error("no secret for this watch");
      new Webhook(secret).verify(req.body, {
        "webhook-id": id,
        "webhook-timestamp": req.headers["webhook-timestamp"] ?? "",
        "webhook-signature": req.headers["webhook-signature"] ?? "",
      });
    } catch {
      badSignatures += 1;
    }
    const times = (seen.get(id) ?? 0) + 1;
    seen.set(id, times);
    if (times > 1 || !json) continue;
    const list = byWatch.get(watchId) ?? [];
    list.push({ id, sequence: json.data.sequence, type: json.type });
    byWatch.set(watchId, list);
  }
  const duplicates = new Map([...seen].filter(([, n]) => n > 1));
  return { received: requests.length, unique: seen.size, duplicates, badSignatures, byWatch };
}

export interface OutboxComparison {
  /** Events in the database the receiver never got. */
  lost: string[];
  /** Webhooks received that match no stored event. */
  invented: string[];
  /** Watches whose stored sequences are not 1..n. */
  gaps: string[];
  /** Watches whose events first arrived out of sequence order. */
  outOfOrder: string[];
}

export function compareWithOutbox(
  stored: readonly StoredEvent[],
  audit: ReceiverAudit,
): OutboxComparison {
  const receivedIds = new Set<string>();
  for (const list of audit.byWatch.values()) for (const e of list) receivedIds.add(e.id);
  const storedIds = new Set(stored.map((e) => e.id));
  const perWatch = new Map<string, number[]>();
  for (const e of stored)
    perWatch.set(e.watch_id, [...(perWatch.get(e.watch_id) ?? []), e.sequence]);
  const gaps = [...perWatch]
    .filter(([, seqs]) => seqs.sort((a, b) => a - b).some((s, i) => s !== i + 1))
    .map(([w]) => w);
  const outOfOrder = [...audit.byWatch]
    .filter(([, list]) => list.some((e, i) => i > 0 && e.sequence <= (list[i - 1]?.sequence ?? 0)))
    .map(([w]) => w);
  return {
    lost: stored.filter((e) => !receivedIds.has(e.id)).map((e) => e.id),
    invented: [...receivedIds].filter((id) => !storedIds.has(id)),
    gaps,
    outOfOrder,
  };
}

/**
 * Another OS process that opens the database file and holds `BEGIN EXCLUSIVE` until `release()`
 * (or until its stdin closes, or `maxHoldMs` passes, so that it never outlives a failed test).
 * Resolves once the lock is taken; `release()` resolves when the process has let go and exited.
 *
 * The test decides when the lock ends, not a timer in the child: a call the test makes while it
 * holds the lock is sure to meet the lock, however slow the machine is.
 */
export async function lockDatabase(
  path: string,
  maxHoldMs = 60_000,
): Promise<{ release(): Promise<number | null> }> {
  const script = `
    const Database = require("better-sqlite3");
    const db = new Database(process.argv[1], { timeout: 10000 });
    db.exec("BEGIN EXCLUSIVE");
    process.stdout.write("locked\\n");
    const release = () => { db.exec("COMMIT"); db.close(); process.exit(0); };
    process.stdin.on("data", release);
    process.stdin.on("end", release);
    setTimeout(release, Number(process.argv[2]));
  `;
  const proc = spawn(process.execPath, ["-e", script, path, String(maxHoldMs)], {
    cwd: join(import.meta.dirname, "../.."),
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("locked")) resolve();
    });
    proc.on("exit", (code) => reject(new Error(`lock process exited early (${code})`)));
  });
  return {
    release() {
      proc.stdin?.end("release\n");
      return exited;
    },
  };
}

/**
 * Another OS process that writes to the database file in short transactions for `durationMs`: each
 * holds the write lock for 5–50 ms, then lets go for 30 ms (a second taskhook process on the same
 * file, busier than any would be). Resolves with how many transactions it committed.
 */
export function noisyWriter(path: string, durationMs: number): Promise<number> {
  const script = `
    const Database = require("better-sqlite3");
    const db = new Database(process.argv[1], { timeout: 10000 });
    const end = Date.now() + Number(process.argv[2]);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    let n = 0;
    const step = () => {
      if (Date.now() >= end) { db.close(); process.stdout.write(String(n)); return; }
      db.exec("BEGIN IMMEDIATE");
      db.prepare("INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES ('noisy-writer', 'test', ?)").run(Date.now());
      Atomics.wait(pause, 0, 0, 5 + Math.floor(Math.random() * 45));
      db.exec("COMMIT");
      n += 1;
      setTimeout(step, 30);
    };
    step();
  `;
  const proc = spawn(process.execPath, ["-e", script, path, String(durationMs)], {
    cwd: join(import.meta.dirname, "../.."),
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  proc.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  return new Promise((resolve, reject) =>
    proc.on("exit", (code) =>
      code === 0 ? resolve(Number(out)) : reject(new Error(`noisy writer exited ${code}`)),
    ),
  );
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/** What a child-process scenario runs against: the fake upstream, the receiver, a folder, the service. */
export interface World {
  up: FakeUpstream;
  rx: Receiver;
  dir: { path: string; remove(): void };
  svc: ServiceProcess | undefined;
}

/**
 * Starts the world before the file's tests and tears it down after them (the child killed, the
 * servers closed, the folder removed, the figures saved); its fields are set once `beforeAll` ran.
 */
export function useWorld(name: string, figures: Figures): World {
  const world = { svc: undefined } as World;
  beforeAll(async () => {
    world.up = await startFakeUpstream();
    world.rx = await startReceiver();
    world.dir = tempDir(name);
  });
  afterEach((ctx) => figures.outcome(ctx.task.name, ctx.task.result?.state));
  afterAll(async () => {
    world.svc?.kill("SIGKILL");
    await world.svc?.exited;
    await world.rx.close();
    await world.up.close();
    world.dir.remove();
    figures.save();
  });
  return world;
}
