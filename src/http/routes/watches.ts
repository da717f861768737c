import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { inGroupCommit } from "../../db/group-commit.js";
import { registerWatch } from "../../db/registration.js";
import { cancelWatch, getWatch, listWatches } from "../../db/watches.js";
import { encryptSecret } from "../../domain/crypto.js";
import { normalizeEventTypes, WATCH_EVENT_TYPES } from "../../domain/events.js";
import { requireCallbackUrl } from "../callback.js";
import type { AppEnv } from "../context.js";
import { decodeCursor, nextCursor } from "../cursor.js";
import {
  ApiError,
  conflictResponse,
  errorResponses,
  notFound,
  notFoundResponse,
  rateLimitedResponse,
} from "../errors.js";
import {
  CallbackUrlSchema,
  CursorSchema,
  IdParam,
  LimitSchema,
  MetadataSchema,
  page,
  TaskIdSchema,
  WatchSchema,
  WatchStatusSchema,
} from "../schemas.js";
import { watchView } from "../views.js";

const WATCH_ID = /^wch_[0-9A-HJKMNP-TV-Z]{26}$/;

const CreateWatchSchema = z
  .strictObject({
    task_id: TaskIdSchema,
    callback_url: CallbackUrlSchema,
    events: z
      .array(z.enum(WATCH_EVENT_TYPES, { error: `must be one of ${WATCH_EVENT_TYPES.join(", ")}` }))
      .min(1, "must name at least one event type")
      .max(WATCH_EVENT_TYPES.length * 2)
      .optional()
      .openapi({ example: ["task.completed", "task.failed"] }),
    metadata: MetadataSchema.optional(),
    expires_in: z
      .number()
      .int("must be a whole number of seconds")
      .min(60, "must be between 60 and 604800 seconds")
      .max(604800, "must be between 60 and 604800 seconds")
      .optional()
      .openapi({ example: 86400 }),
  })
  .openapi("CreateWatch", {
    example: {
      task_id: "task_abc123xyz",
      callback_url: "https://app.example.com/hooks/vibepeak",
      events: ["task.completed", "task.failed"],
      metadata: { order_id: 42 },
      expires_in: 86400,
    },
  });

const json = { "application/json": { schema: WatchSchema } };

const create = createRoute({
  method: "post",
  path: "/v1/watches",
  tags: ["watches"],
  summary: "Watch a task: get a signed webhook at callback_url on every status change",
  security: [{ apiKey: [] }],
  request: {
    body: { content: { "application/json": { schema: CreateWatchSchema } }, required: true },
  },
  responses: {
    201: { content: json, description: "The new watch; its first poll goes out right away" },
    200: { content: json, description: "An identical active watch already existed: here it is" },
    ...conflictResponse,
    ...rateLimitedResponse,
    ...errorResponses,
  },
});

const list = createRoute({
  method: "get",
  path: "/v1/watches",
  tags: ["watches"],
  summary: "List your watches, newest first",
  security: [{ apiKey: [] }],
  request: {
    query: z.object({
      status: WatchStatusSchema.optional(),
      task_id: TaskIdSchema.optional(),
      limit: LimitSchema,
      cursor: CursorSchema,
    }),
  },
  responses: {
    200: {
      content: { "application/json": { schema: page(WatchSchema, "WatchPage") } },
      description: "A page of watches",
    },
    ...errorResponses,
  },
});

const idParam = IdParam("wch", "wch_01JGZ3V5S8W9K2M4N6P8Q0R2T4");

const getOne = createRoute({
  method: "get",
  path: "/v1/watches/{id}",
  tags: ["watches"],
  summary: "Get one watch with its task's last known state",
  security: [{ apiKey: [] }],
  request: { params: idParam },
  responses: {
    200: { content: json, description: "The watch" },
    ...notFoundResponse,
    ...errorResponses,
  },
});

