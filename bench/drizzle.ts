/**
 * The scheduler's hot paths through drizzle (as src/db/polls.ts runs them) against raw prepared
 * better-sqlite3 statements running the same SQL, on the same file database (1,000 active targets,
 * one watch each, all due):
 *
 * - claim due work: in one transaction, the due query (200 oldest due) and a lease per row;
 * - record a poll: the target by id, its new poll state (`record`, every column an outcome writes),
 *   its active watches; 200 per transaction, as a flush records them.
 *
 * The raw statements are written out here, so they follow the SQL of src/db/polls.ts by hand:
 * when that SQL changes, change them too (the figure compares layers, not queries).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { type Db, openDatabase, transaction } from "../src/db/client.js";
import { pollStatements } from "../src/db/polls.js";
import { type BenchOptions, type FigureRow, figureMain } from "./lib/figure.js";
import { measurePairs, type PairResult } from "./lib/pairs.js";
import { scratchDir } from "./lib/quiet.js";
import { seedWatches } from "./lib/seed.js";
import { mulberry32, round } from "./lib/stats.js";

const TARGETS = 1_000;
const BATCH = 200;
const T0 = Date.parse("2026-01-04T12:00:00.000Z");

const rawSql = {
  due: `SELECT id, tenant_id, task_id, due_at, last_polled_at, task_status FROM poll_targets
        WHERE active = 1 AND next_poll_at <= ? ORDER BY next_poll_at LIMIT ?`,
  lease:
    "UPDATE poll_targets SET lease_until = ?, next_poll_at = ?, last_polled_at = ? WHERE id = ?",
  byId: "SELECT * FROM poll_targets WHERE id = ?",
  record: `UPDATE poll_targets SET task_status = ?, task_json = ?, queue_position = ?,
        estimated_completion_at = ?, lease_until = NULL, fault_count = ?, reject_code = ?,
        reject_count = ?, next_poll_at = ?, due_at = ?, active = ?, watches_behind = ? WHERE id = ?`,
  activeWatches: "SELECT * FROM watches WHERE poll_target_id = ? AND status = 'active' ORDER BY id",
};

const TASK_JSON = JSON.stringify({
  task_id: "task_x",
  status: "processing",
  started_at: "2026-01-04T11:59:00Z",
  created_at: "2026-01-04T11:59:00Z",
});

/** Operations per second of `op`, repeated for `ms`. */
function opsPerSecond(ms: number, op: (i: number) => void): number {
  let n = 0;
  const started = performance.now();
  do op(n++);
  while (performance.now() - started < ms);
  return (n * 1000) / (performance.now() - started);
}

function paths(db: Db) {
  const stmts = pollStatements(db);
  const sqlite = db.$client;
  const raw = {
    due: sqlite.prepare(rawSql.due),
    lease: sqlite.prepare(rawSql.lease),
    byId: sqlite.prepare(rawSql.byId),
    record: sqlite.prepare(rawSql.record),
    activeWatches: sqlite.prepare(rawSql.activeWatches),
  };
  const ids = (
    sqlite.prepare("SELECT id FROM poll_targets ORDER BY id").pluck().all() as number[]
  ).slice(0, BATCH);
  // Every claim moves `now` past the previous leases, so the same rows are due at every claim.
  let clock = T0;
  const tick = () => {
    clock += 2;
    return clock;
  };
  return {
    claimDrizzle() {
      const now = tick();
      transaction(db, () => {
        for (const row of stmts.due(now, BATCH)) stmts.lease(row.id, now, now + 1);
      });
    },
    claimRaw() {
      const now = tick();
      transaction(db, () => {
        for (const row of raw.due.all(now, BATCH) as Array<{ id: number }>)
          raw.lease.run(now + 1, now + 1, now, row.id);
      });
    },
    recordDrizzle() {
      const now = tick();
      transaction(db, () => {
        for (const id of ids) {
          const target = stmts.byId(id);
          if (!target) throw new Error(`no target ${id}`);
          stmts.record({
            id,
            taskStatus: "processing",
            taskJson: TASK_JSON,
            queuePosition: null,
            estimatedCompletionAt: target.estimatedCompletionAt,
            faultCount: 0,
            rejectCode: null,
            rejectCount: 0,
            active: true,
            watchesBehind: false,
            nextPollAt: now + 1,
            dueAt: now + 1,
          });
          stmts.activeWatches(id);
        }
      });
    },
    recordRaw() {
      const now = tick();
      transaction(db, () => {
        for (const id of ids) {
          const target = raw.byId.get(id) as { estimated_completion_at: number | null } | undefined;
          if (!target) throw new Error(`no target ${id}`);
          raw.record.run(
            "processing",
            TASK_JSON,
            null,
            target.estimated_completion_at,
            0,
            null,
            0,
            now + 1,
            now + 1,
            1,
            0,
            id,
          );
          raw.activeWatches.all(id);
        }
      });
    },
  };
}

function row(name: string, unit: string, pair: PairResult): FigureRow {
  return {
    name,
    value: round(pair.subject.median, 1),
    baseline: round(pair.baseline.median, 1),
    ratio: round(pair.ratio.median, 3),
    target: "ratio >= 0.85",
    pass: pair.ratio.median >= 0.85,
    detail: {
      unit,
      ratio: pair.ratio,
      subject: pair.subject,
      baselineSpread: pair.baseline,
      setup: `file database, ${TARGETS} active targets with one watch each, all due; the same SQL through drizzle's prepared statements (src/db/polls.ts) and through raw better-sqlite3 ones`,
    },
  };
}

export async function run(opts: BenchOptions): Promise<FigureRow[]> {
  const ms = opts.quick ? 300 : 1_000;
  const scratch = scratchDir("drizzle");
  const db = openDatabase(join(scratch.dir, "drizzle.db"));
  try {
    seedWatches(db, {
      keys: Array.from({ length: 20 }, (_, i) => `vpk_bench_orm_${i}`),
      count: TARGETS,
      taskPrefix: "task_orm_",
      callbackUrl: "https://example.com/hook",
      encryptionKey: randomBytes(32),
      now: T0,
      status: "processing",
      dueSpreadMs: 15_000,
      random: mulberry32(11),
    });
    const p = paths(db);
    const claim = await measurePairs(
      "claims/s (200 rows each)",
      opts.reps,
      async () => opsPerSecond(ms, p.claimRaw),
      async () => opsPerSecond(ms, p.claimDrizzle),
    );
    const record = await measurePairs(
      "record batches/s (200 polls each)",
      opts.reps,
      async () => opsPerSecond(ms, p.recordRaw),
      async () => opsPerSecond(ms, p.recordDrizzle),
    );
    return [
      row("drizzle: claim due work", "claims/s (due query + 200 leases, one transaction)", claim),
      row(
        "drizzle: record a poll",
        "batches/s (200 × byId + update + active watches, one transaction)",
        record,
      ),
    ];
  } finally {
    db.$client.close();
    scratch.cleanup();
  }
}

figureMain(import.meta.url, run);
