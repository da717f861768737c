import { z } from "@hono/zod-openapi";
import { EVENT_TYPES, WATCH_EVENT_TYPES } from "../domain/events.js";
import { attemptExample, eventExample, watchExample } from "./examples.js";

/** Schemas shared by several routes. Each route validates with, and documents, the same schema. */

export const TASK_ID = /^[A-Za-z0-9_-]{1,128}$/;
export const METADATA_MAX_BYTES = 4096;

export const TaskIdSchema = z
  .string()
  .regex(TASK_ID, "must be 1–128 characters of A-Z, a-z, 0-9, _ and -")
  .openapi({ example: "task_abc123xyz" });

export const CallbackUrlSchema = z
  .string()
  .min(1, "must be an https or http URL")
  .max(2048, "must be at most 2048 characters")
  .openapi({ example: "https://app.example.com/hooks/vibepeak" });

/**
 * A `__proto__` key survives JSON.parse but is silently dropped by every object copy after it.
 * Walked with a stack of its own: a 64 KiB body can nest 30,000 levels, beyond the call stack.
 */
function hasProtoKey(root: unknown): boolean {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (value === null || typeof value !== "object") continue;
    if (Array.isArray(value)) {
      pending.push(...value);
      continue;
    }
    for (const [key, child] of Object.entries(value)) {
      if (key === "__proto__") return true;
      pending.push(child);
    }
  }
  return false;
}

/** Serialized size; a value too deep for JSON.stringify is thousands of levels, so far over 4 KiB. */
function serializedBytes(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value));
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

export const MetadataSchema = z
  .preprocess(
    (value, ctx) => {
      if (hasProtoKey(value)) {
        ctx.issues.push({
          code: "custom",
          message: "must not use the key __proto__",
          input: value,
        });
      }
      return value;
    },
    z.record(z.string(), z.unknown()),
  )
  .refine((v) => serializedBytes(v) <= METADATA_MAX_BYTES, {
    message: `must be at most ${METADATA_MAX_BYTES} bytes serialized`,
  })
  .openapi({ example: { order_id: 42 } });

export const WatchStatusSchema = z.enum(["active", "done", "expired", "failed", "cancelled"]);
export const TaskStatusSchema = z.enum(["queued", "processing", "completed", "failed"]);

export const WatchSchema = z
  .object({
    id: z.string().openapi({ example: "wch_01JGZ3V5S8W9K2M4N6P8Q0R2T4" }),
    task_id: z.string(),
    callback_url: z.string(),
    events: z.array(z.enum(WATCH_EVENT_TYPES)),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    status: WatchStatusSchema,
    task_status: TaskStatusSchema.nullable(),
    task: z.record(z.string(), z.unknown()).nullable(),
    created_at: z.string(),
    expires_at: z.string(),
    ended_at: z.string().nullable(),
    end_reason: z.string().nullable(),
    last_polled_at: z.string().nullable(),
  })
  .openapi("Watch", { example: watchExample });

export const AttemptSchema = z
  .object({
    at: z.string(),
    status_code: z.number().int().nullable(),
    duration_ms: z.number().int(),
    error: z.string().nullable(),
  })
  .openapi("DeliveryAttempt", { example: attemptExample });

export const DeliverySummarySchema = z
  .object({
    id: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.array(AttemptSchema),
  })
  .openapi("Delivery");

export const EventSchema = z
  .object({
    id: z.string(),
    watch_id: z.string(),
    type: z.enum(EVENT_TYPES),
    sequence: z.number().int(),
    created_at: z.string(),
    payload: z.record(z.string(), z.unknown()),
    delivery: DeliverySummarySchema.nullable(),
  })
  .openapi("Event", { example: eventExample });

export const LimitSchema = z.coerce
  .number()
  .int("must be a whole number")
  .min(1, "must be between 1 and 200")
  .max(200, "must be between 1 and 200")
  .default(50)
  .openapi({ example: 50 });

export const CursorSchema = z.string().max(200).optional().openapi({ description: "opaque" });

export const page = <T extends z.ZodTypeAny>(item: T, name: string) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable() }).openapi(name);

export const IdParam = (prefix: string, example: string) =>
  z.object({
    id: z
      .string()
      .max(64)
      .openapi({ param: { name: "id", in: "path" }, example, description: `a ${prefix}_ id` }),
  });

export const iso = (ms: number | null): string | null =>
  ms === null ? null : new Date(ms).toISOString();
