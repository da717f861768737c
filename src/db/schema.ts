import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** All times are Unix milliseconds (integers): cheap to compare, index and compute with. */

/** One tenant per VibePeak API key. The key is kept only encrypted, and only while a watch needs it. */
export const tenants = sqliteTable("tenants", {
  /** Hex SHA-256 of the API key. */
  id: text("id").primaryKey(),
  apiKeyEnc: text("api_key_enc"),
  signingSecretEnc: text("signing_secret_enc"),
  signingSecretCreatedAt: integer("signing_secret_created_at"),
  /** The secret before the last rotation; webhooks carry its signature too until it expires. */
  previousSecretEnc: text("previous_secret_enc"),
  previousSecretExpiresAt: integer("previous_secret_expires_at"),
  /**
   * The tenant's active watches, kept by registration (+1) and `endWatches` (−1 each) in their
   * transactions: MAX_ACTIVE_WATCHES_PER_KEY is checked at every registration without counting rows.
   */
  activeWatches: integer("active_watches").notNull().default(0),
  createdAt: integer("created_at").notNull(),
});

/**
 * The poll state of one task for one tenant, shared by all of that tenant's watches on the task:
 * N watches, one upstream request per interval.
 */
export const pollTargets = sqliteTable(
  "poll_targets",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    taskId: text("task_id").notNull(),
    /** 1 while at least one watch is active; only active targets are polled. */
    active: integer("active", { mode: "boolean" }).notNull().default(true),
    taskStatus: text("task_status"),
    /** The last upstream answer, verbatim (unknown fields kept). */
    taskJson: text("task_json"),
    queuePosition: integer("queue_position"),
    /** Remembered after the task leaves the queue: the interval policy still aims at it. */
    estimatedCompletionAt: integer("estimated_completion_at"),
    /**
     * Not before: when the target may next be claimed. A claim moves it past the lease (so a crash
     * never strands it); a busy key's budget moves it to the key's next free slot.
     */
    nextPollAt: integer("next_poll_at").notNull(),
    /** When the interval policy wanted the next poll: claims go oldest due first, lateness counts from it. */
    dueAt: integer("due_at").notNull(),
    /** Set while a poll is in flight; an expired lease means its process died. */
    leaseUntil: integer("lease_until"),
    lastPolledAt: integer("last_polled_at"),
    /** Consecutive transient faults (5xx, time-outs, bad JSON): drives the backoff. */
    faultCount: integer("fault_count").notNull().default(0),
    /** Consecutive 404 TASK_NOT_FOUND / 401 INVALID_API_KEY answers, and which. */
    rejectCode: text("reject_code"),
    rejectCount: integer("reject_count").notNull().default(0),
    /**
     * 1 while an active watch may not have seen the recorded answer yet (set by every registration).
     * A poll then looks at every active watch; otherwise only an answer that changed the status or
     * the queue position does, and the steady state (the same answer again) reads no watch at all.
     */
    watchesBehind: integer("watches_behind", { mode: "boolean" }).notNull().default(true),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    uniqueIndex("poll_targets_tenant_task").on(t.tenantId, t.taskId),
    index("poll_targets_due").on(t.nextPollAt).where(sql`${t.active} = 1`),
  ],
);

export const watches = sqliteTable(
  "watches",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    pollTargetId: integer("poll_target_id")
      .notNull()
      .references(() => pollTargets.id),
    taskId: text("task_id").notNull(),
    callbackUrl: text("callback_url").notNull(),
    /** JSON array of event types, sorted. */
    events: text("events").notNull(),
    /** JSON object or null. */
    metadata: text("metadata"),
    status: text("status", {
      enum: ["active", "done", "expired", "failed", "cancelled"],
    }).notNull(),
    endReason: text("end_reason"),
    /** The task status this watch was last told about (or would have been, when filtered). */
    lastStatus: text("last_status"),
    lastQueuePosition: integer("last_queue_position"),
    /** The sequence number of this watch's latest event. */
    sequence: integer("sequence").notNull().default(0),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    endedAt: integer("ended_at"),
  },
  (t) => [
    uniqueIndex("watches_active_registration")
      .on(t.tenantId, t.taskId, t.callbackUrl)
      .where(sql`${t.status} = 'active'`),
    index("watches_tenant").on(t.tenantId, t.id),
    // No plain index on status: SQLite would pick it for `status = 'active'` over the partial
    // indexes below and scan every active watch. Admin lists filtered by status walk ids instead.
    // Not partial: the foreign key from watches to poll_targets needs it too (or SQLite scans watches).
    index("watches_target").on(t.pollTargetId, t.status),
    index("watches_active_expiry").on(t.expiresAt).where(sql`${t.status} = 'active'`),
    index("watches_ended").on(t.endedAt).where(sql`${t.status} <> 'active'`),
  ],
);

export const events = sqliteTable(
  "events",
  {
    id: text("id").primaryKey(),
    watchId: text("watch_id")
      .notNull()
      .references(() => watches.id),
    tenantId: text("tenant_id").notNull(),
    sequence: integer("sequence").notNull(),
    type: text("type").notNull(),
    /** The webhook body, exactly as sent. */
    payload: text("payload").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    uniqueIndex("events_watch_sequence").on(t.watchId, t.sequence),
    index("events_tenant").on(t.tenantId, t.id),
  ],
);

export const deliveries = sqliteTable(
  "deliveries",
  {
    id: text("id").primaryKey(),
    eventId: text("event_id")
      .notNull()
      .unique()
      .references(() => events.id),
    watchId: text("watch_id").notNull(),
    tenantId: text("tenant_id").notNull(),
    callbackUrl: text("callback_url").notNull(),
    status: text("status", { enum: ["pending", "delivered", "failed"] }).notNull(),
    /** Attempts since creation or the last manual replay. */
    attempts: integer("attempts").notNull().default(0),
    /** When the next attempt is due. A claim moves it forward by the lease (crash → sent again). */
    nextAttemptAt: integer("next_attempt_at").notNull(),
    /** Set while an attempt is in flight; an expired lease means its process died. */
    leaseUntil: integer("lease_until"),
    lastAttemptAt: integer("last_attempt_at"),
    lastError: text("last_error"),
    lastStatusCode: integer("last_status_code"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    // As for watches: no plain index on status, or the due query would scan every pending delivery.
    index("deliveries_due").on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    index("deliveries_watch_pending").on(t.watchId, t.id).where(sql`${t.status} = 'pending'`),
    index("deliveries_tenant").on(t.tenantId, t.id),
  ],
);

export const deliveryAttempts = sqliteTable(
  "delivery_attempts",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    deliveryId: text("delivery_id")
      .notNull()
      .references(() => deliveries.id),
    at: integer("at").notNull(),
    durationMs: integer("duration_ms").notNull(),
    statusCode: integer("status_code"),
    error: text("error"),
    /** The first 1 KiB of the response body. */
    responseBody: text("response_body"),
  },
  (t) => [index("delivery_attempts_delivery").on(t.deliveryId, t.id)],
);

/** Named leases: one scheduler (and one deliverer) per database file. */
export const leases = sqliteTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  expiresAt: integer("expires_at").notNull(),
});

export type Tenant = typeof tenants.$inferSelect;
export type PollTarget = typeof pollTargets.$inferSelect;
export type Watch = typeof watches.$inferSelect;
export type WatchStatus = Watch["status"];
export type EventRow = typeof events.$inferSelect;
export type Delivery = typeof deliveries.$inferSelect;
export type DeliveryAttempt = typeof deliveryAttempts.$inferSelect;
