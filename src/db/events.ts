import { and, asc, eq, gt, inArray } from "drizzle-orm";
import type { Db } from "./client.js";
import {
  type Delivery,
  type DeliveryAttempt,
  deliveries,
  deliveryAttempts,
  type EventRow,
  events,
} from "./schema.js";

export interface EventWithDelivery extends EventRow {
  delivery: (Delivery & { attemptLog: DeliveryAttempt[] }) | null;
}

export interface EventPageQuery {
  tenantId: string;
  watchId?: string;
  after?: string;
  limit: number;
}

/** Oldest first, with each event's delivery and its attempts (three queries, whatever the page size). */
export function listEvents(
  db: Db,
  q: EventPageQuery,
): { rows: EventWithDelivery[]; more: boolean } {
  const conditions = [eq(events.tenantId, q.tenantId)];
  if (q.watchId !== undefined) conditions.push(eq(events.watchId, q.watchId));
  if (q.after !== undefined) conditions.push(gt(events.id, q.after));
  const page = db
    .select()
    .from(events)
    .where(and(...conditions))
    .orderBy(asc(events.id))
    .limit(q.limit + 1)
    .all();
  const rows = page.slice(0, q.limit);
  return { rows: attachDeliveries(db, rows), more: page.length > q.limit };
}

function attachDeliveries(db: Db, rows: EventRow[]): EventWithDelivery[] {
  if (rows.length === 0) return [];
  const dels = db
    .select()
    .from(deliveries)
    .where(
      inArray(
        deliveries.eventId,
        rows.map((e) => e.id),
      ),
    )
    .all();
  const attempts = dels.length
    ? db
        .select()
        .from(deliveryAttempts)
        .where(
          inArray(
            deliveryAttempts.deliveryId,
            dels.map((d) => d.id),
          ),
        )
        .orderBy(asc(deliveryAttempts.id))
        .all()
    : [];
  const byEvent = new Map(
    dels.map((d) => [d.eventId, { ...d, attemptLog: [] as DeliveryAttempt[] }]),
  );
  const byDelivery = new Map([...byEvent.values()].map((d) => [d.id, d]));
  for (const attempt of attempts) byDelivery.get(attempt.deliveryId)?.attemptLog.push(attempt);
  return rows.map((e) => ({ ...e, delivery: byEvent.get(e.id) ?? null }));
}
