import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { deliveryCountsByWatch, listDeliveries, replayDelivery } from "../../db/deliveries.js";
import { readStats } from "../../db/stats.js";
import { listWatches } from "../../db/watches.js";
import { tenantLabel } from "../../domain/crypto.js";
import type { AppEnv } from "../context.js";
import { decodeCursor, nextCursor } from "../cursor.js";
import { adminResponses, errorResponses, notFound, notFoundResponse } from "../errors.js";
import { adminDeliveryExample, statsExample, watchExample } from "../examples.js";
import {
  CursorSchema,
  IdParam,
  iso,
  LimitSchema,
  page,
  TaskIdSchema,
  WatchSchema,
  WatchStatusSchema,
} from "../schemas.js";
import { watchView } from "../views.js";
import { ReplayedSchema } from "./deliveries.js";

const WATCH_ID = /^wch_[0-9A-HJKMNP-TV-Z]{26}$/;
const DELIVERY_ID = /^dlv_[0-9A-HJKMNP-TV-Z]{26}$/;
const security = [{ adminToken: [] }];

const AdminWatchSchema = WatchSchema.extend({
  tenant: z
    .string()
    .openapi({ description: "A short prefix of the tenant's key hash (never the key)" }),
  pending_deliveries: z.number().int(),
  failed_deliveries: z.number().int(),
}).openapi("AdminWatch", {
  example: { ...watchExample, tenant: "3f2a9c0d41b7", pending_deliveries: 0, failed_deliveries: 0 },
});

const AdminDeliverySchema = z
  .object({
    id: z.string(),
    event_id: z.string(),
    watch_id: z.string(),
    tenant: z.string(),
    callback_url: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    next_attempt_at: z.string().nullable(),
    last_attempt_at: z.string().nullable(),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("AdminDelivery", { example: adminDeliveryExample });

const StatsSchema = z
  .object({
    watches: z.record(WatchStatusSchema, z.number().int()),
    poll_targets: z.object({
      active: z.number().int(),
      due: z.number().int(),
      overdue: z.number().int(),
    }),
    upstream_last_minute: z.object({ requests: z.number().int(), errors: z.number().int() }),
    deliveries: z.object({
      pending: z.number().int(),
      failed: z.number().int(),
      oldest_pending_age_s: z.number().nullable(),
    }),
  })
  .openapi("Stats", { example: statsExample });

const watchesRoute = createRoute({
  method: "get",
  path: "/admin/watches",
  tags: ["admin"],
  summary: "All tenants' watches, newest first",
  security,
  request: {
    query: z.object({
      status: WatchStatusSchema.optional(),
      task_id: TaskIdSchema.optional(),
      tenant: z
        .string()
        .regex(/^[0-9a-f]{1,64}$/, "must be a tenant label (hex)")
        .optional(),
      callback_host: z.string().min(1).max(253).optional(),
      limit: LimitSchema,
      cursor: CursorSchema,
    }),
  },
  responses: {
    200: {
      content: { "application/json": { schema: page(AdminWatchSchema, "AdminWatchPage") } },
      description: "A page",
    },
    ...adminResponses,
    ...errorResponses,
  },
});

const deliveriesRoute = createRoute({
  method: "get",
  path: "/admin/deliveries",
  tags: ["admin"],
  summary: "Deliveries, newest first (e.g. status=failed)",
  security,
  request: {
    query: z.object({
      status: z.enum(["pending", "delivered", "failed"]).optional(),
      limit: LimitSchema,
      cursor: CursorSchema,
    }),
  },
  responses: {
    200: {
      content: { "application/json": { schema: page(AdminDeliverySchema, "AdminDeliveryPage") } },
      description: "A page",
    },
    ...adminResponses,
    ...errorResponses,
  },
});

const retryRoute = createRoute({
  method: "post",
  path: "/admin/deliveries/{id}/retry",
  tags: ["admin"],
  summary: "Replay any tenant's delivery now, with a fresh attempt count",
  security,
  request: { params: IdParam("dlv", "dlv_01JGZ3V5S8W9K2M4N6P8Q0R2T4") },
  responses: {
    202: {
      content: {
        "application/json": { schema: ReplayedSchema },
      },
      description: "Queued",
    },
    ...notFoundResponse,
    ...adminResponses,
    ...errorResponses,
  },
});

const statsRoute = createRoute({
  method: "get",
  path: "/admin/stats",
  tags: ["admin"],
  summary: "Watches by status, poll targets due and overdue, upstream traffic, the outbox",
  security,
  responses: {
    200: {
      content: { "application/json": { schema: StatsSchema } },
      description: "Current figures",
    },
    ...adminResponses,
    ...errorResponses,
  },
});

export function registerAdminRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(watchesRoute, (c) => {
    const { db } = c.var.deps;
    const q = c.req.valid("query");
    const { rows, more } = listWatches(db, {
      status: q.status,
      taskId: q.task_id,
      tenantPrefix: q.tenant,
      callbackHost: q.callback_host?.toLowerCase(),
      before: decodeCursor(q.cursor, WATCH_ID),
      limit: q.limit,
    });
    const counts = deliveryCountsByWatch(
      db,
      rows.map((w) => w.id),
    );
    const data = rows.map((w) => ({
      ...watchView(w),
      tenant: tenantLabel(w.tenantId),
      pending_deliveries: counts.get(w.id)?.pending ?? 0,
      failed_deliveries: counts.get(w.id)?.failed ?? 0,
    }));
    return c.json({ data, next_cursor: nextCursor(rows, more, (w) => w.id) }, 200);
  });

  app.openapi(deliveriesRoute, (c) => {
    const q = c.req.valid("query");
    const { rows, more } = listDeliveries(c.var.deps.db, {
      status: q.status,
      before: decodeCursor(q.cursor, DELIVERY_ID),
      limit: q.limit,
    });
    const data = rows.map((d) => ({
      id: d.id,
      event_id: d.eventId,
      watch_id: d.watchId,
      tenant: tenantLabel(d.tenantId),
      callback_url: d.callbackUrl,
      status: d.status,
      attempts: d.attempts,
      next_attempt_at: d.status === "pending" ? iso(d.nextAttemptAt) : null,
      last_attempt_at: iso(d.lastAttemptAt),
      last_status_code: d.lastStatusCode,
      last_error: d.lastError,
      created_at: new Date(d.createdAt).toISOString(),
    }));
    return c.json({ data, next_cursor: nextCursor(rows, more, (d) => d.id) }, 200);
  });

  app.openapi(retryRoute, (c) => {
    const { db, clock } = c.var.deps;
    const { id } = c.req.valid("param");
    if (!replayDelivery(db, id, null, clock.now())) throw notFound("delivery");
    c.var.deps.wake?.deliverer();
    return c.json({ id, status: "pending" as const }, 202);
  });

  app.openapi(statsRoute, (c) => {
    const { db, clock, upstreamLastMinute } = c.var.deps;
    const s = readStats(db, clock.now());
    return c.json(
      {
        watches: s.watches,
        poll_targets: s.pollTargets,
        upstream_last_minute: upstreamLastMinute?.() ?? { requests: 0, errors: 0 },
        deliveries: {
          pending: s.deliveries.pending,
          failed: s.deliveries.failed,
          oldest_pending_age_s:
            s.deliveries.oldestPendingAgeMs === null
              ? null
              : s.deliveries.oldestPendingAgeMs / 1000,
        },
      },
      200,
    );
  });
}
