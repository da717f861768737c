import { createHmac, randomBytes } from "node:crypto";

const SECRET_PREFIX = "whsec_";
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface SignatureInput {
  /** The event id: the same on every retry, so consumers can de-duplicate on it. */
  id: string;
  /** Unix seconds of this attempt; each retry signs afresh with its own. */
  timestampSec: number;
  /** Exactly the bytes sent (as UTF-8): re-serialising the JSON would break the signature. */
  body: string;
  /** Newest first; two during a rotation's overlap. */
  secrets: readonly string[];
}

export interface WebhookHeadersInput extends SignatureInput {
  userAgent: string;
}

/** A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes (the spec's recommended size). */
export function generateSigningSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString("base64")}`;
}

/**
 * The prefix is optional, as in the reference implementations. Strict base64 so that a
 * corrupted secret fails loudly here instead of signing with a key no consumer holds.
 */
function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(encoded, "base64");
  if (!BASE64.test(encoded) || key.length === 0 || key.toString("base64") !== encoded) {
    throw new Error("signing secret must be whsec_ followed by non-empty standard base64");
  }
  return key;
}

/** `v1,<sig>` per secret, space-separated: any one matching signature verifies. */
export function signatureHeader(input: SignatureInput): string {
  if (input.secrets.length === 0) {
    throw new Error("signatureHeader needs at least one secret");
  }
  // A fractional or negative timestamp would be signed as written but parsed differently by verifiers.
  if (!Number.isSafeInteger(input.timestampSec) || input.timestampSec < 0) {
    throw new Error(`timestampSec must be a non-negative integer, got ${input.timestampSec}`);
  }
  const signed = `${input.id}.${input.timestampSec}.${input.body}`;
  return input.secrets
    .map(
      (secret) => `v1,${createHmac("sha256", secretKey(secret)).update(signed).digest("base64")}`,
    )
    .join(" ");
}

export function webhookHeaders(input: WebhookHeadersInput): Record<string, string> {
  return {
    "webhook-id": input.id,
    "webhook-timestamp": String(input.timestampSec),
    "webhook-signature": signatureHeader(input),
    "content-type": "application/json",
    "user-agent": input.userAgent,
  };
}
