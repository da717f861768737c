import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  constantTimeEqual,
  decryptSecret,
  encryptSecret,
  hashApiKey,
  parseEncryptionKey,
  tenantLabel,
} from "../../src/domain/crypto.js";

const KEY = Buffer.alloc(32, 0x42);
const API_KEY = "vpk_live_0123456789abcdef";

/** Flips one bit of one decoded part and re-encodes it canonically. */
function flipBit(blob: string, partIndex: number): string {
  const parts = blob.split(".");
  const bytes = Buffer.from(parts[partIndex] ?? "", "base64url");
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  parts[partIndex] = bytes.toString("base64url");
  return parts.join(".");
}

describe("hashApiKey and tenantLabel", () => {
  it("hashes an API key to hex SHA-256, the same key always to the same tenant", () => {
    const hash = hashApiKey(API_KEY);
    expect(hash).toBe(createHash("sha256").update(API_KEY).digest("hex"));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(API_KEY)).toBe(hash);
    expect(hashApiKey(`${API_KEY}x`)).not.toBe(hash);
  });

  it("labels a tenant by the first 12 hex characters of its hash", () => {
    const hash = hashApiKey(API_KEY);
    expect(tenantLabel(hash)).toBe(hash.slice(0, 12));
    expect(tenantLabel(hash)).toHaveLength(12);
  });
});

describe("encryptSecret / decryptSecret", () => {
  it.each([
    { case: "an API key", plaintext: API_KEY },
    { case: "a signing secret", plaintext: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
    { case: "non-ASCII text", plaintext: "clé-✓-🔑" },
    { case: "an empty string", plaintext: "" },
  ])("round-trips $case", ({ plaintext }) => {
    expect(decryptSecret(KEY, encryptSecret(KEY, plaintext))).toBe(plaintext);
  });

  it("writes v1.<iv>.<tag>.<ciphertext> in base64url with a 12-byte IV and a 16-byte tag", () => {
    const blob = encryptSecret(KEY, API_KEY);
    const [version, iv, tag, ciphertext, ...rest] = blob.split(".");
    expect(version).toBe("v1");
    expect(rest).toEqual([]);
    expect(Buffer.from(iv ?? "", "base64url")).toHaveLength(12);
    expect(Buffer.from(tag ?? "", "base64url")).toHaveLength(16);
    expect(Buffer.from(ciphertext ?? "", "base64url")).toHaveLength(Buffer.byteLength(API_KEY));
    expect(blob).toMatch(/^v1(\.[A-Za-z0-9_-]*){3}$/);
  });

  it("never shows the plaintext in the ciphertext, in any common encoding", () => {
    const blob = encryptSecret(KEY, API_KEY);
    expect(blob).not.toContain(API_KEY);
    expect(blob).not.toContain(Buffer.from(API_KEY).toString("base64url"));
    expect(blob).not.toContain(Buffer.from(API_KEY).toString("base64").replace(/=+$/, ""));
  });

  it("uses a fresh IV every time, so equal secrets do not look equal at rest", () => {
    const blobs = Array.from({ length: 50 }, () => encryptSecret(KEY, API_KEY));
    expect(new Set(blobs.map((blob) => blob.split(".")[1])).size).toBe(50);
    expect(new Set(blobs).size).toBe(50);
  });

  it("refuses to decrypt under the wrong key", () => {
    const blob = encryptSecret(KEY, API_KEY);
    expect(() => decryptSecret(Buffer.alloc(32, 0x43), blob)).toThrow(/authentication failed/);
  });

  it.each([
    { case: "the IV", part: 1 },
    { case: "the auth tag", part: 2 },
    { case: "the ciphertext", part: 3 },
  ])("detects a flipped bit in $case", ({ part }) => {
    const blob = encryptSecret(KEY, API_KEY);
    expect(() => decryptSecret(KEY, flipBit(blob, part))).toThrow(/authentication failed/);
  });

  // Includes edits of a part's last character that change only padding bits, which Node's
  // lenient base64url decoder would otherwise ignore.
  it("detects every single-character edit of the blob", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const blob = encryptSecret(KEY, "short");
    for (let i = 3; i < blob.length; i++) {
      if (blob[i] === ".") continue;
      for (const replacement of alphabet.replace(blob.charAt(i), "")) {
        const edited = `${blob.slice(0, i)}${replacement}${blob.slice(i + 1)}`;
        expect(() => decryptSecret(KEY, edited), `${edited}`).toThrow(/^decryptSecret: /);
      }
    }
  });

  it.each([
    { case: "an unknown version", blob: (b: string) => b.replace(/^v1\./, "v2.") },
    { case: "a missing part", blob: (b: string) => b.split(".").slice(0, 3).join(".") },
    { case: "an extra part", blob: (b: string) => `${b}.AAAA` },
    {
      case: "a truncated auth tag",
      blob: (b: string) => b.replace(/\.([^.]+)\./, (_, t: string) => `.${t.slice(0, 8)}.`),
    },
    { case: "plain text", blob: () => API_KEY },
  ])("rejects $case with a clear error", ({ blob }) => {
    expect(() => decryptSecret(KEY, blob(encryptSecret(KEY, API_KEY)))).toThrow(/^decryptSecret: /);
  });

  it("refuses a key that is not 32 bytes", () => {
    expect(() => encryptSecret(Buffer.alloc(16), API_KEY)).toThrow(/32 bytes/);
    expect(() => decryptSecret(Buffer.alloc(16), encryptSecret(KEY, API_KEY))).toThrow(/32 bytes/);
  });
});

describe("parseEncryptionKey", () => {
  const raw = randomBytes(32);

  it.each([
    { case: "padded base64", text: raw.toString("base64") },
    { case: "unpadded base64", text: raw.toString("base64").replace(/=+$/, "") },
    { case: "base64 with a trailing newline", text: `${raw.toString("base64")}\n` },
  ])("accepts $case of 32 bytes", ({ text }) => {
    expect(parseEncryptionKey(text).equals(raw)).toBe(true);
  });

  it.each([
    { case: "an empty string", text: "", error: /got 0 bytes/ },
    { case: "16 bytes", text: randomBytes(16).toString("base64"), error: /got 16 bytes/ },
    { case: "33 bytes", text: randomBytes(33).toString("base64"), error: /got 33 bytes/ },
    {
      case: "base64url characters",
      text: Buffer.alloc(32, 0xfb).toString("base64url"),
      error: /base64/,
    },
    { case: "hex", text: raw.toString("hex"), error: /got 48 bytes/ },
    { case: "garbage", text: "not a key at all!", error: /base64/ },
    // "B" differs from "A" only in bits past the 256th, which a lenient decoder drops.
    { case: "non-canonical trailing bits", text: `${"A".repeat(42)}B=`, error: /base64/ },
  ])("rejects $case", ({ text, error }) => {
    expect(() => parseEncryptionKey(text)).toThrow(error);
  });
});

describe("constantTimeEqual", () => {
  it.each([
    { a: "token", b: "token", equal: true },
    { a: "", b: "", equal: true },
    { a: "token", b: "tokeN", equal: false },
    { a: "token", b: "token-but-longer", equal: false },
    { a: "", b: "x", equal: false },
  ])("'$a' vs '$b' → $equal", ({ a, b, equal }) => {
    expect(constantTimeEqual(a, b)).toBe(equal);
  });
});
