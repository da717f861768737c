/**
 * A probe, not a figure: what one durable row update costs in SQLite as the service opens it (WAL,
 * synchronous NORMAL, 16 MB cache), by table size and by rows per commit. It isolates the cause of
 * the "time per poll, 100k vs 1k" miss: a poll rewrites its target's row, and at 100k rows those rows
 * lie on pages of their own, so each update is a WAL frame of its own however the commits are grouped.
 *
 *   node --import tsx bench/probes/page-writes.ts
 *
 * Rows of ~270 bytes (a poll target's size), updated at random; checkpoints run between measured
 * commits (their time excluded) so that the WAL never grows without bound.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { mulberry32 } from "../lib/stats.js";

const SIZES = [1_000, 100_000];
const PER_COMMIT = [1, 11, 200];
const MEASURE_MS = 1_500;

function probe(rows: number): Record<number, number> {
  const dir = mkdtempSync(join(tmpdir(), "taskhook-probe-"));
  const db = new Database(join(dir, "probe.db"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("cache_size = -16000");
    db.pragma("wal_autocheckpoint = 0");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad TEXT NOT NULL)");
    const insert = db.prepare("INSERT INTO t (n, pad) VALUES (0, ?)");
    db.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run("x".repeat(250));
    })();
    db.pragma("wal_checkpoint(TRUNCATE)");
    const update = db.prepare("UPDATE t SET n = n + 1 WHERE id = ?");
    const commit = db.transaction((ids: number[]) => {
      for (const id of ids) update.run(id);
    });
    const random = mulberry32(rows);
    const out: Record<number, number> = {};
    for (const per of PER_COMMIT) {
      let updates = 0;
      let spent = 0;
      const started = performance.now();
      while (performance.now() - started < MEASURE_MS) {
        const ids = Array.from({ length: per }, () => 1 + Math.floor(random() * rows));
        const t0 = performance.now();
        commit(ids);
        spent += performance.now() - t0;
        updates += per;
        if (updates % 5_000 < per) db.pragma("wal_checkpoint(PASSIVE)");
      }
      out[per] = Math.round((spent * 10_000) / updates) / 10;
    }
    return out;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`µs per row update (commit included), by rows per commit: ${PER_COMMIT.join(", ")}`);
for (const rows of SIZES) {
  const result = probe(rows);
  console.log(
    `${String(rows).padStart(7)} rows: ${PER_COMMIT.map((n) => `${result[n]} µs`).join(", ")}`,
  );
}
