import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { readStats } from "../../db/stats.js";
import { createMetrics, type Metrics, refreshDbGauges } from "../../metrics.js";
import type { AppEnv } from "../context.js";

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["operations"],
  summary: "Prometheus metrics (text exposition format)",
  responses: {
    200: {
      content: {
        "text/plain": {
          schema: z.string().openapi({ example: 'taskhook_watches{status="active"} 12' }),
        },
      },
      description: "Metrics",
    },
  },
});

export function registerMetricsRoute(app: OpenAPIHono<AppEnv>) {
  // Without loops in this process (tests), the database gauges are still served.
  let fallback: Metrics | undefined;
  app.openapi(metricsRoute, async (c) => {
    const { db, clock } = c.var.deps;
    fallback ??= c.var.deps.metrics ? undefined : createMetrics();
    const metrics = c.var.deps.metrics ?? (fallback as Metrics);
    refreshDbGauges(metrics, readStats(db, clock.now()));
    const text = await metrics.registry.metrics();
    return c.text(text, 200, { "content-type": metrics.registry.contentType });
  });
}
