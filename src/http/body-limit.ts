import { createMiddleware } from "hono/factory";
import type { AppEnv } from "./context.js";
import { ApiError } from "./errors.js";

const tooLarge = () => new ApiError("PAYLOAD_TOO_LARGE", "request body is over 64 KiB");

/**
 * Hono's bodyLimit trusts a declared Content-Length whenever one is present. This one uses the
 * header only to refuse early and always counts the bytes actually read, so an absent or lying
 * header cannot get a larger body parsed.
 */
export function bodyLimit(maxBytes: number) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const body = c.req.raw.body;
    if (!body) return next();
    const declared = Number(c.req.header("content-length"));
    if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
    c.req.raw = new Request(c.req.raw, { body: Buffer.concat(chunks) });
    await next();
  });
}
