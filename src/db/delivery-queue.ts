import { and, eq, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { deliveries, deliveryAttempts, events } from "./schema.js";

export interface DueDelivery {
  id: string;
  eventId: string;
  watchId: string;
  tenantId: string;
  callbackUrl: string;
  attempts: number;
  payload: string;
}

/**
 * The deliverer's hot statements, prepared once. A delivery is due when its time has come and no
 * earlier delivery of the same watch is still pending (in order per watch; in flight counts as
 * pending). The due index walks by time; the order check uses `deliveries_watch_pending`.
 */
export function deliveryStatements(db: Db) {
  const due = db
    .select({
      id: deliveries.id,
      eventId: deliveries.eventId,
      watchId: deliveries.watchId,
      tenantId: deliveries.tenantId,
      callbackUrl: deliveries.callbackUrl,
      attempts: deliveries.attempts,
      payload: events.payload,
    })
    .from(deliveries)
    .innerJoin(events, eq(events.id, deliveries.eventId))
    .where(
      sql`${deliveries.status} = 'pending' AND ${deliveries.nextAttemptAt} <= ${sql.placeholder("now")}
        AND NOT EXISTS (SELECT 1 FROM deliveries AS earlier
          WHERE earlier.watch_id = ${deliveries.watchId} AND earlier.status = 'pending' AND earlier.id < ${deliveries.id})`,
    )
    .orderBy(deliveries.nextAttemptAt)
    .limit(sql.placeholder("limit"))
    .prepare();

  const lease = db
    .update(deliveries)
    .set({
      leaseUntil: sql`${sql.placeholder("leaseUntil")}`,
      nextAttemptAt: sql`${sql.placeholder("leaseUntil")}`,
    })
    .where(eq(deliveries.id, sql.placeholder("id")))
    .prepare();

  // Fenced by the lease, like `finish`: a claim that has meanwhile passed to another deliverer is not ours.
  const release = db
    .update(deliveries)
    .set({ leaseUntil: null, nextAttemptAt: sql`${sql.placeholder("now")}` })
    .where(
      and(
        eq(deliveries.id, sql.placeholder("id")),
        eq(deliveries.leaseUntil, sql.placeholder("leaseUntil")),
      ),
    )
    .prepare();

  const insertAttempt = db
    .insert(deliveryAttempts)
    .values({
      deliveryId: sql.placeholder("deliveryId"),
      at: sql.placeholder("at"),
      durationMs: sql.placeholder("durationMs"),
      statusCode: sql.placeholder("statusCode"),
      error: sql.placeholder("error"),
      responseBody: sql.placeholder("responseBody"),
    })
    .prepare();

  const finish = db
    .update(deliveries)
    .set({
      status: sql`${sql.placeholder("status")}`,
      attempts: sql`${deliveries.attempts} + 1`,
      nextAttemptAt: sql`${sql.placeholder("nextAttemptAt")}`,
      leaseUntil: null,
      lastAttemptAt: sql`${sql.placeholder("at")}`,
      lastError: sql`${sql.placeholder("error")}`,
      lastStatusCode: sql`${sql.placeholder("statusCode")}`,
      updatedAt: sql`${sql.placeholder("at")}`,
    })
    // The lease is the fence: an attempt that outlived it (a stalled process whose delivery was
    // claimed again, or replayed) must not overwrite the outcome of the claim that replaced it.
    .where(
      and(
        eq(deliveries.id, sql.placeholder("id")),
        eq(deliveries.leaseUntil, sql.placeholder("leaseUntil")),
      ),
    )
    .prepare();

  const earliestDue = db
    .select({ at: sql<number | null>`min(${deliveries.nextAttemptAt})` })
    .from(deliveries)
    .where(sql`${deliveries.status} = 'pending'`)
    .prepare();

  return {
    due: (now: number, limit: number): DueDelivery[] => due.all({ now, limit }),
    lease: (id: string, leaseUntil: number) => lease.run({ id, leaseUntil }),
    /** Hands a claim back, due now; false when the lease is no longer this claim's. */
    release: (id: string, leaseUntil: number, now: number): boolean =>
      release.run({ id, leaseUntil, now }).changes > 0,
    insertAttempt: (a: {
      deliveryId: string;
      at: number;
      durationMs: number;
      statusCode: number | null;
      error: string | null;
      responseBody: string | null;
    }) => insertAttempt.run(a),
    /**
     * Records an attempt's end: the delivery's new status and, if pending, its next attempt time.
     * False (and nothing changed) when the claim's lease has been taken over meanwhile.
     */
    finish: (f: {
      id: string;
      leaseUntil: number;
      status: "pending" | "delivered" | "failed";
      nextAttemptAt: number;
      at: number;
      error: string | null;
      statusCode: number | null;
    }): boolean => finish.run(f).changes > 0,
    earliestDue: (): number | null => earliestDue.get()?.at ?? null,
  };
}

export type DeliveryStatements = ReturnType<typeof deliveryStatements>;
