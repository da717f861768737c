import { eq } from "drizzle-orm";
import {
  type Delivery,
  deliveries,
  deliveryAttempts,
  events,
  pollTargets,
  watches,
} from "../../src/db/schema.js";
import { hashApiKey } from "../../src/domain/crypto.js";
import { newId } from "../../src/domain/ids.js";
import { ADMIN, KEY_A, type TestContext } from "../support/context.js";

/** Shared helpers of the HTTP tests: registering watches and writing what the loops would write. */

export const WATCH_ID = /^wch_[0-9A-HJKMNP-TV-Z]{26}$/;
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const DEFAULT_EVENTS = [
  "task.queued",
  "task.processing",
  "task.completed",
  "task.failed",
  "watch.expired",
  "watch.failed",
];
export const HOOK = "https://hooks.example.com/vibepeak";

export const tenantId = (key: string) => hashApiKey(key);
export const adminHeaders = { authorization: `Bearer ${ADMIN}` };

export async function register(
  t: TestContext,
  body: Record<string, unknown> = {},
  key: string = KEY_A,
) {
  return t.call("POST", "/v1/watches", {
    key,
    body: { task_id: "task_1", callback_url: HOOK, ...body },
  });
}

/** Registers and returns the new watch, failing loudly if it was not created. */
export async function created(
  t: TestContext,
  body: Record<string, unknown> = {},
  key: string = KEY_A,
) {
  const res = await register(t, body, key);
  if (res.status !== 201)
    throw new Error(`expected 201, got ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body as { id: string; task_id: string; callback_url: string; created_at: string };
}

export function admin(t: TestContext, method: string, path: string) {
  return t.call(method, path, { key: null, headers: adminHeaders });
}

/** What the scheduler records after a poll: the task's state on the watch's poll target. */
export function recordPoll(t: TestContext, watchId: string, task: Record<string, unknown>) {
  const watch = t.db.select().from(watches).where(eq(watches.id, watchId)).get();
  if (!watch) throw new Error(`no watch ${watchId}`);
  t.db
    .update(pollTargets)
    .set({
      taskStatus: String(task.status),
      taskJson: JSON.stringify(task),
      lastPolledAt: t.clock.now(),
    })
    .where(eq(pollTargets.id, watch.pollTargetId))
    .run();
}

/** An event of a watch, with its delivery, as the scheduler's outbox writes them. */
export function insertEvent(
  t: TestContext,
  watchId: string,
  options: {
    type?: string;
    delivery?: Partial<
      Pick<Delivery, "status" | "attempts" | "lastError" | "lastStatusCode">
    > | null;
    createdAt?: number;
  } = {},
) {
  const watch = t.db.select().from(watches).where(eq(watches.id, watchId)).get();
  if (!watch) throw new Error(`no watch ${watchId}`);
  const now = options.createdAt ?? t.clock.now();
  const sequence = watch.sequence + 1;
  const eventId = newId("evt", now);
  const type = options.type ?? "task.queued";
  const payload = {
    type,
    timestamp: new Date(now).toISOString(),
    data: { event_id: eventId, watch_id: watchId, sequence, task_id: watch.taskId },
  };
  t.db
    .insert(events)
    .values({
      id: eventId,
      watchId,
      tenantId: watch.tenantId,
      sequence,
      type,
      payload: JSON.stringify(payload),
      createdAt: now,
    })
    .run();
  t.db.update(watches).set({ sequence }).where(eq(watches.id, watchId)).run();
  let deliveryId: string | null = null;
  if (options.delivery !== null) {
    deliveryId = newId("dlv", now);
    t.db
      .insert(deliveries)
      .values({
        id: deliveryId,
        eventId,
        watchId,
        tenantId: watch.tenantId,
        callbackUrl: watch.callbackUrl,
        status: "pending",
        nextAttemptAt: now,
        createdAt: now,
        updatedAt: now,
        ...options.delivery,
      })
      .run();
  }
  return { eventId, deliveryId, sequence, payload };
}

export function insertAttempt(
  t: TestContext,
  deliveryId: string,
  attempt: { at: number; durationMs: number; statusCode: number | null; error: string | null },
) {
  t.db
    .insert(deliveryAttempts)
    .values({ deliveryId, responseBody: "ok", ...attempt })
    .run();
}

export function deliveryRow(t: TestContext, id: string) {
  return t.db.select().from(deliveries).where(eq(deliveries.id, id)).get();
}

export function watchRow(t: TestContext, id: string) {
  return t.db.select().from(watches).where(eq(watches.id, id)).get();
}
