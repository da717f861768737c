import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveEncryptionKey } from "../src/keyfile.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "taskhook-key-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("resolveEncryptionKey without ENCRYPTION_KEY", () => {
  it("generates a 32-byte key in a 0600 file beside the database, creating its folder", () => {
    const db = join(dir, "data", "taskhook.db");
    const first = resolveEncryptionKey(undefined, db);
    const file = join(dir, "data", "encryption.key");
    expect(first.key).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toBe(`${first.key.toString("base64")}\n`);
    expect(first.warning).toContain(file);
    expect(first.warning).toContain("generated");
  });

  it("keeps the file private whatever the umask", () => {
    const previous = process.umask(0);
    try {
      resolveEncryptionKey(undefined, join(dir, "taskhook.db"));
    } finally {
      process.umask(previous);
    }
    expect(statSync(join(dir, "encryption.key")).mode & 0o777).toBe(0o600);
  });

  it("reuses the kept key on the next start, with a warning, without rewriting it", () => {
    const db = join(dir, "taskhook.db");
    const first = resolveEncryptionKey(undefined, db);
    const file = join(dir, "encryption.key");
    const written = statSync(file).mtimeMs;
    const second = resolveEncryptionKey(undefined, db);
    expect(second.key.equals(first.key)).toBe(true);
    expect(second.warning).toContain("using the key kept in");
    expect(statSync(file).mtimeMs).toBe(written);
  });

  it("refuses a kept file that is not a 32-byte base64 key instead of generating a new one", () => {
    const file = join(dir, "encryption.key");
    writeFileSync(file, "not a key\n", { mode: 0o600 });
    expect(() => resolveEncryptionKey(undefined, join(dir, "taskhook.db"))).toThrow(/base64/);
    expect(readFileSync(file, "utf8")).toBe("not a key\n");
  });

  it("uses a throwaway key and writes nothing for an in-memory database", () => {
    const a = resolveEncryptionKey(undefined, ":memory:");
    const b = resolveEncryptionKey(undefined, ":memory:");
    expect(a.key).toHaveLength(32);
    expect(a.key.equals(b.key)).toBe(false);
    expect(a.warning).toContain("throwaway");
  });
});

describe("resolveEncryptionKey with ENCRYPTION_KEY", () => {
  const configured = Buffer.alloc(32, 9);

  it("uses the configured key, writes no file and warns about nothing", () => {
    const resolved = resolveEncryptionKey(configured.toString("base64"), join(dir, "taskhook.db"));
    expect(resolved.key.equals(configured)).toBe(true);
    expect(resolved.warning).toBeNull();
    expect(existsSync(join(dir, "encryption.key"))).toBe(false);
  });

  it("wins over a key file already beside the database", () => {
    const db = join(dir, "taskhook.db");
    const kept = resolveEncryptionKey(undefined, db);
    const resolved = resolveEncryptionKey(configured.toString("base64"), db);
    expect(resolved.key.equals(configured)).toBe(true);
    expect(resolved.key.equals(kept.key)).toBe(false);
    expect(resolved.warning).toBeNull();
  });
});
