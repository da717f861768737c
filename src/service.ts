import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { type Clock, systemClock } from "./clock.js";
import type { Config } from "./config.js";
import { type Checkpointer, startCheckpointer } from "./db/checkpointer.js";
import { openDatabase } from "./db/client.js";
import { Deliverer, delivererOptions } from "./delivery/deliverer.js";
import { createSender } from "./delivery/sender.js";
import { createApp } from "./http/app.js";
import type { Logger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { Retention } from "./retention.js";
import { Scheduler, schedulerOptions } from "./scheduler/scheduler.js";
import { createUpstreamClient } from "./scheduler/upstream.js";

export interface ServiceOptions {
  config: Config;
  logger: Logger;
  encryptionKey: Buffer;
  clock?: Clock;
  /** Node's default process metrics (once per process: off for in-process demos and tests). */
  defaultMetrics?: boolean;
}

/**
 * taskhook assembled: database (migrated), HTTP app, scheduler, deliverer and retention, from one
 * config. `main.ts` runs it with signals; the demo and the end-to-end tests run it in-process.
 */
export function createService(opts: ServiceOptions) {
  const { config, logger, encryptionKey } = opts;
  const clock = opts.clock ?? systemClock;
  const db = openDatabase(config.DATABASE_URL);
  const metrics = createMetrics({ defaultMetrics: opts.defaultMetrics ?? false });
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
  const scheduler: Scheduler = new Scheduler({
    db,
    clock,
    onEvents: () => deliverer.notify(),
    logger: logger.child({ loop: "scheduler" }),
    metrics,
    upstream,
    encryptionKey,
    options: schedulerOptions(config),
  });
  const deliverer: Deliverer = new Deliverer({
    db,
    clock,
    logger: logger.child({ loop: "deliverer" }),
    metrics,
    sender,
    encryptionKey,
    options: delivererOptions(config),
  });
  const retention = new Retention({ db, clock, logger, retentionDays: config.RETENTION_DAYS });
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

  let server: Server | undefined;
  let checkpointer: Checkpointer | undefined;

  /** Listens and starts the loops; resolves with the bound port. */
  async function start(): Promise<number> {
    const port = await new Promise<number>((resolve) => {
      server = serve(
        { fetch: app.fetch, port: config.PORT, hostname: config.HOST },
        (info: AddressInfo) => resolve(info.port),
      ) as Server;
    });
    if (config.DATABASE_URL !== ":memory:") {
      checkpointer = startCheckpointer(db, config.DATABASE_URL, logger, {
        onPass: (pass) => {
          if (pass.log >= 0) metrics.walFrames.set(pass.log);
        },
      });
    }
    scheduler.start();
    deliverer.start();
    retention.start();
    logger.info({ port, host: config.HOST, database: config.DATABASE_URL }, "taskhook listening");
    return port;
  }

  /**
   * Stops taking requests and claiming work, lets in-flight polls and deliveries finish within
   * `graceMs`, hands back whatever is still in flight, and closes the database. Resolves to whether
   * everything drained in time.
   */
  async function stop(graceMs = config.SHUTDOWN_GRACE_MS): Promise<boolean> {
    const closed = server
      ? new Promise<void>((resolve) => server?.close(() => resolve()))
      : Promise.resolve();
    server?.closeIdleConnections();
    const drained = Promise.all([scheduler.stop(), deliverer.stop(), retention.stop(), closed]);
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      drained.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!inTime) {
      logger.warn("grace period over: handing back what is still in flight");
      scheduler.release();
      deliverer.release();
      server?.closeAllConnections();
    }
    await Promise.allSettled(
      inTime ? [upstream.close(), sender.close()] : [upstream.destroy(), sender.destroy()],
    );
    await checkpointer?.stop();
    db.$client.close();
    logger.info({ drained: inTime }, "stopped");
    return inTime;
  }

  return { app, db, metrics, scheduler, deliverer, retention, start, stop };
}

export type Service = ReturnType<typeof createService>;
