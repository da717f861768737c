import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT_VERSION = "v1";

/** The tenant id: one API key = one tenant, and the key itself is never stored in the clear. */
export function hashApiKey(apiKey: string): string {
  return createHash("sha256").update(apiKey).digest("hex");
}

/** Short enough to read in an admin list, long enough that two tenants practically never share one. */
export function tenantLabel(hash: string): string {
  return hash.slice(0, 12);
}

function assertKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) {
    throw new Error(`encryption key must be ${KEY_BYTES} bytes, got ${key.length}`);
  }
}

/** Accepts standard base64 (padding optional), rejecting anything that would decode loosely. */
export function parseEncryptionKey(b64: string): Buffer {
  const text = b64.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new Error("encryption key must be base64 (e.g. from `openssl rand -base64 32`)");
  }
  const key = Buffer.from(text, "base64");
  if (key.toString("base64").replace(/=+$/, "") !== text.replace(/=+$/, "")) {
    throw new Error("encryption key must be base64 (e.g. from `openssl rand -base64 32`)");
  }
  if (key.length !== KEY_BYTES) {
    throw new Error(`encryption key must decode to ${KEY_BYTES} bytes, got ${key.length} bytes`);
  }
  return key;
}

/** AES-256-GCM as `v1.<iv>.<tag>.<ciphertext>` (base64url): the version leaves room to change schemes. */
export function encryptSecret(key: Buffer, plaintext: string): string {
  assertKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [FORMAT_VERSION, iv, tag, ciphertext]
    .map((part) => (typeof part === "string" ? part : part.toString("base64url")))
    .join(".");
}

/** Node decodes base64url leniently; only a canonical encoding keeps every edit to the blob detectable. */
function decodePart(part: string, name: string): Buffer {
  const bytes = Buffer.from(part, "base64url");
  if (!/^[A-Za-z0-9_-]*$/.test(part) || bytes.toString("base64url") !== part) {
    throw new Error(`decryptSecret: malformed ${name}`);
  }
  return bytes;
}

export function decryptSecret(key: Buffer, blob: string): string {
  assertKey(key);
  const parts = blob.split(".");
  if (parts.length !== 4 || parts[0] !== FORMAT_VERSION) {
    throw new Error(`decryptSecret: not a ${FORMAT_VERSION} encrypted secret`);
  }
  const iv = decodePart(parts[1] ?? "", "iv");
  const tag = decodePart(parts[2] ?? "", "auth tag");
  const ciphertext = decodePart(parts[3] ?? "", "ciphertext");
  // GCM accepts truncated tags unless told otherwise, which would weaken the authentication.
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
    throw new Error("decryptSecret: malformed iv or auth tag");
  }
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString("utf8");
  } catch {
    throw new Error("decryptSecret: authentication failed (wrong ENCRYPTION_KEY or tampered data)");
  }
}

/** Hashing first makes both inputs the same length, so neither content nor length leaks through timing. */
export function constantTimeEqual(a: string, b: string): boolean {
  const digestA = createHash("sha256").update(a).digest();
  const digestB = createHash("sha256").update(b).digest();
  return timingSafeEqual(digestA, digestB);
}
