import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { DbStats } from "./db/stats.js";

/**
 * Prometheus metrics, one registry per instance (tests make many). Names follow the Prometheus
 * conventions: `taskhook_` prefix, base units in the name, `_total` on counters.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "taskhook_" });

  return {
    registry,
    upstreamRequests: new Counter({
      name: "taskhook_upstream_requests_total",
      help: "Upstream GET /v1/tasks requests by outcome (2xx, 404, 401, 429, 5xx, timeout, network, bad_response)",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    upstreamLatency: new Histogram({
      name: "taskhook_upstream_request_duration_seconds",
      help: "Upstream request latency",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    pollLateness: new Histogram({
      name: "taskhook_poll_lateness_seconds",
      help: "Actual minus scheduled poll time",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [registry],
    }),
    backwardsAnswers: new Counter({
      name: "taskhook_upstream_backwards_answers_total",
      help: "Upstream answers that would have moved a task's status backwards (ignored)",
      registers: [registry],
    }),
    eventsCreated: new Counter({
      name: "taskhook_events_created_total",
      help: "Events written to the outbox, by type",
      labelNames: ["type"] as const,
      registers: [registry],
    }),
    deliveries: new Counter({
      name: "taskhook_delivery_attempts_total",
      help: "Webhook delivery attempts by outcome (delivered, retry, failed, gone; stale: finished after its lease, ignored)",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: "taskhook_delivery_attempt_duration_seconds",
      help: "Webhook delivery attempt latency",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
      registers: [registry],
    }),
    loopErrors: new Counter({
      name: "taskhook_loop_errors_total",
      help: "Errors caught by a background loop (the loop goes on)",
      labelNames: ["loop"] as const,
      registers: [registry],
    }),
    // Read from the database at scrape time (see `refreshDbGauges`): the same figures as /admin/stats.
    watches: new Gauge({
      name: "taskhook_watches",
      help: "Watches by status",
      labelNames: ["status"] as const,
      registers: [registry],
    }),
    pollTargetsDue: new Gauge({
      name: "taskhook_poll_targets_due",
      help: "Active poll targets whose poll is due now",
      registers: [registry],
    }),
    pollTargetsOverdue: new Gauge({
      name: "taskhook_poll_targets_overdue",
      help: "Active poll targets due for more than 5 s without a poll",
      registers: [registry],
    }),
    outboxPending: new Gauge({
      name: "taskhook_outbox_pending_deliveries",
      help: "Deliveries waiting to be sent or retried",
      registers: [registry],
    }),
    outboxFailed: new Gauge({
      name: "taskhook_outbox_failed_deliveries",
      help: "Deliveries that exhausted their retry schedule (replayable)",
      registers: [registry],
    }),
    walFrames: new Gauge({
      name: "taskhook_wal_frames",
      help: "Pages in the SQLite WAL at the checkpointer's last pass (0 when it has just started over)",
      registers: [registry],
    }),
    outboxOldestAge: new Gauge({
      name: "taskhook_outbox_oldest_pending_age_seconds",
      help: "Age of the oldest pending delivery (0 when none)",
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Sets the database-backed gauges from one `readStats` reading. */
export function refreshDbGauges(metrics: Metrics, stats: DbStats): void {
  for (const [status, n] of Object.entries(stats.watches)) metrics.watches.set({ status }, n);
  metrics.pollTargetsDue.set(stats.pollTargets.due);
  metrics.pollTargetsOverdue.set(stats.pollTargets.overdue);
  metrics.outboxPending.set(stats.deliveries.pending);
  metrics.outboxFailed.set(stats.deliveries.failed);
  metrics.outboxOldestAge.set((stats.deliveries.oldestPendingAgeMs ?? 0) / 1000);
}
