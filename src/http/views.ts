import type { EventWithDelivery } from "../db/events.js";
import type { DeliveryAttempt } from "../db/schema.js";
import type { WatchWithTask } from "../db/watches.js";
import type { EventType, WatchEventType } from "../domain/events.js";
import { iso } from "./schemas.js";

type TaskStatus = "queued" | "processing" | "completed" | "failed";

/** The watch object of SPEC §3, from its row and its poll target's last answer. */
export function watchView(w: WatchWithTask) {
  return {
    id: w.id,
    task_id: w.taskId,
    callback_url: w.callbackUrl,
    events: JSON.parse(w.events) as WatchEventType[],
    metadata: w.metadata === null ? null : (JSON.parse(w.metadata) as Record<string, unknown>),
    status: w.status,
    task_status: w.taskStatus as TaskStatus | null,
    task: w.taskJson === null ? null : (JSON.parse(w.taskJson) as Record<string, unknown>),
    created_at: new Date(w.createdAt).toISOString(),
    expires_at: new Date(w.expiresAt).toISOString(),
    ended_at: iso(w.endedAt),
    end_reason: w.endReason,
    last_polled_at: iso(w.lastPolledAt),
  };
}

export function attemptView(a: DeliveryAttempt) {
  return {
    at: new Date(a.at).toISOString(),
    status_code: a.statusCode,
    duration_ms: a.durationMs,
    error: a.error,
  };
}

export function eventView(e: EventWithDelivery) {
  return {
    id: e.id,
    watch_id: e.watchId,
    type: e.type as EventType,
    sequence: e.sequence,
    created_at: new Date(e.createdAt).toISOString(),
    payload: JSON.parse(e.payload) as Record<string, unknown>,
    delivery: e.delivery && {
      id: e.delivery.id,
      status: e.delivery.status,
      attempts: e.delivery.attemptLog.map(attemptView),
    },
  };
}
