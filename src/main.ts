import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { systemClock } from "./clock.js";
import { type Config, ConfigError, configWarnings, loadConfig } from "./config.js";
import { openDatabase } from "./db/client.js";
import { Deliverer } from "./delivery/deliverer.js";
import { createSender } from "./delivery/sender.js";
import { createApp } from "./http/app.js";
import { resolveEncryptionKey } from "./keyfile.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { Scheduler } from "./scheduler/scheduler.js";
import { createUpstreamClient } from "./scheduler/upstream.js";

/** The composition root: config → database (migrated) → HTTP server and the loops; owns shutdown. */
function start(): void {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`taskhook: ${err.message}\n`);
    process.exit(1);
  }

  const logger = createLogger({
    level: config.LOG_LEVEL,
    pretty: process.stdout.isTTY === true && process.env.NODE_ENV !== "production",
  });
  for (const warning of configWarnings(config)) logger.warn(warning);
  const { key: encryptionKey, warning } = resolveEncryptionKey(
    config.ENCRYPTION_KEY,
    config.DATABASE_URL,
  );
  if (warning) logger.warn(warning);

  const db = openDatabase(config.DATABASE_URL);
  const clock = systemClock;
  const metrics = createMetrics({ defaultMetrics: true });
  const upstream = createUpstreamClient({
    baseUrl: config.UPSTREAM_BASE_URL,
    timeoutMs: config.UPSTREAM_TIMEOUT_MS,
    connections: config.UPSTREAM_CONCURRENCY,
  });
  const sender = createSender({
    timeoutMs: config.DELIVERY_TIMEOUT_MS,
    allowPrivate: config.ALLOW_PRIVATE_CALLBACKS,
    connections: Math.max(8, Math.ceil(config.DELIVERY_CONCURRENCY / 4)),
  });
  const scheduler = new Scheduler({
    db,
    clock,
    logger: logger.child({ loop: "scheduler" }),
    metrics,
    upstream,
    encryptionKey,
    options: {
      minIntervalMs: config.POLL_INTERVAL_MIN_MS,
      maxIntervalMs: config.POLL_INTERVAL_MAX_MS,
      rps: config.UPSTREAM_RPS,
      rpsPerKey: config.UPSTREAM_RPS_PER_KEY,
      concurrency: config.UPSTREAM_CONCURRENCY,
      timeoutMs: config.UPSTREAM_TIMEOUT_MS,
      batchSize: config.SCHEDULER_BATCH_SIZE,
    },
  });
  const deliverer = new Deliverer({
    db,
    clock,
    logger: logger.child({ loop: "deliverer" }),
    metrics,
    sender,
    encryptionKey,
    options: {
      concurrency: config.DELIVERY_CONCURRENCY,
      timeoutMs: config.DELIVERY_TIMEOUT_MS,
      schedule: config.DELIVERY_RETRY_SCHEDULE,
    },
  });

  const app = createApp({
    db,
    config,
    clock,
    logger,
    encryptionKey,
    sender,
    metrics,
    loops: () => ({ scheduler: scheduler.running, deliverer: deliverer.running }),
    upstreamLastMinute: () => scheduler.recent.lastMinute(clock.now()),
    wake: { scheduler: () => scheduler.notify(), deliverer: () => deliverer.notify() },
  });
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) => {
    logger.info(
      { port: info.port, host: config.HOST, database: config.DATABASE_URL },
      "taskhook listening",
    );
  }) as Server;
  scheduler.start();
  deliverer.start();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info(
      { signal, graceMs: config.SHUTDOWN_GRACE_MS },
      "shutting down: draining in-flight work",
    );
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const drained = Promise.all([scheduler.stop(), deliverer.stop(), closed]);
    const inTime = await Promise.race([
      drained.then(() => true),
      new Promise<boolean>((resolve) =>
        setTimeout(() => resolve(false), config.SHUTDOWN_GRACE_MS).unref(),
      ),
    ]);
    if (!inTime) {
      logger.warn("grace period over: releasing what is still in flight");
      scheduler.release();
      deliverer.release();
      server.closeAllConnections();
    }
    await Promise.allSettled([upstream.close(), sender.close()]);
    db.$client.close();
    logger.info({ drained: inTime }, "stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

start();
