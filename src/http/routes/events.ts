import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { listEvents } from "../../db/events.js";
import { getWatch } from "../../db/watches.js";
import type { AppEnv } from "../context.js";
import { decodeCursor, encodeCursor, nextCursor } from "../cursor.js";
import { errorResponses, notFound, notFoundResponse } from "../errors.js";
import { CursorSchema, EventSchema, IdParam, LimitSchema, page } from "../schemas.js";
import { eventView } from "../views.js";

const EVENT_ID = /^evt_[0-9A-HJKMNP-TV-Z]{26}$/;
const EventPage = page(EventSchema, "EventPage");

const watchEvents = createRoute({
  method: "get",
  path: "/v1/watches/{id}/events",
  tags: ["events"],
  summary: "A watch's events, oldest first, each with its delivery and attempts",
  security: [{ apiKey: [] }],
  request: {
    params: IdParam("wch", "wch_01JGZ3V5S8W9K2M4N6P8Q0R2T4"),
    query: z.object({ limit: LimitSchema, cursor: CursorSchema }),
  },
  responses: {
    200: {
      content: { "application/json": { schema: EventPage } },
      description: "A page of events",
    },
    ...notFoundResponse,
    ...errorResponses,
  },
});

const feed = createRoute({
  method: "get",
  path: "/v1/events",
  tags: ["events"],
  summary: "Catch-up feed: all your events across watches, oldest first",
  description:
    "Read from `after` (a cursor from a previous page). `next_cursor` is never null once you have seen an event: keep it and read again later to get only what is new.",
  security: [{ apiKey: [] }],
  request: { query: z.object({ after: CursorSchema, limit: LimitSchema }) },
  responses: {
    200: {
      content: { "application/json": { schema: EventPage } },
      description: "A page of events",
    },
    ...errorResponses,
  },
});

export function registerEventRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(watchEvents, (c) => {
    const { db } = c.var.deps;
    const { id } = c.req.valid("param");
    const query = c.req.valid("query");
    if (!getWatch(db, c.var.tenant.id, id)) throw notFound("watch");
    const { rows, more } = listEvents(db, {
      tenantId: c.var.tenant.id,
      watchId: id,
      after: decodeCursor(query.cursor, EVENT_ID),
      limit: query.limit,
    });
    return c.json(
      { data: rows.map(eventView), next_cursor: nextCursor(rows, more, (e) => e.id) },
      200,
    );
  });

  app.openapi(feed, (c) => {
    const query = c.req.valid("query");
    const after = decodeCursor(query.after, EVENT_ID);
    const { rows } = listEvents(c.var.deps.db, {
      tenantId: c.var.tenant.id,
      after,
      limit: query.limit,
    });
    const last = rows[rows.length - 1]?.id ?? after;
    return c.json(
      { data: rows.map(eventView), next_cursor: last === undefined ? null : encodeCursor(last) },
      200,
    );
  });
}