const remove = createRoute({
  method: "delete",
  path: "/v1/watches/{id}",
  tags: ["watches"],
  summary: "Cancel a watch: no more polls or events (events already created are still delivered)",
  security: [{ apiKey: [] }],
  request: { params: idParam },
  responses: {
    200: {
      content: json,
      description: "The watch, now cancelled (an ended watch is returned unchanged)",
    },
    ...notFoundResponse,
    ...errorResponses,
  },
});

/**
 * The tenant's API key encrypted, made once per tenant and process: encrypting at every registration
 * cost as much as the rest of the route's own work. A new ENCRYPTION_KEY means a new process, so a
 * fresh ciphertext.
 */
const ciphertexts = new WeakMap<Buffer, Map<string, string>>();
function keyCiphertext(encryptionKey: Buffer, tenantId: string, apiKey: string): string {
  let byTenant = ciphertexts.get(encryptionKey);
  if (byTenant === undefined) {
    byTenant = new Map();
    ciphertexts.set(encryptionKey, byTenant);
  }
  let blob = byTenant.get(tenantId);
  if (blob === undefined) {
    blob = encryptSecret(encryptionKey, apiKey);
    if (byTenant.size >= 10_000) byTenant.clear();
    byTenant.set(tenantId, blob);
  }
  return blob;
}

export function registerWatchRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(create, async (c) => {
    const { db, config, clock, encryptionKey } = c.var.deps;
    const tenant = c.var.tenant;
    const body = c.req.valid("json");
    const callbackUrl = requireCallbackUrl(body.callback_url, config);
    const now = clock.now();
    const registration = {
      tenantId: tenant.id,
      apiKeyEnc: keyCiphertext(encryptionKey, tenant.id, tenant.apiKey),
      taskId: body.task_id,
      callbackUrl,
      events: normalizeEventTypes(body.events),
      metadata: body.metadata ?? null,
      expiresAt: now + (body.expires_in ?? config.WATCH_TTL_S) * 1000,
    };
    const limits = {
      now,
      minIntervalMs: config.POLL_INTERVAL_MIN_MS,
      maxActive: config.MAX_ACTIVE_WATCHES_PER_KEY,
    };
    // Registrations arriving together share one commit (answered only once it is durable).
    const outcome = await inGroupCommit(db, () => registerWatch(db, registration, limits));
    switch (outcome.kind) {
      case "created":
        c.var.deps.wake?.scheduler();
        return c.json(watchView(outcome.watch), 201);
      case "existing":
        return c.json(watchView(outcome.watch), 200);
      case "conflict":
        throw new ApiError(
          "WATCH_EXISTS",
          `an active watch ${outcome.watchId} exists for this task_id and callback_url with different events or metadata`,
          [{ watch_id: outcome.watchId }],
        );
      case "limit":
        throw new ApiError("RATE_LIMITED", `at most ${outcome.limit} active watches per API key`);
    }
  });

  app.openapi(list, (c) => {
    const query = c.req.valid("query");
    const { rows, more } = listWatches(c.var.deps.db, {
      tenantId: c.var.tenant.id,
      status: query.status,
      taskId: query.task_id,
      before: decodeCursor(query.cursor, WATCH_ID),
      limit: query.limit,
    });
    return c.json(
      { data: rows.map(watchView), next_cursor: nextCursor(rows, more, (w) => w.id) },
      200,
    );
  });

  app.openapi(getOne, (c) => {
    const watch = getWatch(c.var.deps.db, c.var.tenant.id, c.req.valid("param").id);
    if (!watch) throw notFound("watch");
    return c.json(watchView(watch), 200);
  });

  app.openapi(remove, (c) => {
    const { db, clock } = c.var.deps;
    const watch = cancelWatch(db, c.var.tenant.id, c.req.valid("param").id, clock.now());
    if (!watch) throw notFound("watch");
    return c.json(watchView(watch), 200);
  });
}
