import type { Config } from "../config.js";
import { checkCallbackUrl } from "../domain/callback-url.js";
import { ApiError } from "./errors.js";

/** The normalized callback URL, or a VALIDATION_ERROR naming `callback_url` (SPEC §6 at registration). */
export function requireCallbackUrl(raw: string, config: Config): string {
  const checked = checkCallbackUrl(raw, {
    allowPrivate: config.ALLOW_PRIVATE_CALLBACKS,
    requireHttps: config.REQUIRE_HTTPS_CALLBACKS,
  });
  if (!checked.ok) {
    throw new ApiError("VALIDATION_ERROR", checked.message, [
      { path: "callback_url", message: checked.message },
    ]);
  }
  return checked.url;
}
