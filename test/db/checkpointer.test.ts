import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from "node:fs";
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
  it("keeps the WAL bounded while the service never stops writing", async () => {
    const { db, path } = scratchDb();
    const limit = 1024 * 1024;
    const checkpointer = startCheckpointer(db, path, memoryLogger().logger, {
      everyMs: 10,
      restartFrames: 64,
      walSizeLimitBytes: limit,
    });
    const update = db.$client.prepare("UPDATE pad SET n = n + 1 WHERE id = ?");
    // Writes as a busy service does: a transaction, then the event loop turns, then the next. Each
    // transaction rewrites 40 pages spread over the table: ~160 KB of WAL.
    let tx = 0;
    const write = async () => {
      transaction(db, () => {
        for (let row = 0; row < 40; row++) update.run(1 + ((tx * 41 + row * 53) % 2_000));
      });
      tx += 1;
      await new Promise((resolve) => setImmediate(resolve));
    };
    const first = walRestarts(path);
    let restarts = 0;
    let largest = 0;
    try {
      // Until the worker thread is up and the WAL has started over once (never, without the fix).
      while (walRestarts(path) === first && tx < 5_000) await write();
      const from = walRestarts(path);
      for (let i = 0; i < 500; i++) {
        await write();
        largest = Math.max(largest, statSync(`${path}-wal`).size);
      }
      restarts = walRestarts(path) - from;
    } finally {
      await checkpointer.stop();
      db.$client.close();
    }
    // 500 transactions wrote ~80 MB of frames; the WAL started over again and again instead of
    // growing by all of it (how far it grows between two passes depends on the machine's load).
    expect(restarts).toBeGreaterThanOrEqual(5);
    expect(largest).toBeLessThan(40 * limit);
  });
});
