import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { AppDeps, AppEnv } from "../context.js";
import { ApiError, ErrorSchema } from "../errors.js";

const Health = z
  .object({ status: z.literal("ok") })
  .openapi("Health", { example: { status: "ok" } });
const Ready = z
  .object({
    status: z.literal("ready"),
    checks: z.object({ database: z.boolean(), scheduler: z.boolean(), deliverer: z.boolean() }),
  })
  .openapi("Ready", {
    example: { status: "ready", checks: { database: true, scheduler: true, deliverer: true } },
  });

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "200 while the process runs",
  responses: { 200: { content: { "application/json": { schema: Health } }, description: "Alive" } },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  tags: ["operations"],
  summary: "200 when the database answers and the scheduler and delivery loops run",
  responses: {
    200: { content: { "application/json": { schema: Ready } }, description: "Ready" },
    503: {
      content: { "application/json": { schema: ErrorSchema } },
      description: "UNAVAILABLE, with the failed checks in details",
    },
  },
});

function databaseAnswers(deps: AppDeps): boolean {
  try {
    deps.db.get(sql`select 1`);
    return true;
  } catch {
    return false;
  }
}

export function registerOpsRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(healthz, (c) => c.json({ status: "ok" as const }, 200));

  app.openapi(readyz, (c) => {
    const deps = c.var.deps;
    const loops = deps.loops?.() ?? { scheduler: true, deliverer: true };
    const checks = { database: databaseAnswers(deps), ...loops };
    if (!checks.database || !checks.scheduler || !checks.deliverer) {
      const failing = Object.entries(checks)
        .filter(([, ok]) => !ok)
        .map(([name]) => name);
      throw new ApiError("UNAVAILABLE", `not ready: ${failing.join(", ")}`, [checks]);
    }
    return c.json({ status: "ready" as const, checks }, 200);
  });
}
