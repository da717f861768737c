/** Examples for the OpenAPI document (/docs): one realistic value per schema. */

const WATCH_ID = "wch_01JGZ3V5S8W9K2M4N6P8Q0R2T4";
const EVENT_ID = "evt_01JGZ4A7B9C1D3E5F7G9H1J3K5";
const DELIVERY_ID = "dlv_01JGZ4A7B9C1D3E5F7G9H1J3K6";

export const taskExample = {
  task_id: "task_abc123xyz",
  status: "processing",
  started_at: "2026-01-04T12:00:04Z",
  created_at: "2026-01-04T12:00:00Z",
};

export const watchExample = {
  id: WATCH_ID,
  task_id: "task_abc123xyz",
  callback_url: "https://app.example.com/hooks/vibepeak",
  events: ["task.completed", "task.failed"],
  metadata: { order_id: 42 },
  status: "active",
  task_status: "processing",
  task: taskExample,
  created_at: "2026-01-04T12:00:00.000Z",
  expires_at: "2026-01-05T12:00:00.000Z",
  ended_at: null,
  end_reason: null,
  last_polled_at: "2026-01-04T12:00:05.120Z",
};

export const attemptExample = {
  at: "2026-01-04T12:31:02.180Z",
  status_code: 200,
  duration_ms: 12,
  error: null,
};

export const eventExample = {
  id: EVENT_ID,
  watch_id: WATCH_ID,
  type: "task.completed",
  sequence: 3,
  created_at: "2026-01-04T12:31:02.120Z",
  payload: {
    type: "task.completed",
    timestamp: "2026-01-04T12:31:02.120Z",
    data: {
      event_id: EVENT_ID,
      watch_id: WATCH_ID,
      sequence: 3,
      task_id: "task_abc123xyz",
      status: "completed",
      previous_status: "processing",
      task: {
        task_id: "task_abc123xyz",
        status: "completed",
        completed_at: "2026-01-04T12:31:00Z",
        result: {
          video_url: "https://cdn.vibepeak.ai/v/abc.mp4",
          expires_at: "2026-01-11T12:31:00Z",
        },
        created_at: "2026-01-04T12:00:00Z",
      },
      metadata: { order_id: 42 },
    },
  },
  delivery: { id: DELIVERY_ID, status: "delivered", attempts: [attemptExample] },
};

export const errorExample = {
  error: {
    code: "VALIDATION_ERROR",
    message: "callback_url: must be an https or http URL",
    details: [{ path: "callback_url", message: "callback_url: must be an https or http URL" }],
  },
};

export const adminDeliveryExample = {
  id: DELIVERY_ID,
  event_id: EVENT_ID,
  watch_id: WATCH_ID,
  tenant: "3f2a9c0d41b7",
  callback_url: "https://app.example.com/hooks/vibepeak",
  status: "failed",
  attempts: 10,
  next_attempt_at: null,
  last_attempt_at: "2026-01-07T12:31:02.120Z",
  last_status_code: 500,
  last_error: "HTTP 500",
  created_at: "2026-01-04T12:31:02.120Z",
};

export const statsExample = {
  watches: { active: 1200, done: 5400, expired: 12, failed: 9, cancelled: 40 },
  poll_targets: { active: 1150, due: 3, overdue: 0 },
  upstream_last_minute: { requests: 2890, errors: 4 },
  deliveries: { pending: 2, failed: 1, oldest_pending_age_s: 0.4 },
};
