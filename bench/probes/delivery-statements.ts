/**
 * A probe, not a figure: the deliverer's database work per delivery, by deliveries per commit, with
 * its real prepared statements (src/db/delivery-queue.ts) on a file database opened as the service
 * opens it. Each commit records the previous batch's attempts and outcomes, then claims and leases
 * the next batch, as a deliverer tick does.
 *
 *   node --import tsx bench/probes/delivery-statements.ts
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { openDatabase, transaction } from "../../src/db/client.js";
import { type DueDelivery, deliveryStatements } from "../../src/db/delivery-queue.js";
import { newId } from "../../src/domain/ids.js";
import { scratchDir } from "../lib/quiet.js";
import { seedWatches } from "../lib/seed.js";
import { mulberry32 } from "../lib/stats.js";

const PENDING = 20_000;
const PER_COMMIT = [8, 32, 64];
const PAYLOAD = JSON.stringify({ type: "task.completed", data: { pad: "x".repeat(380) } });

function probe(perCommit: number): Record<string, number> {
  const scratch = scratchDir("probe-deliveries");
  const db = openDatabase(join(scratch.dir, "probe.db"));
  try {
    const sqlite = db.$client;
    sqlite.pragma("wal_autocheckpoint = 0");
    const now = Date.now();
    seedWatches(db, {
      keys: ["vpk_probe_deliveries"],
      count: PENDING,
      taskPrefix: "task_probe_",
      callbackUrl: "https://example.com/hook",
      encryptionKey: randomBytes(32),
      now,
      status: "processing",
      dueSpreadMs: 0,
      random: mulberry32(1),
    });
    // One pending delivery per watch, as the outbox writes them (so the per-watch order holds none back).
    const event = sqlite.prepare(
      "INSERT INTO events (id, watch_id, tenant_id, sequence, type, payload, created_at) VALUES (?, ?, ?, 1, 'task.completed', ?, ?)",
    );
    const delivery = sqlite.prepare(
      "INSERT INTO deliveries (id, event_id, watch_id, tenant_id, callback_url, status, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
    );
    const watches = sqlite
      .prepare("SELECT id, tenant_id AS tenantId, callback_url AS url FROM watches")
      .all() as Array<{ id: string; tenantId: string; url: string }>;
    transaction(db, () => {
      for (const w of watches) {
        const eventId = newId("evt", now);
        event.run(eventId, w.id, w.tenantId, PAYLOAD, now);
        delivery.run(newId("dlv", now), eventId, w.id, w.tenantId, w.url, now, now, now);
      }
    });
    sqlite.pragma("wal_checkpoint(TRUNCATE)");

    const s = deliveryStatements(db);
    const at = now + 1;
    const leaseUntil = at + 20_000;
    const spent = { due: 0, lease: 0, record: 0, all: 0 };
    let previous: DueDelivery[] = [];
    let recorded = 0;
    for (;;) {
      const t0 = performance.now();
      const claimed = transaction(db, () => {
        const t1 = performance.now();
        for (const d of previous) {
          s.insertAttempt({
            deliveryId: d.id,
            at,
            durationMs: 1,
            statusCode: 200,
            error: null,
            responseBody: "ok",
          });
          s.finish({
            id: d.id,
            leaseUntil,
            status: "delivered",
            nextAttemptAt: at,
            at,
            error: null,
            statusCode: 200,
          });
        }
        const t2 = performance.now();
        const rows = s.due(at, perCommit);
        const t3 = performance.now();
        for (const d of rows) s.lease(d.id, leaseUntil);
        spent.record += t2 - t1;
        spent.due += t3 - t2;
        spent.lease += performance.now() - t3;
        return rows;
      });
      spent.all += performance.now() - t0;
      recorded += previous.length;
      previous = claimed;
      if (claimed.length === 0) break;
      if (recorded % 5_000 < perCommit) sqlite.pragma("wal_checkpoint(PASSIVE)");
    }
    const per = (ms: number) => Math.round((ms * 10_000) / recorded) / 10;
    return {
      all: per(spent.all),
      due: per(spent.due),
      lease: per(spent.lease),
      record: per(spent.record),
      commit: per(spent.all - spent.due - spent.lease - spent.record),
    };
  } finally {
    db.$client.close();
    scratch.cleanup();
  }
}

console.log(
  "µs per delivery: in all | due query | lease | record attempt and outcome | begin + commit",
);
for (const n of PER_COMMIT) {
  const r = probe(n);
  console.log(
    `${String(n).padStart(3)} per commit: ${r.all} | ${r.due} | ${r.lease} | ${r.record} | ${r.commit}`,
  );
}
