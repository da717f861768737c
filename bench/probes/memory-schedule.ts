/**
 * A probe, not a figure: what the steady-state poll would cost under the proposal in RESULTS.md
 * ("Misses left"), measured instead of estimated. The lease holder keeps the schedule in memory (a
 * min-heap by next poll time, loaded once from `poll_targets`); an answer equal to the one recorded
 * changes only that entry; dirty entries are written back in bulk, sorted by id, every second of
 * wall time and at the end of each measurement (both inside the measured time). The second variant
 * also appends every answer to a sequential table in one commit per batch, so that each answer is
 * durable at once, as the service records it today. "loop" is the time per poll outside write-backs
 * (heap, comparison and, in the second variant, the log's commits).
 *
 *   node --import tsx bench/probes/memory-schedule.ts
 *
 * It runs on databases seeded as the scale figure seeds them (every target `processing`, already
 * seen), with that figure's loop: batches of 200, the clock 1 ms per batch, every target due again
 * 1 ms after its answer. It measures the schedule's own work per poll (heap, comparison, bulk write
 * and log), not the request nor the Scheduler's bookkeeping around it (budgets, promises, the
 * outcome), which would not depend on the number of watches but add the same constant to both sizes.
 */

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../src/db/client.js";
import { seedWatches } from "../lib/seed.js";
import { median, mulberry32, round } from "../lib/stats.js";

const SIZES = [1_000, 100_000];
const BATCH = 200;
const MEASURE_MS = 1_500;
const FLUSH_EVERY_MS = 1_000;
const REPS = 5;
const T0 = Date.parse("2026-01-04T12:00:00.000Z");
const KEYS = Array.from({ length: 100 }, (_, i) => `vpk_probe_${i}`);

interface Entry {
  id: number;
  taskId: string;
  taskJson: string;
  nextPollAt: number;
  dueAt: number;
  lastPolledAt: number;
  dirty: boolean;
}

/** A binary min-heap of entries by `nextPollAt`. */
class Heap {
  readonly items: Entry[] = [];
  push(e: Entry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as Entry;
      if (parent.nextPollAt <= e.nextPollAt) break;
      a[i] = parent;
      i = p;
    }
    a[i] = e;
  }
  peek(): Entry | undefined {
    return this.items[0];
  }
  pop(): Entry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && (a[r] as Entry).nextPollAt < (a[l] as Entry).nextPollAt ? r : l;
      if ((a[c] as Entry).nextPollAt >= last.nextPollAt) break;
      a[i] = a[c] as Entry;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

interface Sample {
  perPoll: number;
  loopPerPoll: number;
  perFlushedRow: number;
}

interface Fleet {
  close: () => void;
  /** µs per poll over one measurement (bulk writes included), and its parts. */
  measure: (withLog: boolean) => Sample;
  entryBytes: number;
}

