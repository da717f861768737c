import { createMetrics, type Metrics } from "../../src/metrics.js";
import {
  Scheduler,
  type SchedulerOptions,
  schedulerOptions,
} from "../../src/scheduler/scheduler.js";
import { createUpstreamClient, type UpstreamClient } from "../../src/scheduler/upstream.js";
import type { TestContext } from "./context.js";

export interface SchedulerHarness {
  scheduler: Scheduler;
  upstream: UpstreamClient;
  metrics: Metrics;
  /** Advance the clock, run one tick, wait for the polls it sent and record them. */
  step(ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** A real scheduler on the test's database and clock, polling `upstreamUrl` over real sockets. */
export function schedulerFor(
  t: TestContext,
  upstreamUrl: string,
  options: Partial<SchedulerOptions> = {},
  random: () => number = () => 0.5,
): SchedulerHarness {
  const upstream = createUpstreamClient({
    baseUrl: upstreamUrl,
    timeoutMs: options.timeoutMs ?? 2000,
    connections: 16,
  });
  const metrics = createMetrics();
  const scheduler = new Scheduler({
    db: t.db,
    clock: t.clock,
    logger: t.deps.logger,
    metrics,
    upstream,
    encryptionKey: t.deps.encryptionKey,
    random,
    options: { ...schedulerOptions(t.config), ...options },
  });
  return {
    scheduler,
    upstream,
    metrics,
    async step(ms = 0) {
      t.clock.advance(ms);
      await scheduler.tick();
      await scheduler.idle();
    },
    async close() {
      await scheduler.stop();
      await upstream.close();
    },
  };
}
