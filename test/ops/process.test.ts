import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ServiceProcess, startService } from "../support/child.js";
import {
  completed,
  type FakeUpstream,
  processing,
  startFakeUpstream,
} from "../support/fake-upstream.js";
import { type Receiver, startReceiver } from "../support/receiver.js";

const KEY = "vpk_process_test_0123456789";
let dir: string;
let up: FakeUpstream;
let rx: Receiver;
let svc: ServiceProcess | undefined;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: join(dir, "taskhook.db"),
    ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    UPSTREAM_BASE_URL: up.url,
    ALLOW_PRIVATE_CALLBACKS: "true",
    POLL_INTERVAL_MIN_MS: "100",
    POLL_INTERVAL_MAX_MS: "300",
    DELIVERY_RETRY_SCHEDULE: "0s,200ms,400ms",
    ...extra,
  };
}

async function register(taskId: string, path = "/hook") {
  const res = await fetch(`${svc?.url}/v1/watches`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ task_id: taskId, callback_url: `${rx.url}${path}` }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

function deliveryRows() {
  const db = new Database(join(dir, "taskhook.db"), { readonly: true });
  try {
    return db.prepare("select status, attempts, lease_until from deliveries").all() as Array<{
      status: string;
      attempts: number;
      lease_until: number | null;
    }>;
  } finally {
    db.close();
  }
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "taskhook-proc-"));
  up = await startFakeUpstream();
  rx = await startReceiver();
});

afterEach(async () => {
  svc?.kill("SIGKILL");
  await svc?.exited;
  svc = undefined;
  await rx.close();
  await up.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("graceful shutdown (a real child process)", () => {
  it("SIGTERM lets an in-flight delivery finish, closes the database and exits 0", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY, lifecycle: [processing(Date.now())] });
    rx.enqueue({ status: 200, delayMs: 1000 });
    svc = await startService(env({ SHUTDOWN_GRACE_MS: "10000" }));
    await register("task_1");
    // The WAL's size is a gauge, set by the checkpointer's passes (one every 0.5 s): non-zero while
    // the registration, its polls and its deliveries are written (0 again once the WAL starts over).
    await vi.waitFor(
      async () => {
        const metrics = await (await fetch(`${svc?.url}/metrics`)).text();
        expect(Number(metrics.match(/^taskhook_wal_frames (\d+)$/m)?.[1])).toBeGreaterThan(0);
      },
      { timeout: 10_000, interval: 100 },
    );
    await rx.waitFor(1, 10_000);
    svc.kill("SIGTERM");
    expect(await svc.exited).toBe(0);
    expect(deliveryRows()).toEqual([{ status: "delivered", attempts: 1, lease_until: null }]);
    expect(svc.lines.some((l) => l.includes('"drained":true'))).toBe(true);
  });

  it("past the grace period it hands back what is in flight, which a restart sends again", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY, lifecycle: [processing(Date.now()), completed()] });
    rx.enqueue("hang", "/hook");
    const settings = env({ SHUTDOWN_GRACE_MS: "500", DELIVERY_TIMEOUT_MS: "60000" });
    svc = await startService(settings);
    await register("task_1");
    // The WAL's size is a gauge, set by the checkpointer's passes (one every 0.5 s): non-zero while
    // the registration, its polls and its deliveries are written (0 again once the WAL starts over).
    await vi.waitFor(
      async () => {
        const metrics = await (await fetch(`${svc?.url}/metrics`)).text();
        expect(Number(metrics.match(/^taskhook_wal_frames (\d+)$/m)?.[1])).toBeGreaterThan(0);
      },
      { timeout: 10_000, interval: 100 },
    );
    await rx.waitFor(1, 10_000);
    const stopping = Date.now();
    svc.kill("SIGTERM");
    expect(await svc.exited).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(5000);
    const [row] = deliveryRows();
    expect(row).toMatchObject({ status: "pending", lease_until: null });
    // The same database, a new process: the handed-back delivery goes out again at once.
    svc = await startService({ ...settings, DELIVERY_TIMEOUT_MS: "5000" });
    await rx.waitFor((reqs) => reqs.length >= 2, 10_000);
    expect(rx.requests[1]?.headers["webhook-id"]).toBe(rx.requests[0]?.headers["webhook-id"]);
  });

  it("a second signal forces the exit", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY, lifecycle: [processing(Date.now())] });
    rx.enqueue("hang", "/hook");
    svc = await startService(env({ SHUTDOWN_GRACE_MS: "60000", DELIVERY_TIMEOUT_MS: "60000" }));
    await register("task_1");
    // The WAL's size is a gauge, set by the checkpointer's passes (one every 0.5 s): non-zero while
    // the registration, its polls and its deliveries are written (0 again once the WAL starts over).
    await vi.waitFor(
      async () => {
        const metrics = await (await fetch(`${svc?.url}/metrics`)).text();
        expect(Number(metrics.match(/^taskhook_wal_frames (\d+)$/m)?.[1])).toBeGreaterThan(0);
      },
      { timeout: 10_000, interval: 100 },
    );
    await rx.waitFor(1, 10_000);
    svc.kill("SIGTERM");
    await svc.waitForLine(/shutting down/);
    svc.kill("SIGINT");
    expect(await svc.exited).toBe(1);
    expect(svc.lines.some((l) => l.includes("second signal"))).toBe(true);
  });
});

describe("logs (a real child process, a full lifecycle)", () => {
  it("are JSON lines with a request id per request, and never contain a key, a secret or a signature", async () => {
    up.addTask({ taskId: "task_1", apiKey: KEY, lifecycle: [processing(Date.now()), completed()] });
    rx.respondWith(500, 1, "/hook");
    svc = await startService(env({ LOG_LEVEL: "debug" }));
    const secretRes = await fetch(`${svc.url}/v1/signing-secret`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    const { secret } = (await secretRes.json()) as { secret: string };
    expect(secretRes.headers.get("x-request-id")).toMatch(/.+/);
    await register("task_1");
    // The WAL's size is a gauge, set by the checkpointer's passes (one every 0.5 s): non-zero while
    // the registration, its polls and its deliveries are written (0 again once the WAL starts over).
    await vi.waitFor(
      async () => {
        const metrics = await (await fetch(`${svc?.url}/metrics`)).text();
        expect(Number(metrics.match(/^taskhook_wal_frames (\d+)$/m)?.[1])).toBeGreaterThan(0);
      },
      { timeout: 10_000, interval: 100 },
    );
    await rx.waitFor(
      (reqs) =>
        reqs.filter((r) => r.json && (r.json as { type: string }).type === "task.completed")
          .length > 0,
      15_000,
    );
    // A bad key and a wrong admin token are logged as requests, not as credentials.
    await fetch(`${svc.url}/v1/watches`, {
      headers: { authorization: "Bearer vpk_wrong_key_zzz" },
    });
    svc.kill("SIGTERM");
    await svc.exited;

    const log = svc.lines.join("\n");
    const signatures = rx.requests.flatMap((r) =>
      String(r.headers["webhook-signature"]).split(" "),
    );
    const forbidden = [
      KEY,
      secret,
      secret.slice("whsec_".length),
      "vpk_wrong_key_zzz",
      ...signatures.map((s) => s.slice(3)),
    ];
    for (const needle of forbidden)
      expect(log.includes(needle), `log contains ${needle.slice(0, 12)}…`).toBe(false);
    const requests = svc.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === "request");
    expect(requests.length).toBeGreaterThanOrEqual(3);
    for (const r of requests) expect(r.requestId).toEqual(expect.any(String));
    expect(svc.lines.every((l) => l.startsWith("{"))).toBe(true);
  });
});
