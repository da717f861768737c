import { eq, sql } from "drizzle-orm";
import type { EventType, TaskStatus } from "../domain/events.js";
import { newId } from "../domain/ids.js";
import { webhookBody } from "../domain/webhook-body.js";
import type { Db } from "./client.js";
import { deliveries, events, type Watch, watches } from "./schema.js";

/** What an event needs to know of its watch; `sequence` is advanced in place as events are added. */
export type OutboxWatch = Pick<
  Watch,
  "id" | "tenantId" | "taskId" | "callbackUrl" | "events" | "metadata"
> & {
  sequence: number;
};

export interface NewEvent {
  type: EventType;
  status: TaskStatus | null;
  previousStatus: TaskStatus | null;
  task: Record<string, unknown> | null;
  reason?: string;
}

export function subscribes(watch: Pick<Watch, "events">, type: EventType): boolean {
  return (JSON.parse(watch.events) as string[]).includes(type);
}

/**
 * The transactional outbox: the event and its pending delivery are written by the caller's
 * transaction, beside the state change that caused them. Call only inside `transaction(...)`.
 * Returns false (and writes nothing) when the watch did not subscribe to this type.
 */
export function appendEvent(db: Db, watch: OutboxWatch, event: NewEvent, now: number): boolean {
  if (!subscribes(watch, event.type)) return false;
  const sequence = watch.sequence + 1;
  const eventId = newId("evt", now);
  const body = webhookBody({
    type: event.type,
    eventId,
    now,
    watchId: watch.id,
    sequence,
    taskId: watch.taskId,
    status: event.status,
    previousStatus: event.previousStatus,
    task: event.task,
    metadata:
      watch.metadata === null ? null : (JSON.parse(watch.metadata) as Record<string, unknown>),
    ...(event.reason === undefined ? {} : { reason: event.reason }),
  });
  db.insert(events)
    .values({
      id: eventId,
      watchId: watch.id,
      tenantId: watch.tenantId,
      sequence,
      type: event.type,
      payload: JSON.stringify(body),
      createdAt: now,
    })
    .run();
  db.insert(deliveries)
    .values({
      id: newId("dlv", now),
      eventId,
      watchId: watch.id,
      tenantId: watch.tenantId,
      callbackUrl: watch.callbackUrl,
      status: "pending",
      nextAttemptAt: now,
      createdAt: now,
      updatedAt: now,
    })
    .run();
  db.update(watches).set({ sequence }).where(eq(watches.id, watch.id)).run();
  watch.sequence = sequence;
  return true;
}

/** Active watches whose lifetime has run out, oldest expiry first. */
export function dueExpiries(db: Db, now: number, limit: number) {
  return db
    .select()
    .from(watches)
    .where(sql`${watches.status} = 'active' AND ${watches.expiresAt} <= ${now}`)
    .orderBy(watches.expiresAt)
    .limit(limit)
    .all();
}
