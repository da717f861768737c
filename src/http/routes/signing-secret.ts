import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { transaction } from "../../db/client.js";
import { rotateSigningSecret, signingSecrets } from "../../db/tenants.js";
import type { AppEnv } from "../context.js";
import { errorResponses } from "../errors.js";

const SecretSchema = z
  .object({
    secret: z.string().openapi({ example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
    created_at: z.string(),
  })
  .openapi("SigningSecret", {
    example: {
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      created_at: "2026-01-04T12:00:00.000Z",
    },
  });

const get = createRoute({
  method: "get",
  path: "/v1/signing-secret",
  tags: ["signing secret"],
  summary: "The secret that signs all your webhooks (created on first use)",
  security: [{ apiKey: [] }],
  responses: {
    200: {
      content: { "application/json": { schema: SecretSchema } },
      description: "The current secret",
    },
    ...errorResponses,
  },
});

const rotate = createRoute({
  method: "post",
  path: "/v1/signing-secret/rotate",
  tags: ["signing secret"],
  summary: "A new secret; for 24 hours webhooks carry signatures by both the new and the old one",
  security: [{ apiKey: [] }],
  responses: {
    200: {
      content: { "application/json": { schema: SecretSchema } },
      description: "The new secret",
    },
    ...errorResponses,
  },
});

export function registerSigningSecretRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(get, (c) => {
    const { db, encryptionKey, clock } = c.var.deps;
    const s = transaction(db, () =>
      signingSecrets(db, encryptionKey, c.var.tenant.id, clock.now()),
    );
    return c.json({ secret: s.current, created_at: new Date(s.createdAt).toISOString() }, 200);
  });

  app.openapi(rotate, (c) => {
    const { db, encryptionKey, clock } = c.var.deps;
    const s = transaction(db, () =>
      rotateSigningSecret(db, encryptionKey, c.var.tenant.id, clock.now()),
    );
    return c.json({ secret: s.current, created_at: new Date(s.createdAt).toISOString() }, 200);
  });
}
