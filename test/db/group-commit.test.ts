import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../src/db/client.js";
import { inGroupCommit, MAX_GROUP } from "../../src/db/group-commit.js";
import { createTestContext, KEY_A, tableCounts } from "../support/context.js";

function scratchTable() {
  const db = openDatabase(":memory:");
  db.$client.exec("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)");
  const insert = db.$client.prepare("INSERT INTO t (v) VALUES (?)");
  const values = () =>
    (db.$client.prepare("SELECT v FROM t ORDER BY v").all() as Array<{ v: number }>).map(
      (r) => r.v,
    );
  return { db, insert, values };
}

describe("group commit", () => {
  it("commits writes asked for together in one transaction and answers each with its own result", async () => {
    const { db, insert, values } = scratchTable();
    const order: string[] = [];
    const results = await Promise.all(
      [1, 2, 3].map((v) =>
        inGroupCommit(db, () => {
          order.push(`run ${v} in transaction: ${db.$client.inTransaction}`);
          insert.run(v);
          return v * 10;
        }).then((result) => {
          order.push(`answered ${v}`);
          return result;
        }),
      ),
    );
    expect(results).toEqual([10, 20, 30]);
    expect(values()).toEqual([1, 2, 3]);
    // All three ran in one transaction, and none was answered before its commit.
    expect(order).toEqual([
      "run 1 in transaction: true",
      "run 2 in transaction: true",
      "run 3 in transaction: true",
      "answered 1",
      "answered 2",
      "answered 3",
    ]);
  });

  it("rolls back a write that throws alone; the others of its group commit", async () => {
    const { db, insert, values } = scratchTable();
    const outcomes = await Promise.allSettled([
      inGroupCommit(db, () => insert.run(1)),
      inGroupCommit(db, () => {
        insert.run(2);
        insert.run(1); // UNIQUE violation: this write's row 2 goes too
      }),
      inGroupCommit(db, () => insert.run(3)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/);
    expect(values()).toEqual([1, 3]);
  });

  it("fails every write of the group when another process holds the write lock, and stores none", async () => {
    const dir = mkdtempSync(join(tmpdir(), "taskhook-group-"));
    try {
      const path = join(dir, "g.db");
      const db = openDatabase(path, { busyTimeoutMs: 0 });
      db.$client.exec("CREATE TABLE t (v INTEGER NOT NULL)");
      const insert = db.$client.prepare("INSERT INTO t (v) VALUES (?)");
      const other = new Database(path);
      other.exec("BEGIN IMMEDIATE");
      const outcomes = await Promise.allSettled([
        inGroupCommit(db, () => insert.run(1)),
        inGroupCommit(db, () => insert.run(2)),
      ]);
      other.exec("ROLLBACK");
      other.close();
      expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"]);
      expect(String((outcomes[0] as PromiseRejectedResult).reason)).toMatch(/locked|busy/i);
      expect(db.$client.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 0 });
      // The next group goes through once the lock is gone.
      await inGroupCommit(db, () => insert.run(3));
      expect(db.$client.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 1 });
      db.$client.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("registrations sent at once each get their watch, and the key's limit holds across the group", async () => {
    const t = createTestContext({ MAX_ACTIVE_WATCHES_PER_KEY: "3" });
    const answers = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        t.call("POST", "/v1/watches", {
          key: KEY_A,
          body: { task_id: `task_group_${i}`, callback_url: "https://hooks.example.com/x" },
        }),
      ),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([201, 201, 201, 429, 429]);
    const created = answers.filter((a) => a.status === 201).map((a) => a.body.task_id);
    expect(new Set(created).size).toBe(3);
    expect(tableCounts(t.db).watches).toBe(3);
    expect(tableCounts(t.db).poll_targets).toBe(3);
  });
});

describe("group commit when SQLite rolls back the whole transaction", () => {
  it("fails every write of the group and stores none, even those after the failing one", async () => {
    const { db, values } = scratchTable();
    db.$client.exec("CREATE TABLE big (v TEXT)");
    const insert = db.$client.prepare("INSERT INTO t (v) VALUES (?)");
    const insertBig = db.$client.prepare("INSERT INTO big (v) VALUES (?)");
    const pages = db.$client.pragma("page_count", { simple: true }) as number;
    db.$client.pragma(`max_page_count = ${pages + 3}`);
    const outcomes = await Promise.allSettled([
      inGroupCommit(db, () => insert.run(1)),
      inGroupCommit(db, () => {
        for (let i = 0; i < 100; i++) insertBig.run("x".repeat(4000)); // SQLITE_FULL
      }),
      inGroupCommit(db, () => insert.run(3)),
    ]);
    db.$client.pragma("max_page_count = 1000000");
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/full/i);
    expect(values()).toEqual([]);
  });

  it("splits a burst into groups of at most MAX_GROUP writes: the first are answered before the rest run", async () => {
    const { db, insert, values } = scratchTable();
    const order: string[] = [];
    await Promise.all(
      Array.from({ length: MAX_GROUP + 5 }, (_, v) =>
        inGroupCommit(db, () => {
          order.push(`run ${v}`);
          insert.run(v);
        }).then(() => order.push(`answered ${v}`)),
      ),
    );
    expect(values()).toHaveLength(MAX_GROUP + 5);
    expect(order.indexOf(`answered ${MAX_GROUP - 1}`)).toBeLessThan(
      order.indexOf(`run ${MAX_GROUP}`),
    );
    expect(order.indexOf(`run ${MAX_GROUP - 1}`)).toBeLessThan(order.indexOf("answered 0"));
  });
});
