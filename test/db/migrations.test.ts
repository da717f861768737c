import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS_FOLDER, openDatabase } from "../../src/db/client.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The migrations folder as it was before migration `upTo` (exclusive): an older release's. */
function migrationsBefore(upTo: number): string {
  dir ??= mkdtempSync(join(tmpdir(), "taskhook-migrations-"));
  const folder = join(dir, `before-${upTo}`);
  cpSync(MIGRATIONS_FOLDER, folder, { recursive: true });
  const journalPath = join(folder, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: unknown[] };
  journal.entries = journal.entries.slice(0, upTo);
  writeFileSync(journalPath, JSON.stringify(journal));
  return folder;
}

describe("upgrading a database", () => {
  it("0003 and 0004: targets start behind (the next answer goes to every watch) and tenants get their counts of active watches", () => {
    const folder = migrationsBefore(3);
    const path = join(dir ?? "", "old.db");
    const old = new Database(path);
    migrate(drizzle(old), { migrationsFolder: folder });
    old.exec(`
      INSERT INTO tenants (id, created_at) VALUES ('ten_a', 0), ('ten_b', 0), ('ten_c', 0);
      INSERT INTO poll_targets (id, tenant_id, task_id, next_poll_at, due_at, created_at)
        VALUES (1, 'ten_a', 'task_1', 0, 0, 0), (2, 'ten_b', 'task_2', 0, 0, 0);
      INSERT INTO watches (id, tenant_id, poll_target_id, task_id, callback_url, events, status, created_at, expires_at) VALUES
        ('w1', 'ten_a', 1, 'task_1', 'https://a.example.com/1', '[]', 'active', 0, 1),
        ('w2', 'ten_a', 1, 'task_1', 'https://a.example.com/2', '[]', 'active', 0, 1),
        ('w3', 'ten_a', 1, 'task_1', 'https://a.example.com/3', '[]', 'cancelled', 0, 1),
        ('w4', 'ten_b', 2, 'task_2', 'https://b.example.com/1', '[]', 'done', 0, 1);
    `);
    old.close();

    const db = openDatabase(path);
    const counts = db.$client
      .prepare("SELECT id, active_watches AS n FROM tenants ORDER BY id")
      .all();
    expect(counts).toEqual([
      { id: "ten_a", n: 2 },
      { id: "ten_b", n: 0 },
      { id: "ten_c", n: 0 },
    ]);
    const behind = db.$client
      .prepare("SELECT watches_behind AS b FROM poll_targets ORDER BY id")
      .all();
    expect(behind).toEqual([{ b: 1 }, { b: 1 }]);
    db.$client.close();
  });
});
