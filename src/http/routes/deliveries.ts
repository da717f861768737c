import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { replayDelivery } from "../../db/deliveries.js";
import type { AppEnv } from "../context.js";
import { errorResponses, notFound, notFoundResponse } from "../errors.js";
import { IdParam } from "../schemas.js";

export const ReplayedSchema = z
  .object({ id: z.string(), status: z.literal("pending") })
  .openapi("ReplayedDelivery");

const retry = createRoute({
  method: "post",
  path: "/v1/deliveries/{id}/retry",
  tags: ["events"],
  summary: "Replay one of your deliveries now, with a fresh attempt count (same event id)",
  security: [{ apiKey: [] }],
  request: { params: IdParam("dlv", "dlv_01JGZ3V5S8W9K2M4N6P8Q0R2T4") },
  responses: {
    202: { content: { "application/json": { schema: ReplayedSchema } }, description: "Queued" },
    ...notFoundResponse,
    ...errorResponses,
  },
});

export function registerDeliveryRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(retry, (c) => {
    const { db, clock } = c.var.deps;
    const { id } = c.req.valid("param");
    if (!replayDelivery(db, id, c.var.tenant.id, clock.now())) throw notFound("delivery");
    return c.json({ id, status: "pending" as const }, 202);
  });
}
