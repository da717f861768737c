import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { transaction } from "../../db/client.js";
import { replayDelivery } from "../../db/deliveries.js";
import { signingSecrets } from "../../db/tenants.js";
import { newId } from "../../domain/ids.js";
import { webhookBody } from "../../domain/webhook-body.js";
import { RateWindow } from "../../scheduler/rate-window.js";
import { requireCallbackUrl } from "../callback.js";
import type { AppEnv } from "../context.js";
import {
  ApiError,
  errorResponses,
  notFound,
  notFoundResponse,
  rateLimitedResponse,
} from "../errors.js";
import { AttemptSchema, CallbackUrlSchema, IdParam } from "../schemas.js";

export const PINGS_PER_MINUTE = 10;

export const ReplayedSchema = z
  .object({ id: z.string(), status: z.literal("pending") })
  .openapi("ReplayedDelivery", {
    example: { id: "dlv_01JGZ4A7B9C1D3E5F7G9H1J3K6", status: "pending" },
  });

const retry = createRoute({
  method: "post",
  path: "/v1/deliveries/{id}/retry",
  tags: ["events"],
  summary: "Replay a delivery now with a fresh attempt count, whatever its state (same webhook-id)",
  security: [{ apiKey: [] }],
  request: { params: IdParam("dlv", "dlv_01JGZ3V5S8W9K2M4N6P8Q0R2T4") },
  responses: {
    202: { content: { "application/json": { schema: ReplayedSchema } }, description: "Queued" },
    ...notFoundResponse,
    ...errorResponses,
  },
});

const PingResult = z
  .object({
    event_id: z.string(),
    attempt: AttemptSchema.extend({ response_body: z.string().nullable() }),
  })
  .openapi("WebhookTest", {
    example: {
      event_id: "evt_01JGZ4A7B9C1D3E5F7G9H1J3K5",
      attempt: {
        at: "2026-01-04T12:00:00.000Z",
        status_code: 200,
        duration_ms: 35,
        error: null,
        response_body: "ok",
      },
    },
  });

const webhookTest = createRoute({
  method: "post",
  path: "/v1/webhook-test",
  tags: ["events"],
  summary: "Send one signed `ping` to a URL now and see how it answered",
  description: "Check your endpoint and your signature verification before you register watches.",
  security: [{ apiKey: [] }],
  request: {
    body: {
      content: {
        "application/json": {
          schema: z
            .strictObject({ callback_url: CallbackUrlSchema })
            .openapi("WebhookTestRequest", {
              example: { callback_url: "https://app.example.com/hooks/vibepeak" },
            }),
        },
      },
      required: true,
    },
  },
  responses: {
    200: {
      content: { "application/json": { schema: PingResult } },
      description: "The attempt (sent even if it failed)",
    },
    ...rateLimitedResponse,
    ...errorResponses,
  },
});

export function registerDeliveryRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(retry, (c) => {
    const { db, clock, wake } = c.var.deps;
    const { id } = c.req.valid("param");
    if (!replayDelivery(db, id, c.var.tenant.id, clock.now())) throw notFound("delivery");
    wake?.deliverer();
    return c.json({ id, status: "pending" as const }, 202);
  });

  // The ping makes us POST to a URL of the caller's choosing: a few a minute per tenant is plenty.
  const pings = new Map<string, RateWindow>();
  app.openapi(webhookTest, async (c) => {
    const { db, clock, config, encryptionKey, sender } = c.var.deps;
    const callbackUrl = requireCallbackUrl(c.req.valid("json").callback_url, config);
    const now = clock.now();
    const window = pings.get(c.var.tenant.id) ?? new RateWindow(PINGS_PER_MINUTE, 60_000);
    pings.set(c.var.tenant.id, window);
    if (!window.tryAcquire(now)) {
      throw new ApiError(
        "RATE_LIMITED",
        `at most ${PINGS_PER_MINUTE} webhook tests a minute per API key`,
      );
    }
    const secrets = transaction(db, () => signingSecrets(db, encryptionKey, c.var.tenant.id, now));
    const eventId = newId("evt", now);
    const body = webhookBody({
      type: "ping",
      eventId,
      now,
      watchId: null,
      sequence: 0,
      taskId: null,
      status: null,
      previousStatus: null,
      task: null,
      metadata: null,
    });
    const attempt = await sender.send(
      {
        url: callbackUrl,
        id: eventId,
        body: JSON.stringify(body),
        secrets:
          secrets.previous === null ? [secrets.current] : [secrets.current, secrets.previous],
      },
      now,
    );
    return c.json(
      {
        event_id: eventId,
        attempt: {
          at: new Date(attempt.at).toISOString(),
          status_code: attempt.statusCode,
          duration_ms: attempt.durationMs,
          error: attempt.error,
          response_body: attempt.responseBody,
        },
      },
      200,
    );
  });
}
