import { closeSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startCheckpointer } from "../../src/db/checkpointer.js";
import { type Db, openDatabase, transaction } from "../../src/db/client.js";
import { memoryLogger } from "../support/context.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The WAL header's checkpoint sequence number: SQLite increments it each time the WAL starts over. */
function walRestarts(path: string): number {
  const fd = openSync(`${path}-wal`, "r");
  try {
    const header = Buffer.alloc(16);
    readSync(fd, header, 0, 16, 0);
    return header.readUInt32BE(12);
  } finally {
    closeSync(fd);
  }
}

function scratchDb(): { db: Db; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "taskhook-wal-"));
  dirs.push(dir);
  const path = join(dir, "wal.db");
  const db = openDatabase(path);
  db.$client.exec(
    "CREATE TABLE pad (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, body TEXT NOT NULL)",
  );
  const insert = db.$client.prepare("INSERT INTO pad (n, body) VALUES (0, ?)");
  transaction(db, () => {
    for (let i = 0; i < 2_000; i++) insert.run("x".repeat(1_000));
  });
  return { db, path };
}

describe("WAL checkpointer", () => {
  it("lets the WAL start over again and again while the service never stops writing", async () => {
    const { db, path } = scratchDb();
    let passes = 0;
    let firstPass: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      firstPass = resolve;
    });
    const checkpointer = startCheckpointer(db, path, memoryLogger().logger, {
      everyMs: 10,
      restartFrames: 64,
      walSizeLimitBytes: 1024 * 1024,
      onPass: () => {
        passes += 1;
        firstPass();
      },
    });
    const update = db.$client.prepare("UPDATE pad SET n = n + 1 WHERE id = ?");
    let restarts = 0;
    let transactions = 0;
    try {
      await started;
      const first = walRestarts(path);
      // Writes as a busy service does: a transaction of 10 pages spread over the table (~40 KB of
      // WAL), the event loop turns, the next one. Without the catch-up the WAL never starts over.
      while (restarts < 5 && transactions < 2_000) {
        transaction(db, () => {
          for (let row = 0; row < 10; row++) {
            update.run(1 + ((transactions * 41 + row * 197) % 2_000));
          }
        });
        transactions += 1;
        await new Promise((resolve) => setImmediate(resolve));
        restarts = walRestarts(path) - first;
      }
    } finally {
      await checkpointer.stop();
      db.$client.close();
    }
    expect(passes).toBeGreaterThan(0);
    expect(restarts).toBe(5);
  });
});
