/**
 * `npm run demo`: taskhook end to end on this machine, no configuration, no network.
 * Starts a fake VibePeak upstream, a webhook receiver and taskhook (in-process, in-memory SQLite,
 * short intervals), registers four tasks with different fates, prints each signed webhook as it
 * arrives (verified with the `standardwebhooks` library), then a summary. Exits 0 when every
 * expected webhook arrived and verified.
 */

import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import { createService } from "../src/service.js";
import {
  completed,
  failed,
  processing,
  queued,
  startFakeUpstream,
} from "../test/support/fake-upstream.js";
import { startReceiver } from "../test/support/receiver.js";

const API_KEY = "vpk_demo_0123456789";
const TIMEOUT_MS = 30_000;
const color = process.stdout.isTTY
  ? {
      dim: "\x1b[2m",
      green: "\x1b[32m",
      red: "\x1b[31m",
      yellow: "\x1b[33m",
      bold: "\x1b[1m",
      off: "\x1b[0m",
    }
  : { dim: "", green: "", red: "", yellow: "", bold: "", off: "" };

interface Fate {
  taskId: string;
  path: string;
  story: string;
  expect: string[];
}

const FATES: Fate[] = [
  {
    taskId: "task_completes",
    path: "/hooks/app",
    story: "queued → processing → completed",
    expect: ["task.queued", "task.processing", "task.completed"],
  },
  {
    taskId: "task_fails",
    path: "/hooks/app",
    story: "queued → processing → failed",
    expect: ["task.queued", "task.processing", "task.failed"],
  },
  {
    taskId: "task_missing",
    path: "/hooks/app",
    story: "unknown upstream: 404 three times",
    expect: ["watch.failed"],
  },
  {
    taskId: "task_flaky_consumer",
    path: "/hooks/flaky",
    story: "consumer answers 500 twice first",
    expect: ["task.processing", "task.completed"],
  },
];

