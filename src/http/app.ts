import { randomUUID } from "node:crypto";
import { swaggerUI } from "@hono/swagger-ui";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import { VERSION } from "../version.js";
import { adminAuth, tenantAuth } from "./auth.js";
import { bodyLimit } from "./body-limit.js";
import type { AppDeps, AppEnv } from "./context.js";
import { ApiError } from "./errors.js";
import { registerAdminRoutes } from "./routes/admin.js";
import { registerDeliveryRoutes } from "./routes/deliveries.js";
import { registerEventRoutes } from "./routes/events.js";
import { registerMetricsRoute } from "./routes/metrics.js";
import { registerOpsRoutes } from "./routes/ops.js";
import { registerSigningSecretRoutes } from "./routes/signing-secret.js";
import { registerWatchRoutes } from "./routes/watches.js";

export const MAX_BODY_BYTES = 64 * 1024;

export function validationError(error: ZodError): ApiError {
  const details = error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
  const first = details[0];
  const message = first ? `${first.path || "body"}: ${first.message}` : "invalid request";
  return new ApiError("VALIDATION_ERROR", message, details);
}

function isSqliteBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED" || code === "SQLITE_BUSY_SNAPSHOT";
}

function toApiError(err: unknown, c: Context<AppEnv>): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof HTTPException) {
    if (err.status === 413) return new ApiError("PAYLOAD_TOO_LARGE", "request body is over 64 KiB");
    if (err.status === 415) {
      return new ApiError("UNSUPPORTED_MEDIA_TYPE", "request body must be application/json");
    }
    if (err.status === 400) return new ApiError("VALIDATION_ERROR", `body: ${err.message}`);
  }
  if (isSqliteBusy(err)) {
    c.var.deps.logger.warn({ requestId: c.var.requestId }, "database busy");
    return new ApiError("UNAVAILABLE", "the database is busy; retry shortly");
  }
  c.var.deps.logger.error({ err, requestId: c.var.requestId }, "unhandled error");
  return new ApiError("INTERNAL", "internal error");
}

/** The HTTP app: client API, admin API and operations routes, with the deps injected per request. */
export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });

  // The access line holds only the fields below, none a credential, so it skips the redaction pass
  // the other lines get (src/log.ts): that pass was half of the line's cost, ~6 µs per request.
  const accessLog = deps.logger.child({}, { redact: [] });
  app.use("*", async (c, next) => {
    const requestId = c.req.header("x-request-id")?.slice(0, 128) || randomUUID();
    c.set("deps", deps);
    c.set("requestId", requestId);
    c.header("x-request-id", requestId);
    const started = performance.now();
    await next();
    accessLog.info(
      {
        requestId,
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
      },
      "request",
    );
  });

  app.use("*", bodyLimit(MAX_BODY_BYTES));

  app.onError((err, c) => {
    const apiError = toApiError(err, c);
    return c.json(apiError.toBody(), apiError.status);
  });
  app.notFound((c) => {
    const err = new ApiError("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`);
    return c.json(err.toBody(), err.status);
  });

  app.use("/v1/*", tenantAuth);
  app.use("/admin/*", adminAuth);

  registerWatchRoutes(app);
  registerEventRoutes(app);
  registerDeliveryRoutes(app);
  registerSigningSecretRoutes(app);
  registerAdminRoutes(app);
  registerOpsRoutes(app);
  registerMetricsRoute(app);

  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "Your VibePeak API key (`vpk_...`): one key is one tenant.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "adminToken", {
    type: "http",
    scheme: "bearer",
    description: "The operator's ADMIN_TOKEN.",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "taskhook",
      version: VERSION,
      description:
        "Register a VibePeak task and a callback URL; taskhook polls the task and POSTs a signed webhook (Standard Webhooks) on every status change.",
    },
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json", title: "taskhook API" }));

  return app;
}

export type App = ReturnType<typeof createApp>;
