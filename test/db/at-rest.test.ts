import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { signingSecrets } from "../../src/db/tenants.js";
import { hashApiKey } from "../../src/domain/crypto.js";
import { createTestContext, KEY_A, KEY_B } from "../support/context.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function readIfExists(path: string): Buffer {
  return existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
}

/** Every form in which a secret could land on disk: as text, as its base64 part, as raw bytes. */
function forms(secret: string): Array<string | Buffer> {
  if (secret.startsWith("whsec_")) {
    const b64 = secret.slice(6);
    return [secret, b64, Buffer.from(b64, "base64")];
  }
  return [secret, secret.slice(4), Buffer.from(secret).toString("base64")];
}

describe("secrets at rest", () => {
  it("neither API keys nor signing secrets appear in clear in the database file or its WAL", async () => {
    dir = mkdtempSync(join(tmpdir(), "taskhook-at-rest-"));
    const path = join(dir, "taskhook.db");
    const t = createTestContext({}, path);
    const secrets: string[] = [];
    for (const key of [KEY_A, KEY_B]) {
      const res = await t.call("POST", "/v1/watches", {
        key,
        body: { task_id: "task_at_rest_marker", callback_url: "https://hooks.example.com/x" },
      });
      expect(res.status).toBe(201);
      secrets.push((await t.call("GET", "/v1/signing-secret", { key })).body.secret);
      secrets.push((await t.call("POST", "/v1/signing-secret/rotate", { key })).body.secret);
    }
    // The pre-rotation secret is still stored (it signs for 24 h more): it must be encrypted too.
    const kept = signingSecrets(t.db, t.deps.encryptionKey, hashApiKey(KEY_A), t.clock.now());
    expect(kept.previous).toBe(secrets[0]);

    const whileOpen = [
      readIfExists(path),
      readIfExists(`${path}-wal`),
      readIfExists(`${path}-shm`),
    ];
    t.db.$client.close();
    const afterClose = [readIfExists(path), readIfExists(`${path}-wal`)];
    const files = [...whileOpen, ...afterClose];

    // The bytes read are the stored data: the task id and the tenant hash are there in clear.
    const all = Buffer.concat(files);
    expect(all.includes("task_at_rest_marker")).toBe(true);
    expect(all.includes(hashApiKey(KEY_A))).toBe(true);
    expect(whileOpen[1]?.includes("task_at_rest_marker")).toBe(true);
    expect(afterClose[0]?.includes("task_at_rest_marker")).toBe(true);

    for (const secret of [KEY_A, KEY_B, ...secrets]) {
      for (const form of forms(secret)) {
        for (const bytes of files) expect(bytes.includes(form)).toBe(false);
      }
    }
  });
});
