import type { EventType, TaskStatus } from "./events.js";

/** The webhook body of SPEC §5 (Standard Webhooks shape): stored with the event, sent byte for byte. */
export interface WebhookBody {
  type: EventType;
  timestamp: string;
  data: {
    event_id: string;
    watch_id: string | null;
    sequence: number;
    task_id: string | null;
    status: TaskStatus | null;
    previous_status: TaskStatus | null;
    task: Record<string, unknown> | null;
    metadata: Record<string, unknown> | null;
    /** watch.failed: why the watch could not go on. */
    reason?: string;
  };
}

export interface WebhookBodyInput {
  type: EventType;
  eventId: string;
  now: number;
  watchId: string | null;
  sequence: number;
  taskId: string | null;
  status: TaskStatus | null;
  previousStatus: TaskStatus | null;
  task: Record<string, unknown> | null;
  metadata: Record<string, unknown> | null;
  reason?: string;
}

export function webhookBody(input: WebhookBodyInput): WebhookBody {
  return {
    type: input.type,
    timestamp: new Date(input.now).toISOString(),
    data: {
      event_id: input.eventId,
      watch_id: input.watchId,
      sequence: input.sequence,
      task_id: input.taskId,
      status: input.status,
      previous_status: input.previousStatus,
      task: input.task,
      metadata: input.metadata,
      ...(input.reason === undefined ? {} : { reason: input.reason }),
    },
  };
}
