/** The event types of SPEC §5 and what a watch may subscribe to. */

export const TASK_STATUSES = ["queued", "processing", "completed", "failed"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const WATCH_EVENT_TYPES = [
  "task.queued",
  "task.processing",
  "task.completed",
  "task.failed",
  "task.queue_position_changed",
  "watch.expired",
  "watch.failed",
] as const;
export type WatchEventType = (typeof WATCH_EVENT_TYPES)[number];

export const EVENT_TYPES = [...WATCH_EVENT_TYPES, "ping"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Every type but the noisy, opt-in `task.queue_position_changed`. */
export const DEFAULT_EVENT_TYPES: readonly WatchEventType[] = WATCH_EVENT_TYPES.filter(
  (t) => t !== "task.queue_position_changed",
);

const RANK: Record<TaskStatus, number> = { queued: 0, processing: 1, completed: 2, failed: 2 };

export const isTerminal = (status: TaskStatus): boolean =>
  status === "completed" || status === "failed";

export function isTaskStatus(value: unknown): value is TaskStatus {
  return typeof value === "string" && (TASK_STATUSES as readonly string[]).includes(value);
}

/** Statuses only move forward: queued → processing → completed | failed. */
export function isForward(from: TaskStatus | null, to: TaskStatus): boolean {
  if (from === null) return true;
  if (from === to) return false;
  return RANK[to] > RANK[from];
}

/** Sorted and de-duplicated, so equal subscriptions compare equal. */
export function normalizeEventTypes(
  types: readonly WatchEventType[] | undefined,
): WatchEventType[] {
  const chosen = types ?? DEFAULT_EVENT_TYPES;
  return WATCH_EVENT_TYPES.filter((t) => chosen.includes(t));
}
