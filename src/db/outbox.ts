import { eq, sql } from "drizzle-orm";
import type { EventType, TaskStatus } from "../domain/events.js";
import { newId } from "../domain/ids.js";
import { webhookBody } from "../domain/webhook-body.js";
import { type Db, preparedOnce } from "./client.js";
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

/** The outbox's statements, prepared once per database (they run for every status change). */
function outboxStatements(db: Db) {
  const insertEvent = db
    .insert(events)
    .values({
      id: sql.placeholder("id"),
      watchId: sql.placeholder("watchId"),
      tenantId: sql.placeholder("tenantId"),
      sequence: sql.placeholder("sequence"),
      type: sql.placeholder("type"),
      payload: sql.placeholder("payload"),
      createdAt: sql.placeholder("now"),
    })
    .prepare();
  const insertDelivery = db
    .insert(deliveries)
    .values({
      id: sql.placeholder("id"),
      eventId: sql.placeholder("eventId"),
      watchId: sql.placeholder("watchId"),
      tenantId: sql.placeholder("tenantId"),
      callbackUrl: sql.placeholder("callbackUrl"),
      status: "pending",
      nextAttemptAt: sql.placeholder("now"),
      createdAt: sql.placeholder("now"),
      updatedAt: sql.placeholder("now"),
    })
    .prepare();
  const setSequence = db
    .update(watches)
    .set({ sequence: sql`${sql.placeholder("sequence")}` })
    .where(eq(watches.id, sql.placeholder("id")))
    .prepare();
  const setSeen = db
    .update(watches)
    .set({
      lastStatus: sql`${sql.placeholder("status")}`,
      lastQueuePosition: sql`${sql.placeholder("queuePosition")}`,
    })
    .where(eq(watches.id, sql.placeholder("id")))
    .prepare();
  return { insertEvent, insertDelivery, setSequence, setSeen };
}

const statementsOf = preparedOnce(outboxStatements);

/**
 * The transactional outbox: the event and its pending delivery are written by the caller's
 * transaction, beside the state change that caused them. Call only inside `transaction(...)`.
 * Returns false (and writes nothing) when the watch did not subscribe to this type.
 */
export function appendEvent(db: Db, watch: OutboxWatch, event: NewEvent, now: number): boolean {
  if (!subscribes(watch, event.type)) return false;
  const stmts = statementsOf(db);
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
  const base = { watchId: watch.id, tenantId: watch.tenantId, now };
  stmts.insertEvent.run({
    ...base,
    id: eventId,
    sequence,
    type: event.type,
    payload: JSON.stringify(body),
  });
  stmts.insertDelivery.run({
    ...base,
    id: newId("dlv", now),
    eventId,
    callbackUrl: watch.callbackUrl,
  });
  stmts.setSequence.run({ id: watch.id, sequence });
  watch.sequence = sequence;
  return true;
}

/** Records the task status (and queue position) a watch has now been told about. */
export function markSeen(
  db: Db,
  watchId: string,
  status: TaskStatus,
  queuePosition: number | null,
): void {
  statementsOf(db).setSeen.run({ id: watchId, status, queuePosition });
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
