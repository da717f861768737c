import {
  Deliverer,
  type DelivererOptions,
  delivererOptions,
} from "../../src/delivery/deliverer.js";
import type { LookupAll } from "../../src/delivery/guard.js";
import { createSender, type Sender } from "../../src/delivery/sender.js";
import { createMetrics, type Metrics } from "../../src/metrics.js";
import type { TestContext } from "./context.js";

export interface DelivererHarness {
  deliverer: Deliverer;
  sender: Sender;
  metrics: Metrics;
  /** Advance the clock, run one tick, wait for the attempts it sent and record them. */
  step(ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** A real deliverer on the test's database and clock, POSTing over real sockets. */
export function delivererFor(
  t: TestContext,
  options: Partial<DelivererOptions> & { lookup?: LookupAll; allowPrivate?: boolean } = {},
  random: () => number = () => 0.5,
): DelivererHarness {
  const { lookup, allowPrivate, ...rest } = options;
  const sender = createSender({
    timeoutMs: rest.timeoutMs ?? t.config.DELIVERY_TIMEOUT_MS,
    allowPrivate: allowPrivate ?? t.config.ALLOW_PRIVATE_CALLBACKS,
    ...(lookup ? { lookup } : {}),
  });
  const metrics = createMetrics();
  const deliverer = new Deliverer({
    db: t.db,
    clock: t.clock,
    logger: t.deps.logger,
    metrics,
    sender,
    encryptionKey: t.deps.encryptionKey,
    random,
    options: { ...delivererOptions(t.config), ...rest },
  });
  return {
    deliverer,
    sender,
    metrics,
    async step(ms = 0) {
      t.clock.advance(ms);
      await deliverer.tick();
      await deliverer.idle();
    },
    async close() {
      await deliverer.stop();
      await sender.close();
    },
  };
}
