import { and, desc, eq, inArray, lt, type SQL, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { type Delivery, deliveries } from "./schema.js";

/**
 * A manual replay: the delivery is queued again now with a fresh attempt count, whatever its state.
 * The event id (and so `webhook-id`) is unchanged, so consumers de-duplicate it as usual.
 */
export function replayDelivery(db: Db, id: string, tenantId: string | null, now: number): boolean {
  const where =
    tenantId === null
      ? eq(deliveries.id, id)
      : and(eq(deliveries.id, id), eq(deliveries.tenantId, tenantId));
  const result = db
    .update(deliveries)
    .set({ status: "pending", attempts: 0, nextAttemptAt: now, updatedAt: now })
    .where(where)
    .run();
  return result.changes > 0;
}

export function listDeliveries(
  db: Db,
  filter: { status?: Delivery["status"]; before?: string; limit: number },
): { rows: Delivery[]; more: boolean } {
  const conditions: SQL[] = [];
  if (filter.status !== undefined) conditions.push(eq(deliveries.status, filter.status));
  if (filter.before !== undefined) conditions.push(lt(deliveries.id, filter.before));
  const rows = db
    .select()
    .from(deliveries)
    .where(and(...conditions))
    .orderBy(desc(deliveries.id))
    .limit(filter.limit + 1)
    .all();
  return { rows: rows.slice(0, filter.limit), more: rows.length > filter.limit };
}

/** Pending and failed delivery counts per watch, for the admin watch list. */
export function deliveryCountsByWatch(
  db: Db,
  watchIds: readonly string[],
): Map<string, { pending: number; failed: number }> {
  const counts = new Map<string, { pending: number; failed: number }>();
  if (watchIds.length === 0) return counts;
  const rows = db
    .select({
      watchId: deliveries.watchId,
      pending: sql<number>`sum(${deliveries.status} = 'pending')`,
      failed: sql<number>`sum(${deliveries.status} = 'failed')`,
    })
    .from(deliveries)
    .where(inArray(deliveries.watchId, [...watchIds]))
    .groupBy(deliveries.watchId)
    .all();
  for (const r of rows) counts.set(r.watchId, { pending: r.pending ?? 0, failed: r.failed ?? 0 });
  return counts;
}
