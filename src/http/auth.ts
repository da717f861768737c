import { createMiddleware } from "hono/factory";
import { constantTimeEqual, hashApiKey } from "../domain/crypto.js";
import type { AppEnv } from "./context.js";
import { ApiError } from "./errors.js";

const API_KEY = /^vpk_[A-Za-z0-9_-]{1,256}$/;

/** The credentials of `Authorization: Bearer <token>`; the scheme name is case-insensitive (RFC 9110). */
function bearerToken(header: string | undefined): string | null {
  const match = /^bearer (.+)$/i.exec(header ?? "");
  return match?.[1] ?? null;
}

/** Client routes: the VibePeak API key is the credential, and its hash is the tenant. */
export const tenantAuth = createMiddleware<AppEnv>(async (c, next) => {
  const apiKey = bearerToken(c.req.header("authorization"));
  if (apiKey === null || !API_KEY.test(apiKey)) {
    throw new ApiError(
      "UNAUTHORIZED",
      "Authorization must be `Bearer vpk_...` (your VibePeak API key)",
    );
  }
  c.set("tenant", { id: hashApiKey(apiKey), apiKey });
  await next();
});

/** Admin routes: disabled (403) without ADMIN_TOKEN; otherwise the token, compared in constant time. */
export const adminAuth = createMiddleware<AppEnv>(async (c, next) => {
  const expected = c.var.deps.config.ADMIN_TOKEN;
  if (!expected)
    throw new ApiError("FORBIDDEN", "admin API is disabled: set ADMIN_TOKEN to enable it");
  const token = bearerToken(c.req.header("authorization")) ?? "";
  if (!constantTimeEqual(token, expected))
    throw new ApiError("UNAUTHORIZED", "admin token required");
  await next();
});
