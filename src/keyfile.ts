import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseEncryptionKey } from "./domain/crypto.js";

export interface ResolvedKey {
  key: Buffer;
  /** Why the operator should look: a key generated or kept on disk instead of configured. */
  warning: string | null;
}

/**
 * ENCRYPTION_KEY, or else a key generated once and kept in a 0600 file beside the database, so a
 * restart can still read the keys and secrets it stored. `:memory:` databases get a throwaway key.
 */
export function resolveEncryptionKey(
  configured: string | undefined,
  databaseUrl: string,
): ResolvedKey {
  if (configured) return { key: parseEncryptionKey(configured), warning: null };
  if (databaseUrl === ":memory:") {
    return {
      key: randomBytes(32),
      warning: "ENCRYPTION_KEY unset: using a throwaway key for an in-memory database",
    };
  }
  const file = join(dirname(databaseUrl), "encryption.key");
  if (existsSync(file)) return keptKey(file);
  mkdirSync(dirname(file), { recursive: true });
  const key = randomBytes(32);
  try {
    writeFileSync(file, `${key.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    // A second process starting at the same moment wrote it first: both must use that one.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return keptKey(file);
    throw err;
  }
  return {
    key,
    warning: `ENCRYPTION_KEY unset: generated one and kept it in ${file} (mode 0600); back it up or set ENCRYPTION_KEY`,
  };
}

function keptKey(file: string): ResolvedKey {
  return {
    key: parseEncryptionKey(readFileSync(file, "utf8")),
    warning: `ENCRYPTION_KEY unset: using the key kept in ${file}; set ENCRYPTION_KEY in production`,
  };
}
