import { sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { deliveries, pollTargets, watches } from "./schema.js";

/** A target due longer than this without being polled counts as overdue (the loop ticks far faster). */
export const OVERDUE_AFTER_MS = 5000;

export interface DbStats {
  watches: Record<"active" | "done" | "expired" | "failed" | "cancelled", number>;
  pollTargets: { active: number; due: number; overdue: number };
  deliveries: { pending: number; failed: number; oldestPendingAgeMs: number | null };
}

/** The figures that /admin/stats and /metrics share, read with a handful of indexed queries. */
export function readStats(db: Db, now: number): DbStats {
  const byStatus = { active: 0, done: 0, expired: 0, failed: 0, cancelled: 0 };
  const rows = db
    .select({ status: watches.status, n: sql<number>`count(*)` })
    .from(watches)
    .groupBy(watches.status)
    .all();
  for (const r of rows) byStatus[r.status] = r.n;

  const notInFlight = sql`(${pollTargets.leaseUntil} IS NULL OR ${pollTargets.leaseUntil} <= ${now})`;
  const targets = db
    .select({
      active: sql<number>`count(*)`,
      due: sql<number>`coalesce(sum(${pollTargets.dueAt} <= ${now} AND ${notInFlight}), 0)`,
      overdue: sql<number>`coalesce(sum(${pollTargets.dueAt} <= ${now - OVERDUE_AFTER_MS} AND ${notInFlight}), 0)`,
    })
    .from(pollTargets)
    .where(sql`${pollTargets.active} = 1`)
    .get();

  const pending = db
    .select({ n: sql<number>`count(*)`, oldest: sql<number | null>`min(${deliveries.createdAt})` })
    .from(deliveries)
    .where(sql`${deliveries.status} = 'pending'`)
    .get();
  const failed = db
    .select({ n: sql<number>`count(*)` })
    .from(deliveries)
    .where(sql`${deliveries.status} = 'failed'`)
    .get();

  return {
    watches: byStatus,
    pollTargets: {
      active: targets?.active ?? 0,
      due: targets?.due ?? 0,
      overdue: targets?.overdue ?? 0,
    },
    deliveries: {
      pending: pending?.n ?? 0,
      failed: failed?.n ?? 0,
      oldestPendingAgeMs: pending?.oldest == null ? null : Math.max(0, now - pending.oldest),
    },
  };
}