async function main(): Promise<void> {
  const started = Date.now();
  const upstream = await startFakeUpstream();
  const receiver = await startReceiver();
  receiver.respondWith(500, 2, "/hooks/flaky");

  const t0 = Date.now();
  upstream.addTask({
    taskId: "task_completes",
    apiKey: API_KEY,
    lifecycle: {
      timeline: [
        { atMs: 0, state: queued(2, t0 + 3000) },
        { atMs: 1200, state: processing(t0 + 1200) },
        { atMs: 3000, state: completed() },
      ],
    },
  });
  upstream.addTask({
    taskId: "task_fails",
    apiKey: API_KEY,
    lifecycle: {
      timeline: [
        { atMs: 0, state: queued(1, t0 + 2500) },
        { atMs: 900, state: processing(t0 + 900) },
        {
          atMs: 2500,
          state: failed({ message: "images could not be decoded", code: "BAD_INPUT" }),
        },
      ],
    },
  });
  upstream.addTask({
    taskId: "task_flaky_consumer",
    apiKey: API_KEY,
    lifecycle: {
      timeline: [
        { atMs: 0, state: processing(t0) },
        { atMs: 1500, state: completed() },
      ],
    },
  });

  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: ":memory:",
    UPSTREAM_BASE_URL: upstream.url,
    ALLOW_PRIVATE_CALLBACKS: "true",
    POLL_INTERVAL_MIN_MS: "300",
    POLL_INTERVAL_MAX_MS: "1000",
    DELIVERY_RETRY_SCHEDULE: "0s,400ms,800ms,2s",
    ADMIN_TOKEN: "demo-admin-token-0123456789",
    LOG_LEVEL: "error",
  });
  const service = createService({
    config,
    logger: createLogger({ level: "error" }),
    encryptionKey: randomBytes(32),
  });
  const port = await service.start();
  const base = `http://127.0.0.1:${port}`;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return (await res.json()) as Record<string, any>;
  };

  console.log(
    `${color.bold}taskhook demo${color.off}  ${color.dim}upstream ${upstream.url} · receiver ${receiver.url} · taskhook ${base}${color.off}\n`,
  );
  const { secret } = await call("GET", "/v1/signing-secret");
  const verifier = new Webhook(secret);
  const watchOf = new Map<string, string>();
  for (const fate of FATES) {
    const watch = await call("POST", "/v1/watches", {
      task_id: fate.taskId,
      callback_url: `${receiver.url}${fate.path}`,
    });
    watchOf.set(watch.id, fate.taskId);
    console.log(`  registered ${fate.taskId.padEnd(20)} ${color.dim}${fate.story}${color.off}`);
  }
  console.log(
    `\n${color.dim}  time    task                 event              seq  attempt  signature${color.off}`,
  );

  const seen = new Map<string, number>();
  const delivered = new Set<string>();
  let bad = 0;
  let printed = 0;
  let flakyRequests = 0;
  const expected = FATES.reduce((n, f) => n + f.expect.length, 0);
  const deadline = Date.now() + TIMEOUT_MS;
  while (delivered.size < expected && Date.now() < deadline) {
    for (const req of receiver.requests.slice(printed)) {
      printed += 1;
      const id = req.headers["webhook-id"] as string;
      const attempt = (seen.get(id) ?? 0) + 1;
      seen.set(id, attempt);
      let ok = true;
      try {
        verifier.verify(req.body, req.headers as Record<string, string>);
      } catch {
        ok = false;
        bad += 1;
      }
      const body = req.json as { type: string; data: { sequence: number; watch_id: string } };
      // The receiver answered 500 to the first two requests on /hooks/flaky (see respondWith above).
      if (req.path === "/hooks/flaky") flakyRequests += 1;
      const refused = req.path === "/hooks/flaky" && flakyRequests <= 2;
      const task = watchOf.get(body.data.watch_id) ?? "?";
      const secs = ((Date.now() - started) / 1000).toFixed(2).padStart(6);
      const sig = ok ? `${color.green}✓ verified${color.off}` : `${color.red}✗ BAD${color.off}`;
      const status = refused ? `${color.yellow}consumer answered 500: retried${color.off}` : "";
      console.log(
        `  +${secs}s ${task.padEnd(20)} ${body.type.padEnd(18)} ${String(body.data.sequence).padStart(3)}  ${String(attempt).padStart(7)}  ${sig} ${status}`,
      );
      if (!refused) delivered.add(id);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  console.log(`\n${color.bold}summary${color.off}`);
  let allMatch = true;
  for (const [watchId, taskId] of watchOf) {
    const watch = await call("GET", `/v1/watches/${watchId}`);
    const events = await call("GET", `/v1/watches/${watchId}/events`);
    const types = (events.data as Array<{ type: string }>).map((e) => e.type);
    const fate = FATES.find((f) => f.taskId === taskId);
    const match = JSON.stringify(types) === JSON.stringify(fate?.expect);
    allMatch &&= match;
    const attempts = (events.data as Array<{ delivery: { attempts: unknown[] } }>).reduce(
      (n, e) => n + e.delivery.attempts.length,
      0,
    );
    console.log(
      `  ${taskId.padEnd(20)} watch ${String(watch.status).padEnd(7)} ${String(watch.end_reason ?? "").padEnd(15)} events ${types.join(", ")} ${color.dim}(${attempts} attempts)${color.off} ${match ? `${color.green}✓` : `${color.red}✗`}${color.off}`,
    );
  }
  const upstreamRequests = upstream.requests.length;
  console.log(
    `\n  ${delivered.size}/${expected} webhooks delivered, ${receiver.requests.length} requests received, ${bad} bad signatures, ${upstreamRequests} upstream polls`,
  );

  await service.stop(2000);
  await receiver.close();
  await upstream.close();
  const ok = delivered.size === expected && bad === 0 && allMatch;
  console.log(ok ? `${color.green}demo passed${color.off}` : `${color.red}demo failed${color.off}`);
  process.exit(ok ? 0 : 1);
}

void main();