function fleet(rows: number): Fleet {
  const dir = mkdtempSync(join(tmpdir(), "taskhook-probe-"));
  const db = openDatabase(join(dir, "probe.db"));
  const sqlite = db.$client;
  seedWatches(db, {
    keys: KEYS,
    count: rows,
    taskPrefix: "task_probe_",
    callbackUrl: "https://example.com/hook",
    encryptionKey: randomBytes(32),
    now: T0,
    status: "processing",
    dueSpreadMs: 15_000,
    random: mulberry32(rows),
  });
  sqlite.exec(
    "CREATE TABLE probe_poll_log (seq INTEGER PRIMARY KEY, target_id INTEGER NOT NULL, polled_at INTEGER NOT NULL, next_poll_at INTEGER NOT NULL)",
  );
  sqlite.pragma("wal_autocheckpoint = 0");

  const heapBefore = process.memoryUsage().heapUsed;
  const heap = new Heap();
  const load = sqlite.prepare(
    "SELECT id, task_id AS taskId, task_json AS taskJson, next_poll_at AS nextPollAt, due_at AS dueAt, last_polled_at AS lastPolledAt FROM poll_targets WHERE active = 1",
  );
  for (const row of load.iterate() as Iterable<Omit<Entry, "dirty">>)
    heap.push({ ...row, dirty: false });
  const entryBytes = (process.memoryUsage().heapUsed - heapBefore) / rows;

  const writeBack = sqlite.prepare(
    "UPDATE poll_targets SET next_poll_at = ?, due_at = ?, last_polled_at = ? WHERE id = ?",
  );
  const append = sqlite.prepare(
    "INSERT INTO probe_poll_log (target_id, polled_at, next_poll_at) VALUES (?, ?, ?)",
  );
  const flushTx = sqlite.transaction((dirty: Entry[]) => {
    dirty.sort((a, b) => a.id - b.id);
    for (const e of dirty) {
      writeBack.run(e.nextPollAt, e.dueAt, e.lastPolledAt, e.id);
      e.dirty = false;
    }
  });
  const flush = (dirty: Entry[]) => {
    const t = performance.now();
    flushTx(dirty);
    flushMs += performance.now() - t;
    flushRows += dirty.length;
  };
  const logBatch = sqlite.transaction((batch: Entry[], now: number) => {
    for (const e of batch) append.run(e.id, now, e.nextPollAt);
  });
  const startedAt = "2026-01-04T11:59:00Z";
  let now = T0;
  let flushMs = 0;
  let flushRows = 0;

  const measure = (withLog: boolean): Sample => {
    // As in the service, checkpoints are not the writer's work (src/db/checkpointer.ts): each
    // measurement starts from an empty WAL and none runs inside it.
    sqlite.pragma("wal_checkpoint(TRUNCATE)");
    let dirty: Entry[] = [];
    let polls = 0;
    const started = performance.now();
    let flushedAt = started;
    do {
      now += 1;
      const batch: Entry[] = [];
      for (
        let top = heap.peek();
        top && top.nextPollAt <= now && batch.length < BATCH;
        top = heap.peek()
      ) {
        batch.push(heap.pop() as Entry);
      }
      for (const e of batch) {
        // The answer, serialized as the record path serializes it, compared with the one recorded.
        const answer = JSON.stringify({
          task_id: e.taskId,
          status: "processing",
          started_at: startedAt,
          created_at: startedAt,
        });
        if (answer !== e.taskJson) throw new Error(`answer changed for ${e.taskId}`);
        e.lastPolledAt = now;
        e.dueAt = now + 1;
        e.nextPollAt = now + 1;
        if (!e.dirty) {
          e.dirty = true;
          dirty.push(e);
        }
        heap.push(e);
      }
      if (withLog) logBatch(batch, now);
      polls += batch.length;
      if (performance.now() - flushedAt >= FLUSH_EVERY_MS) {
        flush(dirty);
        dirty = [];
        flushedAt = performance.now();
      }
    } while (performance.now() - started < MEASURE_MS);
    flush(dirty);
    const total = performance.now() - started;
    const sample = {
      perPoll: (total * 1000) / polls,
      loopPerPoll: ((total - flushMs) * 1000) / polls,
      perFlushedRow: flushRows === 0 ? 0 : (flushMs * 1000) / flushRows,
    };
    flushMs = 0;
    flushRows = 0;
    return sample;
  };

  return {
    measure,
    entryBytes,
    close: () => {
      sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const fleets = SIZES.map((n) => fleet(n));
try {
  for (const withLog of [false, true]) {
    const samples: Sample[][] = SIZES.map(() => []);
    for (let rep = 0; rep < REPS; rep++) {
      fleets.forEach((f, i) => {
        samples[i]?.push(f.measure(withLog));
      });
    }
    const med = (i: number, k: keyof Sample) => median((samples[i] ?? []).map((s) => s[k]));
    console.log(withLog ? "memory + log of every answer:" : "memory, bulk write-back only:");
    SIZES.forEach((n, i) => {
      console.log(
        `  ${String(n).padStart(7)} rows: ${round(med(i, "perPoll"), 2)} µs per poll (loop ${round(med(i, "loopPerPoll"), 2)}, write-back ${round(med(i, "perFlushedRow"), 2)} µs per row written)`,
      );
    });
    console.log(`  ratio: ${round(med(1, "perPoll") / med(0, "perPoll"), 2)}`);
  }
  const largest = fleets.length - 1;
  console.log(
    `JS heap per entry at load: ${Math.round(fleets[largest]?.entryBytes ?? 0)} B (${SIZES[largest]} rows)`,
  );
} finally {
  for (const f of fleets) f.close();
}
